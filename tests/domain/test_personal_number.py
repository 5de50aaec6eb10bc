"""Personal and coordination numbers. Every number here is made up (or the well-known test
number 19121212-1212); check digits are computed by ``luhn_digit`` below."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals.domain.errors import InvalidPersonalNumber
from referrals.domain.personal_number import PersonalNumber, age_on, parse_personal_number

TODAY = date(2025, 6, 15)


def luhn_digit(nine: str) -> str:
    """Check digit for YYMMDDNNN, written independently of the code under test."""
    total = 0
    for position, char in enumerate(nine):
        doubled = int(char) * (2 - position % 2)
        total += doubled - 9 if doubled > 9 else doubled
    return str(-total % 10)


def number(yyyymmdd: str, serial3: str) -> str:
    """A 12-digit number with a correct check digit (day as issued, e.g. + 60)."""
    return yyyymmdd + serial3 + luhn_digit(yyyymmdd[2:] + serial3)


def test_luhn_helper_agrees_with_the_known_test_number() -> None:
    assert number("19121212", "121") == "191212121212"


@pytest.mark.parametrize(
    ("text", "normalized", "birth_date"),
    [
        ("191212121212", "191212121212", date(1912, 12, 12)),
        ("19121212-1212", "191212121212", date(1912, 12, 12)),
        ("  19121212-1212\n", "191212121212", date(1912, 12, 12)),
        # 10 digits: the most recent century not in the future, so 2012 rather than 1912 …
        ("121212-1212", "201212121212", date(2012, 12, 12)),
        ("1212121212", "201212121212", date(2012, 12, 12)),
        # … unless '+' says the person is 100 or older.
        ("121212+1212", "191212121212", date(1912, 12, 12)),
    ],
)
def test_valid_forms(text: str, normalized: str, birth_date: date) -> None:
    parsed = parse_personal_number(text, TODAY)
    assert parsed == PersonalNumber(normalized, birth_date, coordination=False)


def test_ten_digits_born_today_is_this_century() -> None:
    full = number("20250615", "123")
    assert parse_personal_number(full[2:], TODAY).birth_date == date(2025, 6, 15)


def test_ten_digits_born_tomorrow_is_last_century() -> None:
    full = number("19250616", "123")
    assert parse_personal_number(full[2:], TODAY).birth_date == date(1925, 6, 16)


def test_plus_at_exactly_one_hundred() -> None:
    full = number("19250615", "123")
    text = f"{full[2:8]}+{full[8:]}"
    assert parse_personal_number(text, TODAY).birth_date == date(1925, 6, 15)


def test_plus_one_day_short_of_one_hundred_goes_back_another_century() -> None:
    full = number("18250616", "123")
    text = f"{full[2:8]}+{full[8:]}"
    assert parse_personal_number(text, TODAY).normalized == full


@pytest.mark.parametrize(
    ("issued", "birth_date"),
    [
        ("20100172", date(2010, 1, 12)),
        ("20100161", date(2010, 1, 1)),
        ("20100191", date(2010, 1, 31)),
        ("20000289", date(2000, 2, 29)),
    ],
)
def test_coordination_number(issued: str, birth_date: date) -> None:
    full = number(issued, "456")
    for text in (full, f"{full[:8]}-{full[8:]}", f"{full[2:8]}-{full[8:]}"):
        parsed = parse_personal_number(text, TODAY)
        assert parsed.coordination
        assert parsed.birth_date == birth_date
        assert parsed.normalized == full  # keeps the day as issued


def test_bad_checksum() -> None:
    with pytest.raises(InvalidPersonalNumber, match="check digit"):
        parse_personal_number("19121212-1213", TODAY)


@pytest.mark.parametrize(
    "issued",
    [
        "20230230",  # 30 February
        "20230229",  # not a leap year
        "19000229",  # centuries are leap years only every 400
        "20230100",  # day 0
        "20230132",  # day 32
        "20230160",  # neither a birth day nor a coordination day
        "20230192",  # coordination day 32
        "20230290",  # coordination 30 February
        "20231301",  # month 13
        "20230001",  # month 0
    ],
)
def test_impossible_dates(issued: str) -> None:
    with pytest.raises(InvalidPersonalNumber, match="real date"):
        parse_personal_number(number(issued, "123"), TODAY)


def test_ten_digit_29_february_in_a_century_without_it() -> None:
    # '+' puts 000229 in 1900, which had no 29 February.
    full = number("20000229", "123")
    with pytest.raises(InvalidPersonalNumber, match="real date"):
        parse_personal_number(f"{full[2:8]}+{full[8:]}", TODAY)


@pytest.mark.parametrize(
    "issued",
    [
        "20250616",  # tomorrow
        "20990101",
        "20250676",  # coordination number for tomorrow
    ],
)
def test_future_birth_dates(issued: str) -> None:
    with pytest.raises(InvalidPersonalNumber, match="future"):
        parse_personal_number(number(issued, "123"), TODAY)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "121212121",  # 9 digits
        "12121212121",  # 11 digits
        "1912121212120",  # 13 digits
        "1912121-21212",  # separator in the wrong place
        "191212-121212",
        "19121212--1212",
        "19121212+1212",  # '+' only makes sense without the century
        "19121212 1212",
        "121212/1212",
        "19121212-121X",
        "abcdefghijkl",
        "\u0661\u0669\u0661\u0662\u0661\u0662\u0661\u0662\u0661\u0662\u0661\u0662",  # Arabic-Indic
    ],
)
def test_wrong_format(text: str) -> None:
    with pytest.raises(InvalidPersonalNumber, match="10 or 12 digits") as caught:
        parse_personal_number(text, TODAY)
    assert caught.value.code == "invalid_personal_number"
    assert caught.value.field == "subject.personal_number"


@pytest.mark.parametrize(
    "text",
    ["19121212-1213", number("20230230", "123"), number("20990101", "123"), "1912121212120"],
)
def test_errors_never_echo_the_input(text: str) -> None:
    with pytest.raises(InvalidPersonalNumber) as caught:
        parse_personal_number(text, TODAY)
    for shown in (caught.value.message, str(caught.value), repr(caught.value)):
        assert text[2:8] not in shown
        assert text[-4:] not in shown


def test_field_can_be_overridden() -> None:
    assert InvalidPersonalNumber("x", field="personal_number").field == "personal_number"


def test_repr_hides_the_number() -> None:
    parsed = parse_personal_number("19121212-1212", TODAY)
    assert "1212" not in repr(parsed)
    assert "1912" not in repr(parsed)


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2010, 6, 15), date(2025, 6, 15), 15),
        (date(2010, 6, 16), date(2025, 6, 15), 14),
        (date(2010, 6, 15), date(2010, 6, 15), 0),
        (date(2008, 2, 29), date(2025, 2, 28), 16),
        (date(2008, 2, 29), date(2025, 3, 1), 17),
        (date(2008, 2, 29), date(2024, 2, 29), 16),
    ],
)
def test_age_on(birth: date, on: date, age: int) -> None:
    assert age_on(birth, on) == age


def test_age_before_birth_is_an_error() -> None:
    with pytest.raises(ValueError, match="precedes"):
        age_on(date(2010, 1, 2), date(2010, 1, 1))


births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
serials = st.integers(min_value=0, max_value=999).map(lambda n: f"{n:03d}")


@given(birth=births, serial=serials, coordination=st.booleans())
def test_property_valid_numbers_parse_back(birth: date, serial: str, coordination: bool) -> None:
    day = birth.day + 60 if coordination else birth.day
    full = number(f"{birth:%Y%m}{day:02d}", serial)
    separator = "+" if age_on(birth, TODAY) >= 100 else "-"
    for text in (full, f"{full[:8]}-{full[8:]}", f"{full[2:8]}{separator}{full[8:]}"):
        parsed = parse_personal_number(text, TODAY)
        assert parsed.birth_date == birth
        assert parsed.normalized == full
        assert parsed.coordination is coordination


@given(birth=births, serial=serials, coordination=st.booleans(), shift=st.integers(1, 9))
def test_property_any_other_check_digit_fails(
    birth: date, serial: str, coordination: bool, shift: int
) -> None:
    day = birth.day + 60 if coordination else birth.day
    full = number(f"{birth:%Y%m}{day:02d}", serial)
    wrong = full[:-1] + str((int(full[-1]) + shift) % 10)
    with pytest.raises(InvalidPersonalNumber, match="check digit"):
        parse_personal_number(wrong, TODAY)


def test_future_check_uses_today_not_the_clock() -> None:
    tomorrow = TODAY + timedelta(days=1)
    full = number(f"{tomorrow:%Y%m%d}", "123")
    assert parse_personal_number(full, tomorrow).birth_date == tomorrow
