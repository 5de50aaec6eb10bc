"""A tiny test-only relying party: proves the provider's web client works in a browser.

It signs a person in with authorization code + PKCE through the provider's own login and
consent pages, keeps the tokens it gets (server-side, in memory) and calls the real API
with the access token, as the web front end does.  It also serves two static pages for
the accessibility helper's own tests: one that meets WCAG 2.1 AA and one that does not.
Mounted next to the app under test at :data:`MOUNT` by the browser fixtures.
"""

from __future__ import annotations

import secrets
from typing import Any

import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, redirect, request, url_for
from markupsafe import escape

MOUNT = "/_test-rp"
CALLBACK = f"{MOUNT}/callback"
SIGNED_OUT = f"{MOUNT}/signed-out"

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""

ACCESSIBLE_BODY = """
<form method="post" action="#">
  <label for="name">Young person's name</label>
  <input id="name" name="name" type="text" autocomplete="off">
  <fieldset><legend>Priority</legend>
    <input id="p-normal" type="radio" name="priority" value="normal" checked>
    <label for="p-normal">Normal</label>
    <input id="p-urgent" type="radio" name="priority" value="urgent">
    <label for="p-urgent">Urgent</label>
  </fieldset>
  <button type="submit">Send</button>
</form>"""

# Three well-known failures: an image without text, a field without a label, low contrast.
INACCESSIBLE_BODY = """
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="20" height="20">
<input type="text" name="nameless">
<p style="color:#aaa;background:#fff">Grey on white</p>"""


def create_relying_party(issuer: str, client: dict[str, Any], api: str) -> Flask:
    """``client`` is the provider's web client (:func:`tests.support.idp.web_client`);
    ``api`` the origin of the live API that the access token is sent to."""
    rp = Flask("test-relying-party")
    rp.config.update(
        SECRET_KEY=secrets.token_bytes(32),
        SESSION_COOKIE_NAME="test-rp",
        SESSION_COOKIE_PATH=MOUNT,
    )
    oauth = OAuth(rp)
    oauth.register(
        "idp",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": client["scope"], "code_challenge_method": "S256"},
    )
    tokens: dict[str, Any] = {}
    rp.extensions["test_rp_tokens"] = tokens

    @rp.get("/login")
    def login() -> Response:
        response: Response = oauth.idp.authorize_redirect(url_for("callback", _external=True))
        rp.extensions["test_rp_authorize_url"] = response.headers["Location"]
        return response

    @rp.get("/callback")
    def callback() -> Response:
        token = oauth.idp.authorize_access_token()
        tokens.clear()
        tokens.update(token)
        listing = requests.get(
            f"{api}/api/v1/referrals",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10,
        )
        body = f'<p>Signed in.</p><p id="api-status">{listing.status_code}</p>'
        return Response(_PAGE.format(title="Signed in", body=body))

    @rp.get("/logout")
    def logout() -> Response:
        metadata = oauth.idp.load_server_metadata()
        target = requests.Request(
            "GET",
            metadata["end_session_endpoint"],
            params={
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": url_for("signed_out", _external=True),
                "client_id": client["client_id"],
            },
        ).prepare()
        return redirect(str(target.url))  # type: ignore[return-value]

    @rp.get("/signed-out")
    def signed_out() -> Response:
        return Response(_PAGE.format(title="Signed out", body="<p>Signed out.</p>"))

    @rp.get("/language")
    def language() -> Response:
        asked = escape(request.headers.get("Accept-Language", ""))
        body = f'<p id="accept-language">{asked}</p>'
        return Response(_PAGE.format(title="Language", body=body))

    @rp.get("/accessible")
    def accessible() -> Response:
        return Response(_PAGE.format(title="Accessible", body=ACCESSIBLE_BODY))

    @rp.get("/inaccessible")
    def inaccessible() -> Response:
        return Response(_PAGE.format(title="Inaccessible", body=INACCESSIBLE_BODY))

    return rp
