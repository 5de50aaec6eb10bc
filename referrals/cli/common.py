"""What every command shares: the app from the environment, operator identity, audit."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import Flask

from referrals.app import create_app
from referrals.audit.actions import AuditAction
from referrals.audit.recorder import PendingAudit
from referrals.auth.operator import Operator, check_reason, identify
from referrals.config import ConfigError, Environment, Settings
from referrals.metrics import exposition
from referrals.runtime import Runtime, operator_event

log = logging.getLogger(__name__)


def load_app(*, development_unless_set: bool = False) -> Flask:
    """The app by the environment.  ``development_unless_set``: commands that only make
    sense locally (quickstart, writing the spec) ask for development themselves."""
    try:
        app = create_app(load_settings(development_unless_set=development_unless_set))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    # Close the pools when the command ends: a server-side connection left to the garbage
    # collector is a warning (and a held slot) wherever the command runs in-process.
    click.get_current_context().call_on_close(runtime_of(app).dispose)
    return app


@contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """For a bulk job's loop: what is allocated before it (the app, its schemas, the
    mappers) is moved out of the garbage collector's generations until the loop ends.
    Each batch allocates many objects, so the collector runs often, and a full collection
    otherwise traverses that whole heap again each time (a sixth of an import's CPU time).
    The objects made inside are collected as usual, so memory stays flat in the rows; the
    heap is handed back afterwards, where the command runs in-process (tests, benchmarks)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def load_settings(*, development_unless_set: bool = False) -> Settings:
    environ: dict[str, str] = dict(os.environ)
    if development_unless_set and not environ.get("REFERRALS_ENV", "").strip():
        environ["REFERRALS_ENV"] = Environment.DEVELOPMENT.value
    try:
        return Settings.from_env(environ)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def runtime_of(app: Flask) -> Runtime:
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


def operator_of(actor: str | None, reason: str | None) -> tuple[Operator, str | None]:
    try:
        return identify(actor), check_reason(reason)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def audited(
    actor: str | None, action: AuditAction, reason: str | None, target: tuple[str, object] | None
) -> tuple[Operator, PendingAudit]:
    operator, checked = operator_of(actor, reason)
    pending = operator_event(operator, action, reason=checked)
    if target is not None:
        pending.target(*target)
    return operator, pending


def metrics_options(command: Command) -> Command:
    """--metrics-port and --metrics-host: the worker's and the sealer's own metrics."""
    command = click.option(
        "--metrics-host",
        default=None,
        help="Address to serve metrics on [REFERRALS_METRICS_HOST, 127.0.0.1].",
    )(command)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Serve Prometheus metrics on this port [REFERRALS_METRICS_PORT; unset: none].",
    )(command)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve_metrics(runtime: Runtime, host: str | None, port: int | None) -> None:
    """Start the process's metrics server when a port is given (option or setting).

    Off loopback, production asks for the metrics token: the port would otherwise tell
    anyone who reaches it how the deployment is doing."""
    settings = runtime.settings
    port = port if port is not None else settings.metrics_port
    if port is None:
        return
    host = host or settings.metrics_host
    if settings.is_production and host not in LOOPBACK and runtime.metrics_token is None:
        raise click.ClickException(
            "metrics on a non-loopback address need REFERRALS_METRICS_TOKEN "
            "(or REFERRALS_METRICS_TOKEN_FILE)"
        )
    try:
        server, _thread = exposition.serve(runtime.metrics, host, port, runtime.metrics_token)
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}"
        ) from None
    log.info("serving metrics", extra={"path": f"{host}:{server.server_port}/metrics"})


def unrecorded() -> click.ClickException:
    return click.ClickException("the audit trail cannot record this command: nothing was changed")


def instance_path_of(settings: Settings) -> Path:
    if settings.instance_path:
        return settings.instance_path
    return Path(Flask("referrals").instance_path)
