"""Who runs a command-line job: the operator, as the audit trail records them.

An operator is not authenticated by the OpenID Provider; whoever can run ``referrals`` on a
host already holds the database credentials and the keyring.  What the service can know is
the operating-system account the process runs as, asked of the kernel (the effective uid
and the password database), never of ``$USER`` or ``$LOGNAME``, which the caller sets.
That account is recorded as the actor, verified.  A shared service account may name the
person behind it with ``--actor``: that name is only claimed, so the event says
``actor_verified: false`` and keeps the OS account beside it as the client id.
"""

from __future__ import annotations

import os
import pwd
import re
import uuid
from dataclasses import dataclass

from referrals.auth.principal import Principal, Role

CLI_ISSUER = "urn:referrals:cli"
# A code or a ticket reference ("CHG-1042", "kek-rotation:2026q4"), never free text: an
# operator's sentence about a case could name the person.
REASON = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}")
ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


@dataclass(frozen=True)
class Operator:
    principal: Principal
    verified: bool
    # One id per command, so its event can be found like a request's.
    request_id: str


def os_account() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a container uid with no passwd entry
        return f"uid:{uid}"


def identify(actor: str | None = None) -> Operator:
    """The operator of this process; ``actor`` is a name they claim (``--actor``)."""
    account = os_account()
    if actor is not None and not ACTOR.fullmatch(actor):
        raise ValueError("--actor is a user name: letters, digits and . _ @ - only")
    claimed = actor is not None and actor != account
    principal = Principal(
        issuer=CLI_ISSUER,
        subject=actor if actor is not None else account,
        client_id=f"os:{account}",
        roles=frozenset({Role.ADMIN}),
    )
    return Operator(principal, verified=not claimed, request_id=f"cli-{uuid.uuid4().hex}")


def check_reason(reason: str | None) -> str | None:
    if reason is not None and not REASON.fullmatch(reason):
        raise ValueError(
            "--reason is a code or ticket reference (letters, digits and . _ : / # -, "
            "at most 64), never free text"
        )
    return reason
