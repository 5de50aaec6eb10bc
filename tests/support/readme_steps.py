"""deploy/README.md's command blocks, run as written against a process-level stack.

A block fenced as ```` ```sh compose-step ```` (or ``compose-backup``, ``compose-restore``)
is a list of commands an operator types in ``deploy/``.  Each is carried out here the way
Compose would, with the services as processes (tests/support/compose_stack.py):

- ``docker compose run --rm SERVICE [ARGS]`` and ``docker compose exec SERVICE ARGS``:
  the service's command (or ARGS) with its environment, secret files and role;
- ``docker compose up -d --wait SERVICES``: each service started and health-checked
  (``postgres``: its first start, the roles script, on a fresh database);
- ``docker compose exec -T postgres pg_dump|pg_restore ...``: the same program on this
  machine, as the server's superuser, with ``>`` / ``<`` as written;
- ``docker compose down``, ``docker volume rm referrals_pgdata``: processes stopped, the
  database dropped;
- ``docker compose build``: nothing (the processes run this checkout);
- ``docker compose exec keycloak ...``: nothing: the stand-in provider already has the
  account (there is no Keycloak here), and it is reported as stood in;
- anything else (``cd deploy``, ``install``, ``sudo cp``): run by the shell in the stack's
  folder (``sudo`` dropped).

A command of another form fails the test, so the README cannot grow a step that nothing
runs.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.compose_stack import (
    DEPLOY,
    Stack,
    create_database_and_roles,
    drop_database,
    make_secrets,
)

README = DEPLOY / "README.md"
STOOD_IN = "stood in"


def steps(tag: str) -> list[str]:
    """The commands of the README's blocks fenced ```sh TAG, in order."""
    blocks = re.findall(rf"^```sh {re.escape(tag)}\n(.*?)^```", README.read_text(), re.M | re.S)
    assert blocks, f"deploy/README.md has no ```sh {tag} block"
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def perform(stack: Stack, command: str) -> str:
    """Carry out one README command; returns what was done, for the test's report."""
    words = shlex.split(command)
    stdin = stdout = None
    if ">" in words:
        stdout = words[words.index(">") + 1]
        words = words[: words.index(">")]
    if "<" in words:
        stdin = words[words.index("<") + 1]
        words = words[: words.index("<")]
    if words[:2] != ["docker", "compose"]:
        if words[:3] == ["docker", "volume", "rm"]:
            assert words[3:] == [f"{stack.compose['name']}_pgdata"], command
            drop_database(stack)
            return "database dropped"
        if words == ["cd", "deploy"]:
            return "in the stack's folder"
        if words[0] == "sudo":
            words = words[1:]
        _shell(stack, words)
        return "shell"
    rest = [w for w in words[2:] if w not in ("--rm", "-d", "--wait", "-T")]
    if rest[:2] == ["--profile", "setup"]:
        rest = rest[2:]
    verb, services = rest[0], rest[1:]
    if verb == "build":
        return "this checkout"
    if verb == "down":
        stack.stop_all()
        return "processes stopped"
    if verb == "up":
        for service in services:
            _up(stack, service)
        return "started " + " ".join(services)
    if verb in ("run", "exec"):
        service, args = services[0], services[1:]
        if service == "keycloak":
            return STOOD_IN
        if service == "postgres":
            _postgres(stack, args, stdin, stdout)
            return "postgres " + args[0]
        if service == "secrets":
            made = make_secrets(stack)
            assert made.returncode == 0, made.stderr
            stack.start_idp()  # Keycloak starts on these secrets
            return "secrets made"
        if service == "migrate" and not _database_exists(stack):
            _up(stack, "postgres")  # `run migrate` starts PostgreSQL, its dependency
        result = stack.run(service, *args)
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        return f"{service}: {result.stdout.strip().splitlines()[-1] if result.stdout else ''}"
    raise AssertionError(f"no way to run README command: {command}")


def _up(stack: Stack, service: str) -> None:
    if service == "postgres":
        if not _database_exists(stack):
            created = create_database_and_roles(stack)
            assert created.returncode == 0, created.stderr
    elif service == "app":
        stack.start_app()
    elif service in ("worker", "sealer"):
        stack.start(service)
    else:
        raise AssertionError(f"unknown service {service}")


def _database_exists(stack: Stack) -> bool:
    admin = create_engine(stack.admin_url)
    try:
        with admin.connect() as connection:
            found = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": stack.database}
            )
    finally:
        admin.dispose()
    return found is not None


def _postgres(stack: Stack, args: list[str], stdin: str | None, stdout: str | None) -> None:
    assert args[0] in ("pg_dump", "pg_restore", "psql"), args
    admin = make_url(stack.admin_url)
    name = stack.compose["services"]["postgres"]["environment"]["DB_NAME"]
    args = [stack.database if a == name else a for a in args]
    command = [args[0], "--host", admin.host or "127.0.0.1", "--port", str(admin.port or 5432)]
    command += args[1:]
    with contextlib.ExitStack() as files:
        source = files.enter_context((stack.workdir / stdin).open("rb")) if stdin else None
        sink = files.enter_context((stack.workdir / stdout).open("wb")) if stdout else None
        result = subprocess.run(
            command,
            stdin=source,
            stdout=sink if sink is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def _shell(stack: Stack, words: list[str]) -> None:
    result = subprocess.run(
        words, cwd=stack.workdir, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{words}: {result.stderr}"


def run_all(stack: Stack, tag: str) -> list[tuple[str, str]]:
    return [(command, perform(stack, command)) for command in steps(tag)]
