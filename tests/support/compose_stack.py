"""deploy/compose.yaml's services as processes on this machine (no container runtime here).

Each service runs its own ``command`` with its own ``environment``, ``env_file`` and
secret files, and connects as the database role its secrets name; only what a container
would get from its image or from the network is put in by hand (``_translate``): the
image's settings, paths (``/run/secrets/X`` → the secrets folder, ``/app`` → the
repository), the database's host and names (unique per run, since roles are shared by
the whole server), the issuer (the test IdP over HTTPS stands in for Keycloak) and ports.
A service that names a secret it does not mount fails here, as it would in a container.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.databases import empty_postgres_database, postgres_admin_url
from tests.support.idp import TestIdP, default_clients

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 60.0
# What deploy/Dockerfile sets in the image (ENV), translated to this machine.
IMAGE_ENV = ("REFERRALS_ENV", "REFERRALS_INSTANCE_PATH", "REFERRALS_MIGRATIONS_PATH", "PORT")


def load_compose() -> dict[str, Any]:
    """The file as Compose reads it (YAML merge keys resolved)."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def unescape(value: str) -> str:
    """Compose interpolation: ``$$`` is a literal ``$`` for the container's shell."""
    return value.replace("$$", "$")


@dataclass
class Stack:
    compose: dict[str, Any]
    workdir: Path
    secrets_dir: Path
    database: str
    roles: dict[str, str]
    admin_url: str
    idp: TestIdP | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    # The port each app instance listens on.
    ports: dict[str, int] = field(default_factory=dict)

    def start_idp(self) -> TestIdP:
        """The stand-in for Keycloak: HTTPS with the certificate the secrets service made,
        clients whose roles sit where Keycloak puts them."""
        if self.idp is None:
            tls = (self.secrets_dir / "idp-tls-cert.pem", self.secrets_dir / "idp-tls-key.pem")
            clients = keycloak_shaped(default_clients())
            self.idp = self.resources.enter_context(
                TestIdP.start(self.workdir / "idp", clients, tls=tls)
            )
        return self.idp

    # -- the services' environment -----------------------------------------------------

    def service(self, name: str) -> dict[str, Any]:
        service: dict[str, Any] = self.compose["services"][name]
        return service

    def secret_path(self, service: str, secret: str) -> Path:
        mounted = self.service(service).get("secrets", [])
        if secret not in mounted:
            raise AssertionError(f"{service} reads /run/secrets/{secret} but does not mount it")
        source = Path(self.compose["secrets"][secret]["file"])
        return self.secrets_dir / source.name

    def env(self, service: str, **extra: str) -> dict[str, str]:
        spec = self.service(service)
        env = {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            # The image's ENV (deploy/Dockerfile), here.
            "REFERRALS_ENV": "production",
            "REFERRALS_INSTANCE_PATH": str(self.workdir / f"instance-{service}"),
            "REFERRALS_MIGRATIONS_PATH": str(ROOT / "migrations"),
        }
        for env_file in spec.get("env_file", []):
            path = env_file["path"] if isinstance(env_file, dict) else env_file
            env |= _read_env_file(self.secrets_dir / Path(path).name)
        for key, value in spec.get("environment", {}).items():
            env[key] = self._translate(service, key, str(value))
        return env | extra

    def _translate(self, service: str, key: str, value: str) -> str:
        if value.startswith("/run/secrets/"):
            return str(self.secret_path(service, value.removeprefix("/run/secrets/")))
        if key == "REFERRALS_OIDC_ISSUER":
            assert self.idp is not None
            return self.idp.issuer
        overrides = {
            "DB_HOST": "127.0.0.1",
            "DB_NAME": self.database,
            "DB_OWNER_ROLE": self.roles["owner"],
            "DB_APP_ROLE": self.roles["app"],
            "DB_SEALER_ROLE": self.roles["sealer"],
            "IDP_HOST": "127.0.0.1",
        }
        return overrides.get(key, value)

    def command(self, service: str) -> list[str]:
        command = self.service(service)["command"]
        words = shlex.split(command) if isinstance(command, str) else list(command)
        return [unescape(w).replace("/app/", f"{ROOT}/") for w in words]

    # -- running them ------------------------------------------------------------------

    def run(
        self, service: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The service's command (or ``args`` in its place, like `docker compose run
        SERVICE ARGS`), to the end."""
        command = list(args) if args else self.command(service)
        return subprocess.run(
            command,
            env=self.env(service) | dict(env or {}),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(
        self, service: str, instance: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        name = instance or service
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            self.command(service),
            env=self.env(service) | dict(env or {}),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def start_app(self, instance: str = "app") -> str:
        """An app instance on a port of its own; waits for the service's health check
        (its own command, pointed at that port).  Returns its base URL."""
        port = free_port()
        self.start("app", instance, {"PORT": str(port)})
        self.ports[instance] = port
        check = self.service("app")["healthcheck"]["test"]
        assert check[0] == "CMD"
        probe = [w.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for w in check[1:]]
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            process = self.processes[instance]
            if process.poll() is not None:
                raise AssertionError(f"{instance} exited:\n{self.log(instance)}")
            result = subprocess.run(
                probe, env=self.env("app"), capture_output=True, timeout=30, check=False
            )
            if result.returncode == 0:
                return f"http://127.0.0.1:{port}"
            if time.monotonic() > deadline:
                raise AssertionError(f"{instance} never became healthy:\n{self.log(instance)}")
            time.sleep(0.3)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    # -- the database as each role -----------------------------------------------------

    def url(self, duty: str) -> str:
        """The URL a service of this duty reads from its secret (owner, app, sealer)."""
        return (self.secrets_dir / f"{duty}-database-url").read_text()

    def token(self, client_id: str) -> str:
        assert self.idp is not None
        return self.idp.token(client_id)

    def api(self, base: str, client_id: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token(client_id)}"
        session.headers["Accept"] = "application/json"
        return session


def keycloak_shaped(clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The test clients with their roles where Keycloak puts them (``realm_access.roles``,
    which compose.yaml's REFERRALS_OIDC_ROLES_CLAIM names), not at the top level."""
    shaped = []
    for client in clients:
        claims = dict(client.get("claims", {}))
        if "roles" in claims:
            claims["realm_access"] = {"roles": claims.pop("roles")}
        shaped.append(client | {"claims": claims})
    return shaped


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def make_secrets(stack: Stack) -> subprocess.CompletedProcess[str]:
    """The `secrets` service: its command, its environment, ``/secrets`` → our folder."""
    command = [w if w != "/secrets" else str(stack.secrets_dir) for w in stack.command("secrets")]
    command[0] = sys.executable if command[0] == "python" else command[0]
    return subprocess.run(
        command,
        env=stack.env("secrets"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def create_database_and_roles(stack: Stack) -> subprocess.CompletedProcess[str]:
    """The postgres image's init step: deploy/compose/postgres-roles.sh, with the
    service's environment and its secrets, against the local server as its superuser."""
    admin = make_url(stack.admin_url)
    env = stack.env("postgres") | {
        "DB_SECRETS_DIR": str(stack.secrets_dir),
        "POSTGRES_USER": admin.username or "postgres",
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
    }
    mount = next(v for v in stack.service("postgres")["volumes"] if "postgres-roles.sh" in v)
    script = DEPLOY / mount.split(":")[0].removeprefix("./")
    return subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@contextlib.contextmanager
def compose_stack(workdir: Path, *, prepare: bool = True) -> Iterator[Stack]:
    """A stack on a database and roles of its own, dropped afterwards.  ``prepare``: make
    the secrets, the database and roles, start the IdP and run the migrate service (else
    the caller does, e.g. from deploy/README.md's steps)."""
    suffix = secrets.token_hex(4)
    roles = {duty: f"rf_{suffix}_{duty}" for duty in ("owner", "app", "sealer")}
    # empty_postgres_database skips (or fails in CI) when there is no server; its own
    # throw-away database is not used: the roles script creates the stack's.
    with empty_postgres_database():
        pass
    admin_url = postgres_admin_url()
    stack = Stack(
        compose=load_compose(),
        workdir=workdir,
        secrets_dir=workdir / "secrets",
        database=f"referrals_stack_{suffix}",
        roles=roles,
        admin_url=admin_url,
    )
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with stack.resources:
            if prepare:
                made = make_secrets(stack)
                assert made.returncode == 0, made.stderr
                created = create_database_and_roles(stack)
                assert created.returncode == 0, created.stderr
                stack.start_idp()
                migrated = stack.run("migrate")
                assert migrated.returncode == 0, migrated.stdout + migrated.stderr
            try:
                yield stack
            finally:
                stack.stop_all()
    finally:
        drop_database(stack)
        with admin.connect() as connection:
            for role in roles.values():
                connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def drop_database(stack: Stack) -> None:
    """The data volume is gone."""
    admin = create_engine(stack.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{stack.database}" WITH (FORCE)'))
    finally:
        admin.dispose()
