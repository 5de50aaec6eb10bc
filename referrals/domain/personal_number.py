"""Swedish personal identity numbers (personnummer) and coordination numbers (samordningsnummer).

A personal number is optional on a referral, but when given it must be valid, because it is
the exact-match search key (through a blind index over ``normalized``) for finding earlier
referrals about the same young person. Error messages name the rule that failed and never
repeat the input: it is personal data and must not reach logs or responses.
"""

import re
from dataclasses import dataclass, field
from datetime import date

from referrals.domain.errors import InvalidPersonalNumber

# ASCII digits only: str.isdigit() would also let through other scripts' digits.
_FORMAT = re.compile(
    r"(?P<century>[0-9]{2})?(?P<yymmdd>[0-9]{6})(?P<sep>[-+]?)(?P<serial>[0-9]{4})"
)
# Coordination numbers are issued with 60 added to the day of birth.
_COORDINATION_OFFSET = 60

_BAD_FORMAT = (
    "personal number must be 10 or 12 digits, with an optional '-' or '+' before the last 4"
)
_BAD_DATE = "personal number does not contain a real date"
_FUTURE = "personal number has a birth date in the future"
_BAD_CHECKSUM = "personal number check digit is wrong"


@dataclass(frozen=True)
class PersonalNumber:
    """A validated personal or coordination number.

    ``normalized`` is the 12-digit form YYYYMMDDNNNN with the digits as issued (a coordination
    number keeps its day + 60), so one person always has exactly one search key.
    """

    # Kept out of repr so a PersonalNumber in a log line or traceback discloses nothing.
    normalized: str = field(repr=False)
    birth_date: date = field(repr=False)  # the real day of birth (day - 60 when coordination)
    coordination: bool


def parse_personal_number(text: str, today: date) -> PersonalNumber:
    """Validate and normalise ``text``; ``today`` decides the century of a 10-digit number.

    Accepts YYYYMMDDNNNN, YYYYMMDD-NNNN, YYMMDDNNNN, YYMMDD-NNNN and YYMMDD+NNNN, where '+'
    marks a person aged 100 or more. Raises InvalidPersonalNumber naming the failed rule.
    """
    match = _FORMAT.fullmatch(text.strip())
    if match is None:
        raise InvalidPersonalNumber(_BAD_FORMAT)
    century, yymmdd, sep, serial = match.group("century", "yymmdd", "sep", "serial")
    if century is not None and sep == "+":
        # With the century written out, '+' would be redundant or contradict it.
        raise InvalidPersonalNumber(_BAD_FORMAT)
    yy, month, issued_day = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    coordination = issued_day > _COORDINATION_OFFSET
    day = issued_day - _COORDINATION_OFFSET if coordination else issued_day
    if century is not None:
        year = int(century + yymmdd[:2])
    else:
        year = _infer_year(yy, month, day, today, centenarian=sep == "+")
    birth_date = _real_date(year, month, day)
    if birth_date > today:
        raise InvalidPersonalNumber(_FUTURE)
    if not _luhn_valid(yymmdd + serial):
        raise InvalidPersonalNumber(_BAD_CHECKSUM)
    return PersonalNumber(f"{year:04d}{yymmdd[2:]}{serial}", birth_date, coordination)


def age_on(birth_date: date, on: date) -> int:
    """Full years of age on ``on``; someone born on 29 February turns a year older on 1 March."""
    if on < birth_date:
        raise ValueError("on precedes birth_date")
    not_yet_had_birthday = (on.month, on.day) < (birth_date.month, birth_date.day)
    return on.year - birth_date.year - not_yet_had_birthday


def _infer_year(yy: int, month: int, day: int, today: date, *, centenarian: bool) -> int:
    """The most recent year ending in ``yy`` that is not in the future (or 100+ years ago).

    Works on (year, month, day) tuples rather than dates so that choosing the century never
    depends on whether the date exists; an impossible date is reported afterwards.
    """
    latest = (today.year - 100 if centenarian else today.year, today.month, today.day)
    year = latest[0] - (latest[0] - yy) % 100
    if (year, month, day) > latest:
        year -= 100
    return year


def _real_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidPersonalNumber(_BAD_DATE) from None


def _luhn_valid(ten_digits: str) -> bool:
    """Luhn (mod 10) check over the 10-digit form YYMMDDNNNC, as Skatteverket defines it."""
    total = 0
    for index, char in enumerate(ten_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return total % 10 == 0
