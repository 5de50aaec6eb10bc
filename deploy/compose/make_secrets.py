"""Create every secret the Compose stack mounts, once, in one folder (never overwriting).

Run by the ``secrets`` service of deploy/compose.yaml (``docker compose --profile setup run
--rm secrets``), inside the image as root, so that it can give each file to the uid of the
container that reads it; the process-level smoke test (tests/ops/test_compose_smoke.py)
runs the same command with the same environment.

    python make_secrets.py DIR

Environment (deploy/compose.yaml sets each one):

    DB_HOST, DB_PORT, DB_NAME            where the app's database is
    DB_OWNER_ROLE, DB_APP_ROLE,          the three database roles of SECURITY.md: the
    DB_SEALER_ROLE                       migration owner, the app, the sealer
    IDP_HOST                             the name in Keycloak's TLS certificate
    SECRET_UIDS                          "name=uid,..."  owner of each file when run as root

Keys are made by the project's own code (the keyring, the checkpoint signing key) or by
``cryptography`` (the IdP's self-signed TLS certificate); passwords by ``secrets``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from referrals.audit import chain
from referrals.audit.keys import encode_public_key
from referrals.crypto.keyring import KeyringFile

# uid of the process that reads each file in its container: the app image (10001), the
# postgres image (999) and the Keycloak image (1000).  Overridable for other images.
DEFAULT_UIDS = {"referrals": 10001, "postgres": 999, "keycloak": 1000}
# Which container reads which file.
READERS = {
    "db-postgres-password": "postgres",
    "db-owner-password": "postgres",
    "db-app-password": "postgres",
    "db-sealer-password": "postgres",
    "owner-database-url": "referrals",
    "app-database-url": "referrals",
    "sealer-database-url": "referrals",
    "keyring.json": "referrals",
    "audit-signing-key.pem": "referrals",
    "web-secret-key": "referrals",
    "keycloak-admin-password": "keycloak",
    "idp-tls-key.pem": "keycloak",
    # Public: the app trusts it to reach Keycloak, and so may a browser.
    "idp-tls-cert.pem": "referrals",
    "audit-public-keys.env": "referrals",
}
PUBLIC = {"idp-tls-cert.pem", "audit-public-keys.env"}


def _password() -> str:
    return secrets.token_urlsafe(32)


def _write(path: Path, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _tls(host: str) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate for ``host``, valid one year: enough to try
    the stack; replace it with your own for real use."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem_key, cert.public_bytes(serialization.Encoding.PEM)


def _uids(raw: str) -> dict[str, int]:
    uids = dict(DEFAULT_UIDS)
    for part in filter(None, (p.strip() for p in raw.split(","))):
        reader, _, uid = part.partition("=")
        uids[reader.strip()] = int(uid)
    return uids


def make(directory: Path, env: dict[str, str]) -> list[str]:
    """Create what is missing in ``directory``; returns the names created."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    host = env.get("DB_HOST", "postgres")
    port = env.get("DB_PORT", "5432")
    database = env.get("DB_NAME", "referrals")
    roles = {
        "owner": env.get("DB_OWNER_ROLE", "referrals_owner"),
        "app": env.get("DB_APP_ROLE", "referrals_app"),
        "sealer": env.get("DB_SEALER_ROLE", "referrals_sealer"),
    }
    created: list[str] = []

    def once(name: str, make_it: Callable[[Path], object]) -> None:
        path = directory / name
        if path.exists():
            return
        make_it(path)
        created.append(name)

    once("db-postgres-password", lambda p: _write(p, _password()))
    for duty, role in roles.items():
        once(f"db-{duty}-password", lambda p: _write(p, _password()))
        password = (directory / f"db-{duty}-password").read_text()
        url = (
            f"postgresql+psycopg://{quote(role)}:{quote(password, safe='')}"
            f"@{host}:{port}/{quote(database)}"
        )
        once(f"{duty}-database-url", lambda p, url=url: _write(p, url))
    once("keyring.json", lambda p: KeyringFile(p).create(development=False))
    once("audit-signing-key.pem", chain.create_signing_key_file)
    once("web-secret-key", lambda p: _write(p, secrets.token_urlsafe(48)))
    once("keycloak-admin-password", lambda p: _write(p, _password()))
    idp_host = env.get("IDP_HOST", "keycloak.localhost")
    if not (directory / "idp-tls-key.pem").exists():
        key, cert = _tls(idp_host)
        _write(directory / "idp-tls-key.pem", key)
        (directory / "idp-tls-cert.pem").unlink(missing_ok=True)
        _write(directory / "idp-tls-cert.pem", cert)
        created += ["idp-tls-key.pem", "idp-tls-cert.pem"]
    public = chain.load_signing_key(directory / "audit-signing-key.pem").public_key()
    public_env = f"REFERRALS_AUDIT_PUBLIC_KEYS={encode_public_key(public)}\n"
    (directory / "audit-public-keys.env").unlink(missing_ok=True)
    _write(directory / "audit-public-keys.env", public_env)
    _hand_over(directory, _uids(env.get("SECRET_UIDS", "")))
    return created


def _hand_over(directory: Path, uids: dict[str, int]) -> None:
    """Each file readable by its reader only (0400; public ones 0444).  Giving a file to
    another uid needs root, which the setup container is; run as anyone else (the smoke
    test), the files stay the caller's."""
    for name, reader in READERS.items():
        path = directory / name
        path.chmod(0o444 if name in PUBLIC else 0o400)
        if os.geteuid() == 0:
            os.chown(path, uids[reader], uids[reader])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: make_secrets.py DIR\n")
        return 2
    created = make(Path(argv[1]), dict(os.environ))
    made = ", ".join(created) if created else "nothing (all present)"
    sys.stdout.write(f"created {made} in {argv[1]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
