"""The ``referrals`` command: database, seed data, development tokens, spec, serving."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from marshmallow import ValidationError

from referrals.api.schemas.units import SeedDocument
from referrals.app import create_app, key_provider
from referrals.audit import chain, freshness, sealing
from referrals.audit import export as audit_export_rows
from referrals.audit import keys as audit_keys
from referrals.audit import publish as publish_checkpoint
from referrals.audit.actions import AuditAction
from referrals.audit.recorder import AuditUnavailable, PendingAudit, record
from referrals.audit.sealer import Sealer
from referrals.auth import devissuer
from referrals.auth.operator import Operator, check_reason, identify
from referrals.auth.principal import Role
from referrals.config import ConfigError, Environment, Settings
from referrals.crypto.keyring import KeyringFile
from referrals.db import migrate
from referrals.db.models import AuditCheckpoint
from referrals.domain.codes import EraseReason
from referrals.domain.errors import DomainError
from referrals.runtime import Runtime, audit_public_keys, operator_event
from referrals.services import keyring_admin, seeding
from referrals.services import referrals as referral_cases
from referrals.services.errors import ServiceError
from referrals.worker import Worker

log = logging.getLogger(__name__)

SPEC_PATH = Path("openapi") / "openapi.json"
# Who each printed development token is for, in the embedded demo.
DEMO_TOKENS: tuple[tuple[Role, str | None], ...] = (
    (Role.YOUTH_WORKER, "ungdomsjouren"),
    (Role.CASEWORKER, "norrmalm"),
    (Role.CASEWORKER, "sodermalm"),
    (Role.AUDITOR, None),
    (Role.ADMIN, None),
)


def _app(*, development_unless_set: bool = False) -> Flask:
    """The app by the environment.  ``development_unless_set``: commands that only make
    sense locally (quickstart, writing the spec) ask for development themselves."""
    try:
        app = create_app(_settings(development_unless_set=development_unless_set))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    # Close the pools when the command ends: a server-side connection left to the garbage
    # collector is a warning (and a held slot) wherever the command runs in-process.
    click.get_current_context().call_on_close(_runtime(app).dispose)
    return app


def _settings(*, development_unless_set: bool = False) -> Settings:
    environ: dict[str, str] = dict(os.environ)
    if development_unless_set and not environ.get("REFERRALS_ENV", "").strip():
        environ["REFERRALS_ENV"] = Environment.DEVELOPMENT.value
    try:
        return Settings.from_env(environ)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _runtime(app: Flask) -> Runtime:
    runtime = app.extensions["referrals"]
    assert isinstance(runtime, Runtime)
    return runtime


Command = TypeVar("Command", bound=Callable[..., Any])

ACTOR_HELP = (
    "Who acts, when the OS account is shared; recorded as claimed (unverified), "
    "beside the OS account."
)
REASON_HELP = "Why, recorded in the audit trail: a code or ticket reference, never free text."


def operator_options(*, reason_required: bool) -> Callable[[Command], Command]:
    """--actor and --reason: every command that changes data or keys records who and why."""

    def decorate(command: Command) -> Command:
        command = click.option("--reason", required=reason_required, help=REASON_HELP)(command)
        return click.option("--actor", default=None, help=ACTOR_HELP)(command)

    return decorate


def _operator(actor: str | None, reason: str | None) -> tuple[Operator, str | None]:
    try:
        return identify(actor), check_reason(reason)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _audited(
    actor: str | None, action: AuditAction, reason: str | None, target: tuple[str, object] | None
) -> tuple[Operator, PendingAudit]:
    operator, checked = _operator(actor, reason)
    pending = operator_event(operator, action, reason=checked)
    if target is not None:
        pending.target(*target)
    return operator, pending


def _unrecorded() -> click.ClickException:
    return click.ClickException("the audit trail cannot record this command: nothing was changed")


@click.group()
def main() -> None:
    """referrals: case management for youth-at-risk referrals."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("harden")
@click.option("--app-role", required=True, help="The database role the app connects as.")
@click.option(
    "--sealer-role",
    required=True,
    help="The database role `referrals audit seal` connects as (REFERRALS_SEALER_DATABASE_URL).",
)
@operator_options(reason_required=True)
def db_harden(app_role: str, sealer_role: str, actor: str | None, reason: str) -> None:
    """PostgreSQL: separate the audit duties (run as the migration owner).

    The app role may INSERT and SELECT events and only read seals and checkpoints; the
    sealer role may read events and INSERT seals and checkpoints, and nothing else."""
    runtime = _runtime(_app())
    url = runtime.settings.resolved_database_url(runtime.instance_path)
    if not url.startswith("postgresql"):
        raise click.ClickException("harden applies to PostgreSQL")
    _, pending = _audited(actor, AuditAction.DB_HARDEN, reason, ("role", app_role))
    # The event commits with the grants, in the owner's transaction: both or neither.
    now = runtime.clock()
    try:
        migrate.harden(
            url,
            app_role,
            sealer_role=sealer_role,
            before_commit=lambda c: record(c, pending, 200, now),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{app_role}: INSERT and SELECT of audit events, SELECT of seals and checkpoints")
    click.echo(f"{sealer_role}: SELECT of audit events, INSERT and SELECT of seals and checkpoints")


@db.command("upgrade")
@operator_options(reason_required=False)
def db_upgrade(actor: str | None, reason: str | None) -> None:
    """Create or migrate the schema to the newest revision."""
    runtime = _runtime(_app())
    _, pending = _audited(actor, AuditAction.DB_UPGRADE, reason, ("schema", "head"))
    migrate.upgrade(
        runtime.settings.resolved_database_url(runtime.instance_path), vault=runtime.vault
    )
    # Recorded once the trail's own tables are there, which the first upgrade creates.
    try:
        with runtime.recorded(pending):
            pass
    except AuditUnavailable:
        raise click.ClickException(
            "the schema is upgraded, but the audit trail could not record it"
        ) from None
    click.echo("database is at the newest revision")


@main.group()
def seed() -> None:
    """Seed data."""


@seed.command("demo")
@operator_options(reason_required=False)
def seed_demo(actor: str | None, reason: str | None) -> None:
    """The demo units (ungdomsjouren, three district offices, central intake) and rules."""
    audited = _audited(actor, AuditAction.SEED_APPLY, reason, ("seed", "demo"))
    _report_seed(_apply_seed(_runtime(_app()), seeding.packaged("demo"), *audited))


@seed.command("stockholm")
@operator_options(reason_required=False)
def seed_stockholm(actor: str | None, reason: str | None) -> None:
    """Stockholm's 13 district social offices, ungdomsjouren, central intake, and rules
    routing each district to its office (webhook URLs made up and disabled)."""
    audited = _audited(actor, AuditAction.SEED_APPLY, reason, ("seed", "stockholm"))
    _report_seed(_apply_seed(_runtime(_app()), seeding.packaged("stockholm"), *audited))


@seed.command("file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_options(reason_required=True)
def seed_file(path: Path, actor: str | None, reason: str) -> None:
    """An organisation's own units and rules, in the shape of referrals/seeds/*.json."""
    audited = _audited(actor, AuditAction.SEED_APPLY, reason, ("seed", "file"))
    try:
        document = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path} is not a JSON document: {exc}") from None
    _report_seed(_apply_seed(_runtime(_app()), document, *audited))


def _apply_seed(
    runtime: Runtime, raw: object, operator: Operator, pending: PendingAudit
) -> seeding.Seeded:
    try:
        document = SeedDocument().load(raw)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.ClickException(f"invalid seed document: {exc.messages}") from None
    try:
        with runtime.unit_of_work(audit=pending) as uow:
            return seeding.apply(uow, runtime.context(operator.principal), document)
    except (ServiceError, DomainError) as exc:
        runtime.record_refusal(pending, exc.status if isinstance(exc, ServiceError) else 422)
        where = f" ({exc.field})" if exc.field else ""
        raise click.ClickException(f"{exc.message}{where}") from None
    except AuditUnavailable:
        raise _unrecorded() from None


def _report_seed(seeded: seeding.Seeded) -> None:
    click.echo(f"{seeded.units_created} units created")
    if seeded.ruleset_version is None:
        click.echo("routing rules unchanged")
    else:
        click.echo(f"routing rules installed as rule-set version {seeded.ruleset_version}")


@main.command()
@click.option("--once", is_flag=True, help="One round, then exit (cron, tests).")
@click.option("--interval", type=float, default=None, help="Seconds between rounds.")
def worker(once: bool, interval: float | None) -> None:
    """Deliver webhooks from the outbox and escalate overdue referrals.

    Run several for throughput: they never take the same message at once."""
    runtime = _runtime(_app())
    job = Worker(runtime)
    if once:
        try:
            result = job.run_round()
        finally:
            job.sender.close()
        click.echo(
            f"escalated {result.escalated}, delivered {result.delivered}, failed "
            f"{result.failed}, dead {result.dead}, skipped {result.skipped}"
        )
        return
    job.run(interval or runtime.settings.worker_interval)


@main.command("dev-token")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--unit", default=None, help="The caller's unit (youth workers, caseworkers).")
@click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
def dev_token(role: str, unit: str | None, ttl: int) -> None:
    """Mint a development access token (refused outside development)."""
    runtime = _runtime(_app())
    click.echo(_mint(runtime, Role(role), unit, ttl))


def _mint(runtime: Runtime, role: Role, unit: str | None, ttl: int) -> str:
    settings = runtime.settings
    if settings.is_production or not settings.dev_tokens:
        raise click.ClickException("development tokens are disabled in this environment")
    key = devissuer.load_or_create_key(runtime.instance_path)
    return devissuer.mint(key, role=role, unit=unit, audience=settings.oidc_audience, lifetime=ttl)


@main.group()
def keys() -> None:
    """The keyring: key-encryption keys and the blind-index key."""


def _keyring_file(runtime: Runtime) -> KeyringFile:
    provider = key_provider(runtime.settings, runtime.instance_path)
    if not isinstance(provider, KeyringFile):
        raise click.ClickException(
            "the keyring comes from REFERRALS_KEYRING; rotate it where that secret is managed"
        )
    return provider


@keys.command("init")
def keys_init() -> None:
    """Create the keyring file (development; production keyrings are mounted secrets)."""
    settings = _settings()
    path = settings.resolved_keyring_file(_instance_path(settings))
    try:
        KeyringFile(path).create(development=not settings.is_production)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; it is never overwritten") from None
    click.echo(f"created {path}")


@keys.command("status")
def keys_status() -> None:
    """Each KEK, whether it is current, and how many referrals and secrets it seals."""
    runtime = _runtime(_app())
    with runtime.unit_of_work() as uow:
        counts = keyring_admin.usage(uow)
        secrets = keyring_admin.secret_usage(uow)
    keyring = runtime.vault.keyring
    for key_id in sorted(keyring.keks):
        marker = "current" if key_id == keyring.current else "retained"
        referrals = counts.get(key_id, 0) - secrets.get(key_id, 0)
        click.echo(
            f"{key_id}\t{marker}\t{referrals} referrals\t{secrets.get(key_id, 0)} webhook secrets"
        )
    unknown = sorted(set(counts) - set(keyring.keks))
    for key_id in unknown:
        click.echo(f"{key_id}\tMISSING\t{counts[key_id]} referrals or secrets cannot be read")


@keys.command("rotate")
@operator_options(reason_required=True)
def keys_rotate(actor: str | None, reason: str) -> None:
    """Add a new KEK and make it current; then run `referrals keys rewrap`."""
    runtime = _runtime(_app())
    keyring = _keyring_file(runtime)
    # The target is the KEK that stops being current; `keys status` names the new one.
    current = ("kek", runtime.vault.keyring.current)
    _, pending = _audited(actor, AuditAction.KEYS_ROTATE, reason, current)
    try:
        with runtime.recorded(pending):
            new_id = keyring.rotate()
    except AuditUnavailable:
        raise _unrecorded() from None
    click.echo(f"{new_id} is now current; run `referrals keys rewrap` to move data keys to it")


@keys.command("rewrap")
@click.option("--batch-size", default=500, show_default=True)
@operator_options(reason_required=True)
def keys_rewrap(batch_size: int, actor: str | None, reason: str) -> None:
    """Re-wrap every data key under the current KEK, in batches (resumable, idempotent)."""
    runtime = _runtime(_app())
    current = ("kek", runtime.vault.keyring.current)
    _, pending = _audited(actor, AuditAction.KEYS_REWRAP, reason, current)
    # Recorded before the first batch: the batches commit one by one, and none may run
    # unless the trail has taken the job.
    try:
        with runtime.recorded(pending):
            pass
    except AuditUnavailable:
        raise _unrecorded() from None
    with runtime.unit_of_work() as uow:
        total = keyring_admin.pending_rewrap(uow, runtime.vault)
    unreadable: list[uuid.UUID] = []
    after = None
    with click.progressbar(length=total, label="rewrapping data keys") as bar:
        while True:
            with runtime.unit_of_work() as uow:
                batch = keyring_admin.rewrap_batch(uow, runtime.vault, batch_size, after)
            if batch.last_id is None:
                break
            after = batch.last_id
            unreadable += batch.unreadable
            bar.update(batch.moved + len(batch.unreadable))
    with runtime.unit_of_work() as uow:
        unreadable_secrets = keyring_admin.reseal_secrets(uow, runtime.vault)
    with runtime.unit_of_work() as uow:
        left = keyring_admin.pending_rewrap(uow, runtime.vault)
    click.echo(
        f"data keys and webhook secrets now sealed by {runtime.vault.keyring.current}; "
        f"{left} left under older KEKs"
    )
    for referral_id in unreadable:
        click.echo(f"unreadable data key, not rewrapped: referral {referral_id}", err=True)
    for unit_id in unreadable_secrets:
        click.echo(f"unreadable webhook secret, not resealed: unit {unit_id}", err=True)
    if left:
        raise click.ClickException(f"{left} data keys are still under older KEKs; run again")


@keys.command("retire")
@click.argument("key_id")
@operator_options(reason_required=True)
def keys_retire(key_id: str, actor: str | None, reason: str) -> None:
    """Remove a KEK from the keyring; refused while any referral still uses it."""
    runtime = _runtime(_app())
    keyring = _keyring_file(runtime)
    _, pending = _audited(actor, AuditAction.KEYS_RETIRE, reason, ("kek", key_id))
    with runtime.unit_of_work() as uow:
        in_use = keyring_admin.usage(uow).get(key_id, 0)
    if in_use:
        runtime.record_refusal(pending, 409)
        raise click.ClickException(f"{key_id} still wraps {in_use} data keys: run rewrap first")
    try:
        with runtime.recorded(pending):
            keyring.retire(key_id)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except AuditUnavailable:
        raise _unrecorded() from None
    click.echo(f"{key_id} retired")


@main.command()
@click.argument("referral_id", type=click.UUID)
@click.option("--reason", type=click.Choice([r.value for r in EraseReason]), required=True)
@click.option("--actor", default=None, help=ACTOR_HELP)
def erase(referral_id: uuid.UUID, reason: str, actor: str | None) -> None:
    """Crypto-shred a referral's personal data; its non-personal skeleton remains."""
    runtime = _runtime(_app())
    target = ("referral", referral_id)
    operator, pending = _audited(actor, AuditAction.REFERRAL_ERASE, reason, target)
    try:
        with runtime.unit_of_work(audit=pending) as uow:
            referral_cases.erase(
                uow, runtime.context(operator.principal), referral_id, EraseReason(reason)
            )
    except ServiceError as exc:
        runtime.record_refusal(pending, exc.status)
        raise click.ClickException(exc.message) from None
    except AuditUnavailable:
        raise _unrecorded() from None
    click.echo(f"referral {referral_id} erased")


@main.group()
def audit() -> None:
    """The audit trail's hash chain: sealing, checkpoints, verification."""


@audit.command("seal")
@click.option("--follow", is_flag=True, help="Keep sealing new events (the sealer process).")
@click.option(
    "--interval", type=float, default=None, help="Seconds between idle rounds [settings]."
)
@click.option(
    "--checkpoint-every",
    type=float,
    default=None,
    help="Seconds an unsigned event waits for its checkpoint at most [settings].",
)
@click.option(
    "--publish",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write each signed checkpoint here as JSON, for an external witness.",
)
def audit_seal(
    follow: bool, interval: float | None, checkpoint_every: float | None, publish: Path | None
) -> None:
    """Give committed audit events their places in the chain (and sign checkpoints).

    Connects as REFERRALS_SEALER_DATABASE_URL when set.  With --follow, a failed round is
    logged and retried after a backoff; the process exits non-zero only on a fault that is
    not the database's (a bug, a broken key)."""
    runtime = _runtime(_app())
    publisher = _publisher(publish) if publish else None
    _signing_key(runtime)  # a missing key is one line here, not a traceback in the loop
    if not follow:
        sessions = runtime.sealer_database().sessions
        tolerance = timedelta(seconds=runtime.settings.audit_time_tolerance)
        with sessions() as session:
            sealed = sealing.seal_pending(session, runtime.clock, tolerance=tolerance)
        with sessions() as session:
            row = sealing.checkpoint(session, _signing_key(runtime), runtime.clock)
        if row is not None and publisher is not None:
            publisher(row)
        click.echo(f"{sealed} events sealed")
        return
    sealer = runtime.sealer(
        interval=interval, checkpoint_interval=checkpoint_every, publish=publisher
    )
    _stop_on_signals(sealer.stop)
    try:
        sealer.run()
    except Exception as exc:
        log.critical("audit sealer stopped", exc_info=True)
        raise click.ClickException(
            f"the audit sealer stopped on {type(exc).__name__}; see the log"
        ) from None


def _publisher(directory: Path) -> Callable[[AuditCheckpoint], None]:
    def write(row: AuditCheckpoint) -> None:
        publish_checkpoint.write(directory, row)

    return write


def _seal_forever(sealer: Sealer) -> None:
    """The quickstart's sealer thread: the same loop as `audit seal --follow`."""
    try:
        sealer.run()
    except Exception:
        # The server goes on (its requests are still recorded); /readyz reports the
        # sealer as behind once events wait longer than the allowed lag.
        log.critical("audit sealer stopped", exc_info=True)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT end the loop after the round in hand: nothing half-written."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@audit.command("export")
@click.option("--since", type=click.DateTime(), default=None, help="UTC; default: all.")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--output", type=click.File("w"), default="-", help="Default: standard output.")
def audit_export(since: datetime | None, fmt: str, output: IO[str]) -> None:
    """Export sealed and pending events as JSON lines, oldest first (for archives)."""
    runtime = _runtime(_app())
    start = since.replace(tzinfo=UTC) if since else None
    with runtime.database.sessions() as session:
        total = audit_export_rows.count(session, start)
        with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
            for item in audit_export_rows.stream(session, start):
                output.write(json.dumps(item, default=str, sort_keys=True) + "\n")
                bar.update(1)


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain head now."""
    runtime = _runtime(_app())
    with runtime.sealer_database().sessions() as session:
        row = sealing.checkpoint(session, _signing_key(runtime), runtime.clock)
    click.echo(f"checkpoint at seq {row.seq}" if row else "no new events since the last checkpoint")


@audit.command("public-key")
def audit_public_key() -> None:
    """Print the signing key's public key, for REFERRALS_AUDIT_PUBLIC_KEYS and witnesses."""
    public = _signing_key(_runtime(_app())).public_key()
    click.echo(f"{chain.public_key_id(public)}\t{audit_keys.encode_public_key(public)}")


def _signing_key(runtime: Runtime) -> Ed25519PrivateKey:
    try:
        return runtime.audit_signing_key
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the chain and every checkpoint; exit 1 naming the first problem, or saying
    that events wait for their seal or checkpoint longer than allowed (a stalled sealer)."""
    runtime = _runtime(_app())
    limits = runtime.freshness_limits()
    with runtime.database.read_session() as session:
        result = sealing.verify(session, audit_public_keys(runtime))
        fresh = freshness.judge(sealing.backlog(session), runtime.clock(), limits)
    click.echo(
        f"{result.sealed} sealed events, {result.checkpoints} checkpoints, "
        f"{result.pending} awaiting sealing"
    )
    if result.finding is not None:
        finding = result.finding
        raise click.ClickException(f"{finding.problem} at seq {finding.seq}: {finding.detail}")
    if result.flagged:
        listed = ", ".join(f"seq {f.seq} ({f.flag})" for f in result.flagged)
        raise click.ClickException(
            f"the chain is intact, but the sealer flagged {len(result.flagged)} events whose "
            f"recorded_at was not close to when it first saw them: {listed}; review them"
        )
    if not fresh.ok:
        raise click.ClickException(
            freshness.explain(fresh, limits) + "; is `referrals audit seal --follow` running?"
        )
    click.echo("ok")


def _instance_path(settings: Settings) -> Path:
    if settings.instance_path:
        return settings.instance_path
    return Path(Flask("referrals").instance_path)


@main.group()
def openapi() -> None:
    """The committed OpenAPI document."""


@openapi.command("write")
@click.option("--output", type=click.Path(path_type=Path), default=SPEC_PATH, show_default=True)
def openapi_write(output: Path) -> None:
    """Write the spec the code generates to openapi/openapi.json."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_spec(_app(development_unless_set=True)))
    click.echo(f"wrote {output}")


def render_spec(app: Flask) -> str:
    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _run_development_server(app: Flask, host: str, port: int) -> None:
    # Werkzeug's own request lines carry raw URLs (query strings included); the app
    # writes its own JSON request line with the route template instead.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve with the development server (production: gunicorn, see deploy/)."""
    app = _app()
    if _runtime(app).settings.is_production:
        raise click.ClickException("use gunicorn in production (deploy/gunicorn.conf.py)")
    _run_development_server(app, host, port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--ttl", default=8 * 3600, show_default=True, help="Token lifetime in seconds.")
def quickstart(host: str, port: int, ttl: int) -> None:
    """Migrate, seed the demo units, print a token per role, and serve (development)."""
    app = _app(development_unless_set=True)
    runtime = _runtime(app)
    if runtime.settings.is_production:
        raise click.ClickException("quickstart is for development only")
    migrate.upgrade(
        runtime.settings.resolved_database_url(runtime.instance_path), vault=runtime.vault
    )
    _apply_seed(
        runtime,
        seeding.packaged("demo"),
        *_audited(None, AuditAction.SEED_APPLY, "quickstart", ("seed", "demo")),
    )
    # Production runs `referrals worker` as processes of their own; the demo delivers and
    # escalates from a thread.
    threading.Thread(target=Worker(runtime).run, args=(1.0,), daemon=True).start()
    # Production runs `referrals audit seal --follow` as its own process; the demo seals
    # from a thread so the chain stays current without a second command.
    threading.Thread(target=_seal_forever, args=(runtime.sealer(),), daemon=True).start()
    click.echo(f"referrals is starting on http://{host}:{port}  (API docs: /docs)")
    click.echo(f"Web pages: http://{host}:{port}/app/  (development: sign in as a demo user)\n")
    click.echo('Development tokens (export one, then: curl -H "Authorization: Bearer $TOKEN" ...):')
    for role, unit in DEMO_TOKENS:
        name = f"{role.value.upper()}_{unit.upper()}" if unit else role.value.upper()
        click.echo(f"\n{name}_TOKEN={_mint(runtime, role, unit, ttl)}")
    click.echo()
    _run_development_server(app, host, port)


if __name__ == "__main__":
    main()
