"""The development token issuer behind ``referrals dev-token``.

It exists so that the embedded default runs without an identity provider.  Its
tokens are ordinary ES256 access tokens from issuer ``DEV_ISSUER``; the app trusts
that issuer only in development (``Settings.check_production`` refuses it otherwise).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from referrals.auth.principal import Role, Scope

DEV_ISSUER = "urn:referrals:development-issuer"
DEV_CLIENT_ID = "referrals-dev-token"
DEV_ALGORITHM = "ES256"
KEY_FILE = "dev-token-signing-key.json"

ROLE_SCOPES: dict[Role, tuple[Scope, ...]] = {
    Role.YOUTH_WORKER: (Scope.REFERRALS_READ, Scope.REFERRALS_WRITE),
    Role.CASEWORKER: (Scope.REFERRALS_READ, Scope.REFERRALS_WRITE),
    Role.AUDITOR: (Scope.AUDIT_READ,),
    Role.ADMIN: (Scope.ADMIN,),
    Role.UNIT_LEAD: (Scope.REFERRALS_READ, Scope.REFERRALS_WRITE),
    Role.PRIVACY_OFFICER: (Scope.PRIVACY,),
    Role.ANALYST: (Scope.STATISTICS_READ,),
}


def load_or_create_key(instance_path: Path) -> ECKey:
    """The signing key, created once.  Safe when several workers start together.

    The key is written to a private temporary file and then hard-linked into place:
    ``link`` fails if the name exists, so exactly one process's key wins and every
    other process reads that one, never a half-written file.
    """
    path = instance_path / KEY_FILE
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        key = ECKey.generate_key("P-256", private=True)
        data = key.as_dict(private=True, kid=key.thumbprint(), alg=DEV_ALGORITHM, use="sig")
        fd, tmp = tempfile.mkstemp(dir=instance_path, prefix=".dev-key-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker won the race; use its key
        finally:
            os.unlink(tmp)
    key = ECKey.import_key(json.loads(path.read_text()))
    return key


def public_key_set(key: ECKey) -> KeySet:
    public = ECKey.import_key(key.as_dict(private=False))
    return KeySet([public])


def mint(
    key: ECKey,
    *,
    role: Role,
    unit: str | None,
    audience: str,
    subject: str | None = None,
    lifetime: int = 3600,
    now: float | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": DEV_ISSUER,
        "sub": subject or f"dev-{role.value}" + (f"@{unit}" if unit else ""),
        "aud": audience,
        "client_id": DEV_CLIENT_ID,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "scope": " ".join(ROLE_SCOPES[role]),
        "roles": [role.value],
    }
    if unit:
        claims["unit"] = unit
    header = {"alg": DEV_ALGORITHM, "typ": "at+jwt", "kid": key.kid}
    return jwt.encode(header, claims, key, algorithms=[DEV_ALGORITHM])
