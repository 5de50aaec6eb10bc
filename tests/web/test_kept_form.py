"""A session that expires mid-form loses nothing the youth worker typed.

The posted form is kept server-side, sealed in the (new, anonymous) session; the browser
holds only the opaque cookie.  Signing in again as the same person restores it once."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals.db.engine import Database
from referrals.db.models import Referral, WebSession
from tests.support.clock import FakeClock
from tests.web.helpers import APP, NEW, NORRMALM, PNR, csrf, referral_form, sign_in, text


def _expire_then_post(client: FlaskClient, clock: FakeClock) -> None:
    sign_in(client)
    token = csrf(client.get(NEW))
    clock.advance(minutes=16)  # the youth worker was talking, not typing
    response = client.post(NEW, data={**referral_form(), "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == f"{APP}/sign-in?next=%2Fapp%2Freferrals%2Fnew"


def test_the_typed_form_comes_back_after_signing_in_again(
    client: FlaskClient, clock: FakeClock, database: Database
) -> None:
    _expire_then_post(client, clock)
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 0
        blobs = b"".join(row.data for row in session.scalars(select(WebSession)))
    assert PNR.encode() not in blobs  # kept, but sealed
    assert "Det du skrev är sparat" in text(client.get(f"{APP}/sign-in"))

    sign_in(client)
    page = text(client.get(NEW))
    assert "Det du skrev är sparat" in page
    assert 'value="Testa Testsson"' in page
    assert f'value="{PNR}"' in page
    assert "Påhittad berättelse för test" in page
    # Once only.
    assert 'value="Testa Testsson"' not in text(client.get(NEW))


def test_someone_else_signing_in_on_the_same_browser_does_not_get_it(
    client: FlaskClient, clock: FakeClock
) -> None:
    _expire_then_post(client, clock)
    sign_in(client, NORRMALM)
    page = text(client.get(NEW))
    assert "Testa Testsson" not in page
    assert PNR not in page


def test_a_kept_form_expires(client: FlaskClient, clock: FakeClock) -> None:
    _expire_then_post(client, clock)
    clock.advance(minutes=31)
    sign_in(client)
    assert "Testa Testsson" not in text(client.get(NEW))


def test_an_action_posted_after_expiry_leads_back_to_its_page(
    client: FlaskClient, clock: FakeClock
) -> None:
    sign_in(client)
    referral = "00000000-0000-4000-8000-000000000000"
    token = csrf(client.get(NEW))
    clock.advance(minutes=16)
    response = client.post(
        f"{APP}/referrals/{referral}/notes", data={"text": "Påhittad", "csrf_token": token}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"next=%2Fapp%2Freferrals%2F{referral}")
