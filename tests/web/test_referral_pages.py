"""The youth worker's pages over the real use cases: open, save, submit, follow up."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask.testing import FlaskClient

from tests.api.helpers import REFERRALS, bearer, with_wrong_check_digit
from tests.web.helpers import (
    APP,
    MINE,
    NEW,
    NORRMALM,
    PNR,
    SODERMALM,
    created_id,
    csrf,
    post,
    referral_form,
    sign_in,
    text,
)


def test_a_submitted_referral_is_routed_and_shown_with_its_status(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    page = text(client.get(f"{APP}/referrals/{referral}"))
    assert "Remissen är skickad." in page
    assert "Skickad, väntar på beslut" in page
    assert "Testa Testsson" in page
    assert "Norrmalm" in page  # routed by district


def test_a_draft_needs_nothing_and_is_not_sent(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, {"action": "draft"}))
    page = text(client.get(f"{APP}/referrals/{referral}"))
    assert "Utkastet är sparat. Det är inte skickat." in page
    assert 'class="badge badge-draft"' in page


def test_a_form_with_errors_comes_back_as_typed_with_each_error_beside_its_field(
    client: FlaskClient,
) -> None:
    sign_in(client)
    form = referral_form(
        **{"subject-personal_number": "2010-03-31 12", "legal_basis": None, "categories": None}
    )
    response = post(client, NEW, form)
    page = text(response)
    assert response.status_code == 422
    assert "<title>Fel: Ny remiss" in page
    assert "Det finns ett problem" in page
    # Every typed value is still there.
    assert 'value="Testa Testsson"' in page
    assert 'value="2010-03-31 12"' in page
    assert "Påhittad berättelse för test" in page
    assert re.search(r'id="priority-urgent"[^>]*checked', page)
    # The summary links to the field and says exactly what the field's error says.
    summary = re.search(r'<a href="#subject-personal_number">([^<]+)</a>', page)
    assert summary
    assert f'<span class="visually-hidden">Fel:</span> {summary.group(1)}</p>' in page
    assert 'id="subject-personal_number"' in page
    assert 'aria-invalid="true"' in page


def test_the_server_checks_the_personal_number_itself(client: FlaskClient) -> None:
    sign_in(client)
    form = referral_form(**{"subject-personal_number": with_wrong_check_digit(PNR)})
    page = text(post(client, NEW, form))
    assert '<a href="#subject-personal_number">Skriv ett riktigt personnummer' in page


def test_submitting_without_a_legal_basis_names_that_field(client: FlaskClient) -> None:
    sign_in(client)
    page = text(post(client, NEW, referral_form(legal_basis=None)))
    assert '<a href="#legal_basis">Välj den rättsliga grunden' in page


def test_a_second_referral_for_the_same_person_warns_of_the_first(client: FlaskClient) -> None:
    sign_in(client)
    first = created_id(post(client, NEW, referral_form()))
    second = created_id(post(client, NEW, referral_form()))
    page = text(client.get(f"{APP}/referrals/{second}"))
    assert "Det kan redan finnas en remiss för den unga" in page
    assert f'href="/app/referrals/{first}"' in page


def test_my_referrals_shows_the_receiving_units_decision(
    client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    sign_in(client)
    accepted = created_id(post(client, NEW, referral_form()))
    declined = created_id(post(client, NEW, referral_form(**{"subject-personal_number": ""})))
    norrmalm = bearer(dev_token("caseworker", "norrmalm"))
    assert (
        client.post(f"{REFERRALS}/{accepted}/accept", json={}, headers=norrmalm).status_code == 200
    )
    decline = {"reason_code": "no_capacity"}
    assert (
        client.post(f"{REFERRALS}/{declined}/decline", json=decline, headers=norrmalm).status_code
        == 200
    )
    page = text(client.get(MINE))
    assert "Mottagen" in page
    assert "Avböjd" in page
    assert "Ingen kapacitet" in page


def test_a_draft_can_be_changed_then_sent(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, {"action": "draft", "subject-name": "Påhitt Person"}))
    edit = f"{APP}/referrals/{referral}/edit"
    form_page = text(client.get(edit))
    assert 'value="Påhitt Person"' in form_page
    version = re.search(r'name="version" value="(\d+)"', form_page)
    assert version
    response = post(client, edit, {**referral_form(), "version": version.group(1)})
    assert created_id(response) == referral
    assert "Skickad, väntar på beslut" in text(client.get(f"{APP}/referrals/{referral}"))


def test_a_draft_can_be_deleted(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, {"action": "draft"}))
    page = f"{APP}/referrals/{referral}"
    response = post(client, f"{page}/delete", {}, page=page)
    assert response.status_code == 302
    assert client.get(page).status_code == 404


def test_notes_and_cancelling(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    page = f"{APP}/referrals/{referral}"
    note = {"text": "Påhittad delad anteckning", "visibility": "shared"}
    assert post(client, f"{page}/notes", note, page=page).status_code == 302
    assert "Påhittad delad anteckning" in text(client.get(page))
    missing_reason = post(client, f"{page}/cancel", {}, page=page)
    assert missing_reason.status_code == 422
    assert '<a href="#reason_code">Välj ett skäl</a>' in text(missing_reason)
    # The note form beside it keeps its default: shared with the receiving unit.
    assert re.search(r'id="visibility"[^>]*value="shared"[^>]*checked', text(missing_reason))
    cancelled = post(client, f"{page}/cancel", {"reason_code": "no_longer_needed"}, page=page)
    assert cancelled.status_code == 302
    assert "Återkallad" in text(client.get(page))


def test_another_units_referral_answers_404(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))  # routed to norrmalm
    other = client.application.test_client()
    sign_in(other, SODERMALM)
    for path in ("", "/edit"):
        assert other.get(f"{APP}/referrals/{referral}{path}").status_code == 404
    token = csrf(other.get(MINE))
    response = other.post(
        f"{APP}/referrals/{referral}/notes",
        data={"text": "Påhittad", "visibility": "shared", "csrf_token": token},
    )
    assert response.status_code == 404


def test_no_personal_data_in_any_address(client: FlaskClient) -> None:
    sign_in(client)
    response = post(client, NEW, referral_form())
    referral = created_id(response)
    locations = [response.headers["Location"]]
    page = text(client.get(f"{APP}/referrals/{referral}"))
    addresses = re.findall(r'(?:href|action|src)="([^"]*)"', page) + locations
    digits = PNR.replace("-", "")
    for address in addresses:
        assert "Testa" not in address
        assert digits not in address.replace("-", "")


def test_a_changed_draft_that_cannot_be_sent_yet_is_saved_and_can_be_completed(
    client: FlaskClient,
) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, {"action": "draft"}))
    edit = f"{APP}/referrals/{referral}/edit"
    version = re.search(r'name="version" value="(\d+)"', text(client.get(edit)))
    assert version
    incomplete = {**referral_form(legal_basis=None), "version": version.group(1)}
    failed = post(client, edit, incomplete)
    assert failed.status_code == 422
    page = text(failed)
    assert '<a href="#legal_basis">' in page
    newer = re.search(r'name="version" value="(\d+)"', page)
    assert newer
    assert int(newer.group(1)) > int(version.group(1))  # the change itself was saved
    completed = {**referral_form(), "version": newer.group(1)}
    assert created_id(post(client, edit, completed)) == referral
    assert "Skickad, väntar på beslut" in text(client.get(f"{APP}/referrals/{referral}"))


def test_search_by_personal_number_is_a_post_and_finds_the_referral(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    search = f"{APP}/referrals/search"
    form_page = text(client.get(search))
    assert re.search(r'<form method="post"', form_page)
    found = post(client, search, {"personal_number": PNR})
    assert found.status_code == 200
    assert f'href="/app/referrals/{referral}"' in text(found)
    other = post(client, search, {"personal_number": with_wrong_check_digit(PNR)})
    assert other.status_code == 422
    assert '<a href="#personal_number">Skriv ett riktigt personnummer' in text(other)


def test_the_receiving_unit_sees_no_sender_actions(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    caseworker = client.application.test_client()
    sign_in(caseworker, NORRMALM)
    page = text(caseworker.get(f"{APP}/referrals/{referral}"))
    # Not accepted yet: the decision view (tests/web/test_disclosure_pages.py).
    assert "Testa Testsson" not in page
    assert f"/app/referrals/{referral}/cancel" not in page
    assert f"/app/referrals/{referral}/notes" in page


def test_the_urgency_hint_says_the_configured_deadlines(client: FlaskClient) -> None:
    runtime = client.application.extensions["referrals"]
    runtime.settings = runtime.settings.with_overrides(
        deadline_urgent_days=2, deadline_normal_days=10
    )
    sign_in(client)
    page = text(client.get(NEW))
    assert "Brådskande: beslut inom 2 dagar. Normal: inom 10 dagar." in page
