"""Two-phase disclosure and consent withdrawal on the web pages, on SQLite and PostgreSQL.

The pages run the API's use cases, so they show what the API shows: a caseworker of the
receiving unit gets the decision view of a requested referral on the inbox, the referral
page and the search page, reveals the identity with a reason, and sees it once accepted.
The attack on each page: the young person's name, number, narrative or place met in the
HTML a caseworker gets before the referral is disclosed to their unit.
"""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from tests.api.helpers import REFERRALS, bearer
from tests.web.helpers import (
    APP,
    MINE,
    NEW,
    NORRMALM,
    PNR,
    created_id,
    post,
    referral_form,
    sign_in,
    text,
)

SECRETS = ("Testa Testsson", PNR, PNR[2:], "Sergels torg", "Påhittad berättelse")
SEARCH = f"{APP}/referrals/search"


def leaked(page: str) -> list[str]:
    return [s for s in SECRETS if s in page]


def sent_by_youth_worker(client: FlaskClient) -> str:
    sign_in(client)
    return created_id(post(client, NEW, referral_form()))


def caseworker_of(client: FlaskClient) -> FlaskClient:
    caseworker = client.application.test_client()
    sign_in(caseworker, NORRMALM)
    return caseworker


def test_a_caseworker_sees_no_identity_on_any_page_until_accepting(client: FlaskClient) -> None:
    referral = sent_by_youth_worker(client)
    caseworker = caseworker_of(client)

    inbox = text(caseworker.get(MINE))
    page = text(caseworker.get(f"{APP}/referrals/{referral}"))
    searched = post(caseworker, SEARCH, {"personal_number": PNR})

    assert f"/app/referrals/{referral}" in inbox
    assert "Väntar på ert beslut" in inbox
    assert leaked(inbox) == []
    assert leaked(page) == []
    assert "Du ser det du behöver för att besluta." in page
    assert "<dt>Ålder</dt><dd>16</dd>" in page
    assert f"/app/referrals/{referral}/reveal" in page
    assert searched.status_code == 200
    # The form shows back the number the caseworker typed; nothing else of the person.
    assert [s for s in leaked(text(searched)) if PNR[2:] not in s] == []
    assert f"/app/referrals/{referral}" not in text(searched)
    # The youth worker, who wrote it, sees it whole.
    assert "Testa Testsson" in text(client.get(f"{APP}/referrals/{referral}"))


def test_a_caseworker_reveals_the_identity_with_a_reason_on_the_page(
    client: FlaskClient,
) -> None:
    referral = sent_by_youth_worker(client)
    caseworker = caseworker_of(client)
    url = f"{APP}/referrals/{referral}"

    refused = post(caseworker, f"{url}/reveal", {}, page=url)
    assert refused.status_code == 422
    assert leaked(text(refused)) == []
    assert 'href="#reason_code"' in text(refused)

    done = post(caseworker, f"{url}/reveal", {"reason_code": "known_to_unit"}, page=url)
    assert done.status_code == 302
    page = text(caseworker.get(url))
    assert "Testa Testsson" in page
    assert PNR in page
    assert "Identiteten visas nu för er enhet." in page
    assert "Identiteten visades för den mottagande enheten före beslut" in page
    assert "Se om den unga redan är känd hos oss" in page
    assert f"{url}/reveal" not in page  # nothing left to reveal
    # The sender's page shows it on the timeline too.
    assert "Se om den unga redan är känd hos oss" in text(client.get(url))


def test_the_pages_follow_the_api_once_accepted(
    client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    referral = sent_by_youth_worker(client)
    caseworker = caseworker_of(client)
    accepted = client.post(
        f"{REFERRALS}/{referral}/accept",
        json={},
        headers=bearer(dev_token("caseworker", "norrmalm")),
    )
    assert accepted.status_code == 200

    page = text(caseworker.get(f"{APP}/referrals/{referral}"))
    assert "Testa Testsson" in page
    assert "Sergels torg" in page
    assert "Du ser det du behöver för att besluta." not in page


def test_a_youth_worker_records_a_withdrawal_of_consent_on_the_page(
    client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    worker = bearer(dev_token("youth_worker", "ungdomsjouren"))
    created = client.post(
        REFERRALS,
        json={
            "subject": {"name": "Testa Testsson", "district": "norrmalm"},
            "categories": ["drugs"],
            "legal_basis": "consent",
            "consent": {"given_by": "subject", "given_at": "2026-11-30T18:00:00+01:00"},
            "submit": True,
        },
        headers=worker,
    )
    assert created.status_code == 201
    referral = created.get_json()["id"]
    sign_in(client)
    url = f"{APP}/referrals/{referral}"
    assert f"{url}/withdraw-consent" in text(client.get(url))

    done = post(
        client, f"{url}/withdraw-consent", {"reason_code": "withdrawn_by_subject"}, page=url
    )
    assert done.status_code == 302

    page = text(client.get(url))
    assert "Att samtycket återkallats är registrerat" in page
    assert "Den unga har återkallat samtycket" in page  # on the timeline
    assert "Återkallad" in page  # the status: cancelled
    assert f"{url}/withdraw-consent" not in page
    # The receiving unit sees the closed referral as a decision view.
    assert "Testa Testsson" not in text(caseworker_of(client).get(url))
