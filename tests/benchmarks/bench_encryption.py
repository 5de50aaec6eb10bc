"""What envelope encryption costs per referral, measured in one process and one run.

    .venv/bin/python -m tests.benchmarks.bench_encryption

One app on a temporary SQLite instance serves both variants, through the Flask test client:

  A. the real Vault: a fresh data key per referral wrapped under the KEK, eight sealed
     fields (AES-256-GCM with associated data), the blind index of the personal number;
  B. the same app with the Vault's sealers replaced by an identity "sealer" (``str.encode``
     and ``bytes.decode``) and the blind index by the normalised number itself.

Each unit of work is one referral: POST with every personal field (submitted, so routing and
the duplicate check run too) followed by a GET of it.  Rounds alternate A and B (ABBA...) so
both see the same machine noise; the figure is the median over rounds of the time per
referral.  The raw primitives are timed separately with ``timeit``.  Not a test: pytest does
not collect this file.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from flask.testing import FlaskClient
from sqlalchemy import select

from referrals import create_app
from referrals.auth import devissuer
from referrals.auth.principal import Role
from referrals.config import Settings
from referrals.crypto import envelope
from referrals.db import migrate
from referrals.db.models import Referral
from referrals.runtime import OPERATOR, Runtime
from referrals.services import records, seeding
from referrals.services.vault import Vault
from tests.api.helpers import personal_number
from tests.benchmarks.report import say

ROUNDS = 60  # per variant, after one warm-up round each
PER_ROUND = 12  # referrals created and read per round (short rounds pair better)
TIMEIT_NUMBER = 2000
TIMEIT_REPEAT = 7


# --- the identity "sealer" (variant B) ---------------------------------------------------------


class IdentitySealer:
    """Same interface as vault.Sealer; stores the UTF-8 bytes of each value as they are."""

    def seal(self, table: str, record_id: object, name: str, value: str | None) -> bytes | None:
        return None if value is None else value.encode()

    def open(self, table: str, record_id: object, name: str, blob: bytes | None) -> str | None:
        return None if blob is None else bytes(blob).decode()


def _identity_new_sealer(self: Vault, row: Referral) -> IdentitySealer:
    row.dek_wrapped = b"identity"  # not None: None would mean "erased"
    row.kek_id = "identity"
    return IdentitySealer()


def _identity_sealer(self: Vault, row: Referral) -> IdentitySealer:
    return IdentitySealer()


def _identity_index(self: Vault, normalized: str) -> str:
    return normalized


@contextmanager
def without_encryption() -> Iterator[None]:
    with (
        mock.patch.object(Vault, "new_sealer", _identity_new_sealer),
        mock.patch.object(Vault, "sealer", _identity_sealer),
        mock.patch.object(Vault, "personal_number_index", _identity_index),
    ):
        yield


@contextmanager
def with_encryption() -> Iterator[None]:
    yield


# --- requests ----------------------------------------------------------------------------------

_serial = iter(range(10**9))


def referral_body() -> dict[str, Any]:
    """Every personal field filled in; a distinct made-up personal number each time."""
    n = next(_serial)
    born = date(2008, 1, 1) + timedelta(days=n % 3000)
    number = personal_number(born.year, born.month, born.day, f"{n // 3000 % 1000:03d}")
    return {
        "subject": {
            "name": f"Benchmark Påhittadsson {n}",
            "personal_number": number,
            "phone": "070-000 12 34",
            "district": "norrmalm",
        },
        "guardian": {"name": "Vårdnadshavare Påhittad", "phone": "070-000 56 78"},
        "categories": ["drugs", "school_absence"],
        "priority": "normal",
        "legal_basis": "consent",
        "consent": {"given_by": "guardian", "given_at": "2026-01-05T12:00:00+00:00"},
        "place_met": "Påhittade torget, vid fontänen",
        "narrative": "Påhittad berättelse. " * 40,  # about 850 characters
        "submit": True,
    }


def one_round(
    client: FlaskClient, headers: dict[str, str], bodies: list[dict[str, Any]]
) -> tuple[float, float]:
    """(wall-clock seconds, process CPU seconds) per referral, for create + read of each."""
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    for body in bodies:
        created = client.post("/api/v1/referrals", json=body, headers=headers)
        if created.status_code != 201:
            raise SystemExit(f"create failed: {created.status_code} {created.get_data()!r}")
        read = client.get(f"/api/v1/referrals/{created.get_json()['id']}", headers=headers)
        if read.status_code != 200:
            raise SystemExit(f"read failed: {read.status_code}")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return wall / len(bodies), cpu / len(bodies)


def stored_narrative(runtime: Runtime, referral_id: str) -> bytes:
    with runtime.database.engine.connect() as connection:
        value = connection.scalar(
            select(Referral.narrative).where(Referral.id == uuid.UUID(referral_id))
        )
    assert value is not None
    return bytes(value)


def check_variants(client: FlaskClient, headers: dict[str, str], runtime: Runtime) -> None:
    """Prove each variant is what it claims: ciphertext at rest in A, plaintext in B."""
    for context, encrypted in ((with_encryption, True), (without_encryption, False)):
        body = referral_body()
        with context():
            created = client.post("/api/v1/referrals", json=body, headers=headers).get_json()
        raw = stored_narrative(runtime, created["id"])
        if (raw == body["narrative"].encode()) == encrypted:
            raise SystemExit(f"variant check failed (encrypted={encrypted})")


# --- raw crypto --------------------------------------------------------------------------------


def micro(label: str, statement: Callable[[], object]) -> float:
    runs = timeit.repeat(statement, number=TIMEIT_NUMBER, repeat=TIMEIT_REPEAT)
    per_call = statistics.median(runs) / TIMEIT_NUMBER * 1e6
    say(f"  {label:<42} {per_call:8.2f} µs")
    return per_call


def raw_crypto(vault: Vault) -> None:
    rid = str(uuid.uuid4())
    body = referral_body()
    subject, guardian = body["subject"], body["guardian"]
    plain = {
        "subject_name": subject["name"],
        "personal_number": subject["personal_number"],
        "birth_date": "2010-01-01",
        "phone": subject["phone"],
        "guardian_name": guardian["name"],
        "guardian_phone": guardian["phone"],
        "narrative": body["narrative"],
        "place_met": body["place_met"],
    }
    assert tuple(plain) == records.CASE_FIELDS
    sealer = vault.new_sealer_for_id(rid)
    sealed = {name: sealer.seal("referrals", rid, name, value) for name, value in plain.items()}
    kek_id, kek = vault.keyring.current_kek()
    dek = envelope.new_data_key()
    wrapped = envelope.wrap(kek, kek_id, rid, dek)

    def seal_all() -> None:
        for name, value in plain.items():
            sealer.seal("referrals", rid, name, value)

    def open_all() -> None:
        for name, blob in sealed.items():
            sealer.open("referrals", rid, name, blob)

    say(f"raw crypto per call (timeit, median of {TIMEIT_REPEAT} x {TIMEIT_NUMBER}):")
    seal = micro("seal the 8 fields", seal_all)
    opened = micro("open the 8 fields", open_all)
    say(f"  {'seal + open the 8 fields':<42} {seal + opened:8.2f} µs")
    wrap = micro("wrap one DEK under the KEK", lambda: envelope.wrap(kek, kek_id, rid, dek))
    unwrap = micro("unwrap one DEK", lambda: envelope.unwrap(vault.keyring.kek, rid, wrapped))
    say(f"  {'wrap + unwrap one DEK':<42} {wrap + unwrap:8.2f} µs")
    micro("new DEK + wrap (Vault.new_sealer_for_id)", lambda: vault.new_sealer_for_id(rid))
    micro("blind index of the personal number", lambda: vault.personal_number_index("201001012384"))


def report(clock: str, a_runs: list[float], b_runs: list[float]) -> None:
    a, b = statistics.median(a_runs) * 1e6, statistics.median(b_runs) * 1e6
    say(f"{clock}, median over rounds, µs per referral:")
    for label, runs, median in (("A real Vault", a_runs, a), ("B identity sealer", b_runs, b)):
        q1, _, q3 = (q * 1e6 for q in statistics.quantiles(runs, n=4))
        say(f"  {label:<20} {median:9.1f}   (interquartile {q1:.1f} to {q3:.1f})")
    say(
        f"  encryption cost      {a - b:+9.1f}   ratio A/B {a / b:.3f} ({(a / b - 1) * 100:+.1f} %)"
    )
    paired = [x / y for x, y in zip(a_runs, b_runs, strict=True)]
    q1, q2, q3 = statistics.quantiles(paired, n=4)
    say(f"  paired per-round ratio A/B: median {q2:.3f}, interquartile {q1:.3f} to {q3:.3f}")
    fastest_a, fastest_b = min(a_runs) * 1e6, min(b_runs) * 1e6
    say(
        f"  fastest round (least disturbed): A {fastest_a:.1f}, B {fastest_b:.1f},"
        f" cost {fastest_a - fastest_b:+.1f}, ratio {fastest_a / fastest_b:.3f}"
    )


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    started = time.perf_counter()
    # tmpfs when there is one: fsync latency would otherwise swamp what is measured here.
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() else None
    where = "tmpfs (/dev/shm)" if scratch else "the default temporary folder"
    with tempfile.TemporaryDirectory(prefix="referrals-bench-", dir=scratch) as directory:
        instance = Path(directory) / "instance"
        app = create_app(Settings(instance_path=instance, log_level="WARNING"))
        runtime: Runtime = app.extensions["referrals"]
        migrate.upgrade(
            runtime.settings.resolved_database_url(runtime.instance_path), vault=runtime.vault
        )
        with runtime.unit_of_work() as uow:
            seeding.apply(uow, runtime.context(OPERATOR), seeding.packaged("demo"))
        key = devissuer.load_or_create_key(instance)
        token = devissuer.mint(
            key, role=Role.YOUTH_WORKER, unit="ungdomsjouren", audience="referrals-api"
        )
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        check_variants(client, headers, runtime)

        variants = {"A": with_encryption, "B": without_encryption}
        timings: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for context in variants.values():  # warm-up: lazy imports, caches, the page cache
            with context():
                one_round(client, headers, [referral_body() for _ in range(PER_ROUND)])
        for i in range(ROUNDS):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")
            for name in order:
                bodies = [referral_body() for _ in range(PER_ROUND)]
                with variants[name]():
                    timings[name].append(one_round(client, headers, bodies))

        say(f"encryption benchmark: Python {sys.version.split()[0]}, SQLite file on {where}")
        say(f"{ROUNDS} interleaved rounds per variant x {PER_ROUND} referrals (after a warm-up)")
        say("per referral = POST /api/v1/referrals (every personal field, submitted) + GET of it")
        for clock, column in (("process CPU time", 1), ("wall-clock time", 0)):
            report(clock, [t[column] for t in timings["A"]], [t[column] for t in timings["B"]])
        say()
        # While the instance (and its keyring file, which the Vault checks) still exists.
        raw_crypto(runtime.vault)
        runtime.database.dispose()
    say()
    say(f"total run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
