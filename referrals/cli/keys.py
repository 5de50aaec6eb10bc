"""``referrals keys`` and ``referrals erase``: the keyring and crypto-shredding."""

from __future__ import annotations

import uuid

import click
from sqlalchemy import inspect

from referrals.app import key_provider
from referrals.audit.actions import AuditAction
from referrals.audit.recorder import AuditUnavailable
from referrals.cli.common import (
    ACTOR_HELP,
    audited,
    instance_path_of,
    load_app,
    load_settings,
    operator_options,
    runtime_of,
    unrecorded,
)
from referrals.cli.root import main
from referrals.crypto.keyring import KeyringFile
from referrals.db.models import Referral
from referrals.domain.codes import EraseReason
from referrals.runtime import Runtime
from referrals.services import keyring_admin
from referrals.services import referrals as referral_cases
from referrals.services.errors import ServiceError


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
    settings = load_settings()
    path = settings.resolved_keyring_file(instance_path_of(settings))
    try:
        KeyringFile(path).create(development=not settings.is_production)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; it is never overwritten") from None
    click.echo(f"created {path}")


@keys.command("status")
def keys_status() -> None:
    """Each KEK, whether it is current, and how many referrals and secrets it seals."""
    runtime = runtime_of(load_app())
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


@keys.command("check")
@click.option(
    "--sample",
    default=keyring_admin.CHECK_SAMPLE,
    show_default=True,
    help="Data keys to unwrap per KEK the database uses.",
)
def keys_check(sample: int) -> None:
    """Check that the keyring opens this database's data keys and webhook secrets.

    Read-only and unrecorded: run it after a restore and before anything else starts (the
    migration job does), so a database restored with another keyring is refused before
    any process writes to it.  An empty database (no schema yet) passes."""
    runtime = runtime_of(load_app())
    engine = runtime.database.engine
    if not inspect(engine).has_table(Referral.__tablename__):
        click.echo("no schema yet: nothing to check")
        return
    with runtime.unit_of_work() as uow:
        result = keyring_admin.check(uow, runtime.vault, sample)
    if not result.ok:
        problems = [
            f"KEK {key_id} ({count} referrals or secrets) is not in the keyring"
            for key_id, count in sorted(result.missing.items())
        ]
        if result.unreadable:
            problems.append(f"{result.unreadable} of {result.tried} keys tried did not open")
        raise click.ClickException(
            "this keyring does not open this database: "
            + "; ".join(problems)
            + ". Restore the keyring backed up with this database; nothing was changed"
        )
    click.echo(f"the keyring opens this database ({result.tried} keys tried)")


@keys.command("rotate")
@operator_options(reason_required=True)
def keys_rotate(actor: str | None, reason: str) -> None:
    """Add a new KEK and make it current; then run `referrals keys rewrap`."""
    runtime = runtime_of(load_app())
    keyring = _keyring_file(runtime)
    # The target is the KEK that stops being current; `keys status` names the new one.
    current = ("kek", runtime.vault.keyring.current)
    _, pending = audited(actor, AuditAction.KEYS_ROTATE, reason, current)
    try:
        with runtime.recorded(pending):
            new_id = keyring.rotate()
    except AuditUnavailable:
        raise unrecorded() from None
    click.echo(f"{new_id} is now current; run `referrals keys rewrap` to move data keys to it")


@keys.command("rewrap")
@click.option("--batch-size", default=2000, show_default=True)
@operator_options(reason_required=True)
def keys_rewrap(batch_size: int, actor: str | None, reason: str) -> None:
    """Re-wrap every data key under the current KEK, in batches (resumable, idempotent)."""
    runtime = runtime_of(load_app())
    current = ("kek", runtime.vault.keyring.current)
    _, pending = audited(actor, AuditAction.KEYS_REWRAP, reason, current)
    # Recorded before the first batch: the batches commit one by one, and none may run
    # unless the trail has taken the job.
    try:
        with runtime.recorded(pending):
            pass
    except AuditUnavailable:
        raise unrecorded() from None
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
    runtime = runtime_of(load_app())
    keyring = _keyring_file(runtime)
    _, pending = audited(actor, AuditAction.KEYS_RETIRE, reason, ("kek", key_id))
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
        raise unrecorded() from None
    click.echo(f"{key_id} retired")


@main.command()
@click.argument("referral_id", type=click.UUID)
@click.option("--reason", type=click.Choice([r.value for r in EraseReason]), required=True)
@click.option("--actor", default=None, help=ACTOR_HELP)
def erase(referral_id: uuid.UUID, reason: str, actor: str | None) -> None:
    """Crypto-shred a referral's personal data; its non-personal skeleton remains."""
    runtime = runtime_of(load_app())
    target = ("referral", referral_id)
    operator, pending = audited(actor, AuditAction.REFERRAL_ERASE, reason, target)
    try:
        with runtime.unit_of_work(audit=pending) as uow:
            referral_cases.erase(
                uow, runtime.context(operator.principal), referral_id, EraseReason(reason)
            )
    except ServiceError as exc:
        runtime.record_refusal(pending, exc.status)
        raise click.ClickException(exc.message) from None
    except AuditUnavailable:
        raise unrecorded() from None
    click.echo(f"referral {referral_id} erased")
