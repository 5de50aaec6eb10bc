"""The referral page names who handles it to the receiving unit, and to no one else."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from tests.api.helpers import REFERRALS, bearer
from tests.web.helpers import APP, NEW, NORRMALM, created_id, post, referral_form, sign_in, text

LEAD = "unit_lead@norrmalm"
# The demo sign-in's subjects are the development issuer's defaults: dev-<role>@<unit>.
HANDLER = "dev-caseworker@norrmalm"


def test_the_assignee_is_shown_to_the_receiving_unit_only(
    client: FlaskClient, dev_token: Callable[..., str]
) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    caseworker = bearer(dev_token("caseworker", "norrmalm"))
    accepted = client.post(
        f"{REFERRALS}/{referral}/accept", json={"assignee": HANDLER}, headers=caseworker
    )
    assert accepted.status_code == 200, accepted.get_json()

    receiving = client.application.test_client()
    sign_in(receiving, NORRMALM)
    page = text(receiving.get(f"{APP}/referrals/{referral}"))
    assert "<dt>Handläggare</dt><dd>dev-caseworker@norrmalm</dd>" in page

    sender_page = text(client.get(f"{APP}/referrals/{referral}"))
    assert "Testa Testsson" in sender_page  # the page itself is there
    assert HANDLER not in sender_page
    assert "Handläggare" not in sender_page


def test_a_unit_lead_signs_in_and_works_the_units_referrals(client: FlaskClient) -> None:
    sign_in(client)
    referral = created_id(post(client, NEW, referral_form()))
    lead = client.application.test_client()
    sign_in(lead, LEAD)
    inbox = text(lead.get(f"{APP}/referrals"))
    assert f'href="/app/referrals/{referral}"' in inbox
    page = text(lead.get(f"{APP}/referrals/{referral}"))
    # Two-phase disclosure holds for the lead as for a caseworker: the decision view
    # first, the identity after an audited reveal (or accept).
    assert "Testa Testsson" not in page
    assert "Du ser det du behöver för att besluta." in page
    url = f"{APP}/referrals/{referral}"
    revealed = post(lead, f"{url}/reveal", {"reason_code": "known_to_unit"}, page=url)
    assert revealed.status_code == 302
    assert "Testa Testsson" in text(lead.get(url))
    # Another unit's lead does not see it: the page answers as for no referral at all.
    other = client.application.test_client()
    sign_in(other, "unit_lead@sodermalm")
    assert other.get(f"{APP}/referrals/{referral}").status_code == 404
