"""Human labels of every code, in Swedish and English, in one place.

Pages show these; the API documentation may too.  Codes are the wire form
(referrals/domain/codes.py) and never change; labels may be reworded freely.  Swedish
follows klarspråk: the reader's words, short.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from referrals.domain.codes import (
    BreakGlassReason,
    Category,
    ConsentGiver,
    ConsentWithdrawal,
    LegalBasis,
    NoteVisibility,
    OutcomeCode,
    Priority,
    ReasonCode,
    RevealReason,
    Status,
)

LANGUAGES = ("sv", "en")

# (Swedish, English) per code.
_LABELS: dict[type[StrEnum], dict[str, tuple[str, str]]] = {
    Status: {
        "draft": ("Utkast", "Draft"),
        "requested": ("Skickad, väntar på beslut", "Sent, awaiting decision"),
        "accepted": ("Mottagen", "Accepted"),
        "rejected": ("Avböjd", "Declined"),
        "cancelled": ("Återkallad", "Cancelled"),
        "in_progress": ("Pågår", "In progress"),
        "on_hold": ("Pausad", "On hold"),
        "completed": ("Avslutad", "Completed"),
        "failed": ("Avslutad utan resultat", "Closed without result"),
        "entered_in_error": ("Felregistrerad", "Entered in error"),
    },
    Priority: {
        # The days of "urgent" and "normal" are configurable; pages say them beside these.
        "acute": ("Akut: beslut i dag", "Acute: decision today"),
        "urgent": ("Brådskande", "Urgent"),
        "normal": ("Normal", "Normal"),
    },
    LegalBasis: {
        "consent": ("Samtycke", "Consent"),
        "duty_to_report": ("Anmälningsplikt", "Duty to report"),
        "duty_to_inform": ("Uppgiftsskyldighet", "Duty to inform"),
        "other_statute": ("Annan lag", "Other statute"),
    },
    ConsentGiver: {
        "subject": ("Den unga själv", "The young person"),
        "guardian": ("Vårdnadshavare", "A guardian"),
    },
    Category: {
        "drugs": ("Narkotika", "Drugs"),
        "alcohol": ("Alkohol", "Alcohol"),
        "criminality": ("Brottslighet", "Criminality"),
        "violence": ("Våld", "Violence"),
        "sexual_exploitation": ("Sexuell exploatering", "Sexual exploitation"),
        "homelessness": ("Hemlöshet", "Homelessness"),
        "mental_health": ("Psykisk ohälsa", "Mental health"),
        "school_absence": ("Skolfrånvaro", "School absence"),
        "family_conflict": ("Konflikt i familjen", "Family conflict"),
        "other": ("Annat", "Other"),
    },
    ReasonCode: {
        "wrong_district": ("Fel stadsdel", "Wrong district"),
        "no_capacity": ("Ingen kapacitet", "No capacity"),
        "not_appropriate": ("Inte rätt insats", "Not appropriate"),
        "duplicate": ("Dubblett", "Duplicate"),
        "no_longer_needed": ("Behövs inte längre", "No longer needed"),
        "subject_unreachable": ("Går inte att nå den unga", "Young person unreachable"),
        "awaiting_information": ("Väntar på uppgifter", "Awaiting information"),
        "subject_declined": ("Den unga tackade nej", "The young person declined"),
        "moved": ("Har flyttat", "Has moved"),
        "data_entry_error": ("Felregistrering", "Data entry error"),
        "wrong_subject": ("Fel person", "Wrong person"),
        "other": ("Annat skäl", "Other reason"),
    },
    OutcomeCode: {
        "investigation_opened": ("Utredning inledd", "Investigation opened"),
        "support_started": ("Stöd har börjat", "Support started"),
        "no_action_needed": ("Ingen åtgärd behövs", "No action needed"),
        "referred_elsewhere": ("Hänvisad vidare", "Referred elsewhere"),
    },
    NoteVisibility: {
        "internal": ("Bara min enhet", "My unit only"),
        "shared": ("Delad med mottagaren", "Shared with the other unit"),
    },
    BreakGlassReason: {
        "risk_to_life": ("Fara för liv", "Risk to life"),
        "child_protection_emergency": ("Akut barnskydd", "Child protection emergency"),
        "police_request": ("Begäran från polisen", "Police request"),
        "continuity_of_care": ("Fortsatt vård", "Continuity of care"),
    },
    RevealReason: {
        "known_to_unit": ("Se om den unga redan är känd hos oss", "Check if known to the unit"),
        "open_case_check": ("Se om det finns ett pågående ärende", "Check for an open case"),
        "duplicate_check": ("Se om remissen är en dubblett", "Check for a duplicate"),
        "risk_assessment": ("Bedöma risken innan beslut", "Assess the risk before deciding"),
    },
    ConsentWithdrawal: {
        "withdrawn_by_subject": (
            "Den unga har återkallat samtycket",
            "Withdrawn by the young person",
        ),
        "withdrawn_by_guardian": (
            "Vårdnadshavaren har återkallat samtycket",
            "Withdrawn by the guardian",
        ),
    },
}

# Stockholm's districts (stadsdelsområden), the codes of residence routing uses.
DISTRICTS: dict[str, tuple[str, str]] = {
    "bromma": ("Bromma", "Bromma"),
    "enskede-arsta-vantor": ("Enskede-Årsta-Vantör", "Enskede-Årsta-Vantör"),
    "farsta": ("Farsta", "Farsta"),
    "hagersten-alvsjo": ("Hägersten-Älvsjö", "Hägersten-Älvsjö"),
    "hasselby-vallingby": ("Hässelby-Vällingby", "Hässelby-Vällingby"),
    "kungsholmen": ("Kungsholmen", "Kungsholmen"),
    "norrmalm": ("Norrmalm", "Norrmalm"),
    "ostermalm": ("Östermalm", "Östermalm"),
    "rinkeby-kista": ("Rinkeby-Kista", "Rinkeby-Kista"),
    "skarholmen": ("Skärholmen", "Skärholmen"),
    "skarpnack": ("Skarpnäck", "Skarpnäck"),
    "spanga-tensta": ("Spånga-Tensta", "Spånga-Tensta"),
    "sodermalm": ("Södermalm", "Södermalm"),
}


def label(code: str | StrEnum | None, vocabulary: type[StrEnum], language: str) -> str:
    """The label of ``code`` in ``language``; an unknown code is shown as itself."""
    if code is None:
        return ""
    pair = _LABELS[vocabulary].get(str(code))
    return _pick(pair, language) if pair else str(code)


def district(code: str | None, language: str) -> str:
    if code is None:
        return ""
    pair = DISTRICTS.get(code)
    return _pick(pair, language) if pair else code


def choices(vocabulary: type[StrEnum], language: str) -> list[tuple[str, str]]:
    """(code, label) for every code of ``vocabulary``, in the vocabulary's order."""
    return [(c.value, label(c.value, vocabulary, language)) for c in vocabulary]


def catalogue() -> Mapping[type[StrEnum], Mapping[str, tuple[str, str]]]:
    """Every labelled vocabulary (tests check each code has both labels)."""
    return _LABELS


def _pick(pair: tuple[str, str], language: str) -> str:
    return pair[1] if language == "en" else pair[0]
