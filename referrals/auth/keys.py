"""Where verification keys come from: an issuer's published JWKS, or a local key set.

The remote source follows OIDC discovery: the ``jwks_uri`` is taken only from the
issuer's own discovery document, whose ``issuer`` must match exactly (OIDC Discovery
§4.3) — never from a token header (``jku``/``x5u`` are ignored by design).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import requests
from joserfc.jwk import Key, KeySet

log = logging.getLogger(__name__)


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched; callers answer 503, not 401."""


class KeySource(Protocol):
    def find(self, kid: str) -> Key | None:
        """The key with this id, or None when the issuer does not (or no longer) use it."""


class StaticKeySource:
    def __init__(self, keys: KeySet) -> None:
        self._keys = {k.kid: k for k in keys if k.kid}

    def find(self, kid: str) -> Key | None:
        return self._keys.get(kid)


def jwks_uri_allowed(issuer: str, jwks_uri: str) -> bool:
    """Keys travel over TLS whenever the issuer itself does.

    Plain http is only possible for an http issuer, i.e. a loopback test provider;
    production configuration refuses http issuers."""
    if issuer.startswith("https://"):
        return jwks_uri.startswith("https://")
    return jwks_uri.startswith(("https://", "http://"))


class DiscoveredKeySource:
    """JWKS of an OpenID Provider, cached for ``ttl`` seconds.

    An unknown ``kid`` (the provider rotated keys) triggers one refetch, but at most
    once every ``refetch_interval`` seconds, so a flood of tokens with made-up kids
    cannot turn us into an amplifier against the provider.  The same interval spaces
    out retries while the provider is down; meanwhile keys already fetched stay in use
    (a provider outage must not log everyone out), and without any keys the answer is
    ``KeysUnavailable`` at once, with no request made.
    """

    def __init__(
        self,
        issuer: str,
        *,
        ttl: float,
        refetch_interval: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.issuer = issuer
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Key] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._jwks_uri: str | None = None
        # Told of every failed fetch (referrals_jwks_refresh_failures_total).
        self._on_failure = on_failure

    def find(self, kid: str) -> Key | None:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            may_retry = (
                self._attempted_at is None or now - self._attempted_at >= self._refetch_interval
            )
            if (stale or kid not in self._keys) and may_retry:
                self._attempted_at = now
                try:
                    self._refresh(now)
                except KeysUnavailable:
                    self._on_failure()
                    if not self._keys:
                        raise
                    log.warning("identity provider unreachable; using the cached keys")
            elif self._fetched_at is None:
                raise KeysUnavailable("the identity provider could not be reached recently")
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            if self._jwks_uri is None:
                self._jwks_uri = self._discover()
            document = self._get_json(self._jwks_uri)
            key_set = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except KeysUnavailable:
            raise
        except Exception as exc:  # malformed JWKS: treat like an outage, log-safe message
            raise KeysUnavailable("the identity provider published an unusable JWKS") from exc
        # Only public signing keys with an id are usable: a "kid"-less key could match any
        # token, and a key published for encryption ("use": "enc") must not verify.
        self._keys = {
            k.kid: k
            for k in key_set
            if k.kid and not k.is_private and k.get("use") in (None, "sig")
        }
        self._fetched_at = now

    def _discover(self) -> str:
        metadata = self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if metadata.get("issuer") != self.issuer:
            raise KeysUnavailable("discovery document names another issuer")
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri_allowed(self.issuer, jwks_uri):
            raise KeysUnavailable("discovery document has no usable jwks_uri")
        return jwks_uri

    def _get_json(self, url: str) -> dict[str, object]:
        try:
            response = requests.get(url, timeout=self._timeout, allow_redirects=False)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise KeysUnavailable("the identity provider could not be reached") from exc
        if not isinstance(data, dict):
            raise KeysUnavailable("the identity provider answered with something unexpected")
        return data
