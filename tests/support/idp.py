"""Driver for the loopback OpenID Provider in tests/idp (npm package oidc-provider).

The provider is a real, certified implementation: tokens it issues are what a production
IdP would send, signed with keys the tests also hold (``TestIdP.keys``) so they can forge
variants with one claim changed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import selectors
import shutil
import subprocess
import time
from html import unescape
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from joserfc.jwk import ECKey, KeySet, RSAKey

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"
STARTUP_TIMEOUT = 10.0
HTTP_TIMEOUT = 10.0

API_SCOPES = "referrals:read referrals:write audit:read admin"
CODE_CLIENT = {
    "client_id": "web",
    "client_secret": "test-secret-web",
    "redirect_uri": "http://127.0.0.1/cb",
}

# People who sign in to the web front end through the provider's login page, by login name.
WEB_ACCOUNTS: dict[str, dict[str, Any]] = {
    "ung-anna": {"roles": ["youth_worker"], "unit": "ungdomsjouren"},
    # A youth worker of another unit: none of ungdomsjouren's referrals are theirs.
    "ung-kalle": {"roles": ["youth_worker"], "unit": "kungsholmen"},
    "norr-cw": {"roles": ["caseworker"], "unit": "norrmalm"},
    "soder-cw": {"roles": ["caseworker"], "unit": "sodermalm"},
    "revisor": {"roles": ["auditor"]},
}
WEB_SCOPE = "openid referrals:read referrals:write audit:read"


def web_client(origin: str, callback_paths: list[str], logout_paths: list[str]) -> dict[str, Any]:
    """The web front end as a confidential authorization code + PKCE client of ``origin``."""
    return {
        "client_id": "referrals-web",
        "client_secret": "test-secret-referrals-web",
        "scope": WEB_SCOPE,
        "redirect_uris": [origin + path for path in callback_paths],
        "post_logout_redirect_uris": [origin + path for path in logout_paths],
    }


def generate_keys(rsa_kid: str = "rsa-1", ec_kid: str = "ec-1") -> KeySet:
    """Fresh private signing keys: RSA 2048 for RS256 and EC P-256 for ES256."""
    return KeySet(
        [
            RSAKey.generate_key(2048, parameters={"kid": rsa_kid, "alg": "RS256"}, private=True),
            ECKey.generate_key("P-256", parameters={"kid": ec_kid, "alg": "ES256"}, private=True),
        ]
    )


# Swedish eID framework (Digg) levels of assurance, as a SITHS or BankID IdP sends them.
LOA3 = "http://id.elegnamnden.se/loa/1.0/loa3"
LOA2 = "http://id.elegnamnden.se/loa/1.0/loa2"


def _client(client_id: str, scope: str, claims: dict[str, Any]) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_secret": f"test-secret-{client_id}",
        "scope": scope,
        "claims": claims,
    }


def default_clients() -> list[dict[str, Any]]:
    """Machine clients covering each role/unit combination the API distinguishes."""
    rw = "referrals:read referrals:write"
    return [
        _client("ungdomsjouren-app", rw, {"roles": ["youth_worker"], "unit": "ungdomsjouren"}),
        _client("norrmalm-system", rw, {"roles": ["caseworker"], "unit": "norrmalm"}),
        _client("sodermalm-system", rw, {"roles": ["caseworker"], "unit": "sodermalm"}),
        _client("auditor-app", "audit:read", {"roles": ["auditor"]}),
        _client("admin-app", "admin", {"roles": ["admin"]}),
        _client(
            "readonly-worker",
            "referrals:read",
            {"roles": ["youth_worker"], "unit": "ungdomsjouren"},
        ),
        # Login assurance (acr): a caseworker signed in with Swedish eID at LoA 3, and one
        # at a weaker level; the other clients' tokens carry no acr at all.
        _client(
            "norrmalm-eid",
            rw,
            {"roles": ["caseworker"], "unit": "norrmalm", "acr": LOA3},
        ),
        _client(
            "norrmalm-loa2",
            rw,
            {"roles": ["caseworker"], "unit": "norrmalm", "acr": LOA2},
        ),
        # A role paired with what it must not be enough for (the mutation check's cases):
        # an auditor with a unit, a caseworker of a referring unit, and a caseworker whose
        # client was (wrongly) granted the admin scope.
        _client(
            "unit-auditor", "referrals:read audit:read", {"roles": ["auditor"], "unit": "norrmalm"}
        ),
        _client("ungdomsjouren-caseworker", rw, {"roles": ["caseworker"], "unit": "ungdomsjouren"}),
        _client("admin-scoped-caseworker", "admin", {"roles": ["caseworker"], "unit": "norrmalm"}),
        _client(
            "audit-scoped-caseworker", "audit:read", {"roles": ["caseworker"], "unit": "norrmalm"}
        ),
        # Roles nested the way Keycloak puts them in its default tokens.
        _client(
            "keycloak-style",
            rw,
            {"realm_access": {"roles": ["caseworker"]}, "unit": "norrmalm"},
        ),
    ]


def default_resources() -> list[dict[str, Any]]:
    """The API as a resource server; the first entry is the default for token requests."""
    return [
        {
            "indicator": "urn:referrals-api",
            "audience": "referrals-api",
            "alg": "RS256",
            "scope": API_SCOPES,
            "ttl": 300,
        },
        {
            "indicator": "urn:referrals-api:es256",
            "audience": "referrals-api",
            "alg": "ES256",
            "scope": API_SCOPES,
            "ttl": 300,
        },
    ]


class TestIdP:
    """A running provider process. Create with :meth:`start`; stop with :meth:`stop`."""

    __test__ = False  # not a test class, despite the name

    def __init__(
        self,
        process: subprocess.Popen[str],
        issuer: str,
        keys: KeySet,
        clients: list[dict[str, Any]],
        log_path: Path,
        web: dict[str, Any] | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.process = process
        self.issuer = issuer
        self.port = urlsplit(issuer).port or 0
        self.keys = keys
        self.clients = {c["client_id"]: c for c in clients}
        self.web = web
        self.log_path = log_path
        self.http = requests.Session()
        if ca_file is not None:
            # Not from the environment: requests lets REQUESTS_CA_BUNDLE override it.
            self.http.trust_env = False
            self.http.verify = str(ca_file)
        try:
            discovery = self.http.get(
                f"{issuer}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT
            )
            discovery.raise_for_status()
        except BaseException:
            self.http.close()
            raise
        self.metadata: dict[str, Any] = discovery.json()
        self.token_endpoint: str = self.metadata["token_endpoint"]
        self.jwks_uri: str = self.metadata["jwks_uri"]
        self.authorization_endpoint: str = self.metadata["authorization_endpoint"]

    @classmethod
    def start(
        cls,
        workdir: Path,
        clients: list[dict[str, Any]],
        resources: list[dict[str, Any]] | None = None,
        keys: KeySet | None = None,
        port: int = 0,
        web: dict[str, Any] | None = None,
        accounts: dict[str, dict[str, Any]] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> TestIdP:
        """``tls``: (certificate, key) PEM files: serve HTTPS with them, and trust the
        certificate (self-signed) for our own requests."""
        if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(
                f"oidc-provider is not installed in {IDP_DIR}: run `npm ci --prefix tests/idp`"
            )
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH; the test IdP needs Node.js 20 or later")
        if keys is None:
            keys = generate_keys()
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "idp-config.json"
        config = {
            "host": "127.0.0.1",
            "port": port,
            "jwks": keys.as_dict(private=True),
            "resources": resources if resources is not None else default_resources(),
            "clients": clients,
            "code_client": CODE_CLIENT,
            "web_client": web,
            "accounts": WEB_ACCOUNTS if accounts is None else accounts,
        }
        if tls is not None:
            config["tls"] = {"cert": str(tls[0]), "key": str(tls[1])}
        config_path.write_text(json.dumps(config, indent=2))
        # stderr goes to a file: nothing drains a pipe during the session, and a full pipe
        # would block the provider.
        log_path = workdir / "idp.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [node, "provider.mjs", str(config_path)],
                cwd=IDP_DIR,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        try:
            issuer = _read_issuer(process, log_path)
            ca_file = tls[0] if tls is not None else None
            return cls(process, issuer, keys, clients, log_path, web, ca_file)
        except BaseException:
            _terminate(process)
            raise

    def token(
        self, client_id: str, *, scope: str | None = None, resource: str | None = None
    ) -> str:
        """A client_credentials access token (a JWT).

        ``scope=None`` asks for every scope the client is allowed, as an IdP's default client
        scopes would; pass ``""`` for a token without a scope claim. A scope outside the
        client's allow-list is refused by the provider (invalid_scope).
        """
        client = self.clients[client_id]
        data = {
            "grant_type": "client_credentials",
            "scope": client["scope"] if scope is None else scope,
        }
        if resource is not None:
            data["resource"] = resource
        auth: tuple[str, str] | None = (client_id, client["client_secret"])
        if client.get("token_endpoint_auth_method") == "client_secret_post":
            data |= {"client_id": client_id, "client_secret": client["client_secret"]}
            auth = None
        response = self.http.post(self.token_endpoint, data=data, auth=auth, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            raise RuntimeError(
                f"token request for {client_id} failed: {response.status_code} {response.text}"
            )
        return str(response.json()["access_token"])

    def id_token(self, login: str = "test-user") -> str:
        """An ID token from a full authorization code + PKCE flow through the dev login pages."""
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        redirect_uri = CODE_CLIENT["redirect_uri"]
        with requests.Session() as browser:
            page = browser.get(
                self.authorization_endpoint,
                params={
                    "client_id": CODE_CLIENT["client_id"],
                    "response_type": "code",
                    "scope": "openid",
                    "redirect_uri": redirect_uri,
                    "state": secrets.token_urlsafe(16),
                    "nonce": secrets.token_urlsafe(16),
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
                allow_redirects=False,
                timeout=HTTP_TIMEOUT,
            )
            # Login page, then consent page, then the redirect back to the client.
            for _ in range(4):
                page = _follow(browser, page, redirect_uri)
                if page.is_redirect:
                    break
                action, fields = _form(page)
                if fields.get("prompt") == "login":
                    fields |= {"login": login, "password": "any"}
                page = browser.post(
                    urljoin(page.url, action),
                    data=fields,
                    allow_redirects=False,
                    timeout=HTTP_TIMEOUT,
                )
            else:
                raise RuntimeError(f"login flow did not finish: {page.status_code} {page.text}")
            query = parse_qs(urlsplit(page.headers["location"]).query)
            if "code" not in query:
                raise RuntimeError(f"authorization failed: {page.headers['location']}")
        response = self.http.post(
            self.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(CODE_CLIENT["client_id"], CODE_CLIENT["client_secret"]),
            timeout=HTTP_TIMEOUT,
        )
        if response.status_code != 200:
            raise RuntimeError(f"code exchange failed: {response.status_code} {response.text}")
        return str(response.json()["id_token"])

    def stop(self) -> None:
        self.http.close()
        _terminate(self.process)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RestartableIdP:
    """A provider that can be replaced by a new process on the same port, hence the same
    issuer, e.g. with rotated keys. The first :meth:`start` picks a free port."""

    def __init__(
        self,
        workdir: Path,
        clients: list[dict[str, Any]],
        resources: list[dict[str, Any]] | None = None,
    ) -> None:
        self.workdir = workdir
        self.clients = clients
        self.resources = resources
        self.port = 0
        self.current: TestIdP | None = None
        self._runs = 0

    def start(self, keys: KeySet | None = None) -> TestIdP:
        """Stop the running provider, if any, and start a new one with ``keys``."""
        self.stop()
        self._runs += 1
        self.current = TestIdP.start(
            self.workdir / f"run-{self._runs}",
            self.clients,
            self.resources,
            keys,
            port=self.port,
        )
        self.port = self.current.port
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


def _read_issuer(process: subprocess.Popen[str], log_path: Path) -> str:
    """Wait for the provider's readiness line: its issuer, first on stdout."""
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"test IdP did not start within {STARTUP_TIMEOUT} s:\n{log_path.read_text()}"
                )
    line = process.stdout.readline().strip()
    if not line.startswith("http"):
        process.wait(timeout=STARTUP_TIMEOUT)
        raise RuntimeError(
            f"test IdP exited with status {process.returncode}:\n{log_path.read_text()}"
        )
    return line


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _follow(
    session: requests.Session, response: requests.Response, stop_at: str
) -> requests.Response:
    """Follow redirects inside the provider, stopping at the redirect back to the client."""
    while response.is_redirect and not response.headers["location"].startswith(stop_at):
        response = session.get(
            urljoin(response.url, response.headers["location"]),
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
    if not response.is_redirect and response.status_code != 200:
        raise RuntimeError(f"login flow failed: {response.status_code} {response.text}")
    return response


_FORM_ACTION = re.compile(r'<form[^>]*\baction="([^"]+)"')
_HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def _form(page: requests.Response) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the single form on a dev interaction page."""
    match = _FORM_ACTION.search(page.text)
    if match is None:
        raise RuntimeError(f"no form on {page.url}: {page.text[:500]}")
    fields = {name: unescape(value) for name, value in _HIDDEN_INPUT.findall(page.text)}
    return unescape(match.group(1)), fields
