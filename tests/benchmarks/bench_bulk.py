"""The bulk jobs of issue 13, on PostgreSQL, each as an operator runs it, against the goals.

    .venv/bin/python -m tests.benchmarks.bench_bulk                  # 20,000 referrals
    .venv/bin/python -m tests.benchmarks.bench_bulk --rows 100000    # the issue's size

A throw-away PostgreSQL database (``tests.support.databases``) and instance folder; every
job is the real ``referrals`` command in a process of its own (wall time, and its peak
resident memory from the kernel, which must not grow with the rows):

  import   ``referrals import`` of N JSON lines (every personal field filled, every other
           line submitted and routed): referrals/s, goal 2,000.
           Baseline: the create use case one referral and one commit at a time (as the
           API creates), in this process, on a sample.
  seal     ``referrals audit seal`` of N read events (one per referral, written straight
           into the trail as the API's reads would) plus the import's: events/s, goal
           20,000.  Baseline: one idle round, the queue's against the anti-join of the
           whole trail that each round ran before (revision 0012), median of 20.
  verify   ``referrals audit verify`` of the whole chain: events/s, goal 100,000.
           Baseline: the ORM verifier as it was (entities per row, general canonical
           form), in this process, on the same chain.
  rewrap   ``referrals keys rotate`` then ``keys rewrap`` of every data key: referrals/s,
           goal 10,000.  Baseline: one UPDATE per row (as before), on a sample, first.

Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, create_engine, insert, select

from referrals import create_app
from referrals.audit import chain, disclosures, sealing
from referrals.audit.actions import AuditAction
from referrals.auth.operator import identify
from referrals.config import Settings
from referrals.db.models import AuditEvent, AuditSeal
from referrals.runtime import Runtime, audit_public_keys, operator_event
from referrals.services import bulk_import, keyring_admin
from referrals.services import referrals as referral_cases
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Vault
from tests.api.helpers import personal_number
from tests.benchmarks.report import say
from tests.support.databases import postgres_database

REPO = Path(__file__).resolve().parents[2]
REFERRER = "ungdomsjouren"
DISTRICTS = ("norrmalm", "sodermalm", "kungsholmen", "gamla-stan")
GOALS = {"import": 2_000, "seal": 20_000, "verify": 100_000, "rewrap": 10_000}
BASELINE_CREATES = 300
BASELINE_REWRAPS = 3_000
FILL_BATCH = 5_000


def body(i: int) -> dict[str, Any]:
    """Made-up values in every personal field; every other referral submitted."""
    return {
        "subject": {
            "name": f"Påhittad Testperson {i}",
            "personal_number": personal_number(2009, 1 + i % 12, 1 + i % 28, f"{i % 1000:03d}"),
            "phone": f"070-{i % 1000:03d} 00 01",
            "district": DISTRICTS[i % 4],
        },
        "guardian": {"name": f"Påhittad Vårdnadshavare {i}", "phone": "08-000 11 22"},
        "categories": ["drugs", "school_absence"] if i % 2 else ["violence"],
        "priority": ("normal", "urgent", "acute")[i % 3],
        "legal_basis": "duty_to_report",
        "place_met": f"Påhittade torget {i}",
        "narrative": f"Påhittad berättelse {i}: träffades sent på kvällen, verkade orolig. " * 3,
        "submit": i % 2 == 0,
    }


def write_lines(path: Path, rows: int, start: int = 0) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(start, start + rows):
            out.write(json.dumps({"sending_unit": REFERRER, **body(i)}, ensure_ascii=False))
            out.write("\n")


@dataclass
class Deployment:
    instance: Path
    url: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
        env |= {
            "REFERRALS_ENV": "development",
            "REFERRALS_INSTANCE_PATH": str(self.instance),
            "REFERRALS_DATABASE_URL": self.url,
        }
        return env

    def run(self, *args: str) -> tuple[float, float, str]:
        """(seconds, peak resident MiB, output) of ``referrals ARGS`` in its own process."""
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "referrals.cli", *args],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"referrals {' '.join(args)} failed:\n{output}")
        return seconds, usage.ru_maxrss / 1024, output

    def runtime(self) -> Runtime:
        app = create_app(Settings(instance_path=self.instance, database_url=self.url))
        runtime = app.extensions["referrals"]
        assert isinstance(runtime, Runtime)
        return runtime


# --- the baselines: how the jobs ran before issue 13 ---------------------------------------


def create_one_at_a_time(runtime: Runtime, count: int) -> float:
    """Referrals/s through the create use case, one transaction and audit event each."""
    operator = identify()
    principal = bulk_import.youth_worker(operator.principal, REFERRER)
    start = time.perf_counter()
    for i in range(count):
        data = body(10_000_000 + i)
        submit = data.pop("submit")
        pending = operator_event(operator, AuditAction.REFERRAL_CREATE)
        with runtime.unit_of_work(pending) as uow:
            referral_cases.create(uow, runtime.context(principal), data, submit=submit)
    return count / (time.perf_counter() - start)


def idle_rounds(runtime: Runtime) -> tuple[float, float]:
    """Median ms of one idle sealer round now, and of the anti-join each round ran before."""
    before = (
        select(AuditEvent)
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditSeal.seq.is_(None))
        .order_by(AuditEvent.recorded_at, AuditEvent.id)
        .limit(sealing.DEFAULT_BATCH)
    )
    now_ms, before_ms = [], []
    for _ in range(20):
        with runtime.database.sessions() as session:
            start = time.perf_counter()
            assert sealing.seal_pending(session, runtime.clock) == 0
            now_ms.append((time.perf_counter() - start) * 1000)
        with runtime.database.sessions() as session:
            start = time.perf_counter()
            assert session.scalars(before).all() == []
            before_ms.append((time.perf_counter() - start) * 1000)
    return statistics.median(now_ms), statistics.median(before_ms)


def verify_as_before(runtime: Runtime) -> tuple[float, int]:
    """Events/s of the ORM verifier as it was, over the whole chain."""
    start = time.perf_counter()
    count = 0
    with runtime.database.read_session() as session:
        rows = session.execute(
            select(AuditSeal, AuditEvent)
            .join(AuditEvent, AuditEvent.id == AuditSeal.event_id)
            .order_by(AuditSeal.seq)
            .execution_options(yield_per=1000)
        )

        def stream() -> Iterator[chain.SealedEvent]:
            nonlocal count
            for partition in rows.partitions():
                named = disclosures.of_events(session, [event.id for _, event in partition])
                for seal, event in partition:
                    count += 1
                    hashed = sealing.hashed(event, seal.flag, named.get(event.id, ()))
                    yield chain.SealedEvent(seq=seal.seq, body=hashed, hash=seal.hash)

        finding = chain.verify_chain(stream())
        rows.close()
        assert finding is None, finding
        assert chain.verify_checkpoints([], {}, audit_public_keys(runtime)) is None
    return count / (time.perf_counter() - start), count


def rewrap_one_row_at_a_time(runtime: Runtime, vault: Vault, count: int) -> float:
    """Referrals/s re-wrapped with one UPDATE per row (the repository's single-row swap)."""
    start = time.perf_counter()
    done = 0
    after = None
    while done < count:
        with UnitOfWork(runtime.database.sessions) as uow:
            rows = uow.referrals.wrapped_keys_not_under(
                vault.keyring.current, min(500, count - done), after
            )
            if not rows:
                break
            for referral_id, wrapped, old in rows:
                new, kek_id = vault.rewrap(str(referral_id), wrapped)
                uow.referrals.replace_wrapped_key(referral_id, old, new, kek_id)
                after = referral_id
                done += 1
            uow.commit()
    return done / (time.perf_counter() - start)


# --- the fill ------------------------------------------------------------------------------


def fill_read_events(url: str, count: int) -> float:
    """``count`` read events as the API writes them (one per referral), straight into the
    trail; the trigger queues each for the sealer.  Returns seconds."""
    events = cast(Table, AuditEvent.__table__)
    engine = create_engine(url)
    start = time.perf_counter()
    base = datetime.now(UTC) - timedelta(minutes=1)
    try:
        with engine.connect() as connection:
            referral_ids = [
                str(rid) for rid in connection.exec_driver_sql("SELECT id FROM referrals").scalars()
            ]
            for offset in range(0, count, FILL_BATCH):
                rows = [
                    {
                        "id": uuid.uuid4(),
                        "recorded_at": base + timedelta(microseconds=offset + i),
                        "request_id": uuid.uuid4().hex,
                        "actor_verified": True,
                        "actor_issuer": "https://idp.example/realms/stockholm",
                        "actor_subject": "bench-caseworker-7",
                        "client_id": "referrals-web",
                        "roles": ["caseworker"],
                        "unit": "norrmalm",
                        "action": "referral:read",
                        "target_type": "referral",
                        "target_id": referral_ids[(offset + i) % len(referral_ids)],
                        "outcome": "allowed",
                        "http_status": 200,
                        "purpose": None,
                        "reason": None,
                    }
                    for i in range(min(FILL_BATCH, count - offset))
                ]
                connection.execute(insert(events), rows)
                connection.commit()
    finally:
        engine.dispose()
    return time.perf_counter() - start


def queued(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.exec_driver_sql("SELECT count(*) FROM audit_pending").scalar_one()
            )
    finally:
        engine.dispose()


# --- the run -------------------------------------------------------------------------------


def line(job: str, rate: float, unit: str, seconds: float, rss: float, baseline: str) -> None:
    goal = GOALS[job]
    say(
        f"  {job:<7} {rate:>10,.0f} {unit:<12} {rate / goal:5.2f}× the goal of {goal:,}   "
        f"{seconds:7.2f} s   peak RSS {rss:6.1f} MiB   {baseline}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="referrals to import")
    arguments = parser.parse_args()
    rows = arguments.rows
    with tempfile.TemporaryDirectory() as folder, postgres_database() as url:
        deployment = Deployment(Path(folder) / "instance", url)
        deployment.run("db", "upgrade")
        deployment.run("seed", "demo", "--reason", "bench")
        source = Path(folder) / "referrals.jsonl"
        write_lines(source, rows)
        say(
            f"bench_bulk: {rows:,} referrals on PostgreSQL ({source.stat().st_size / 2**20:.1f} MiB of JSON lines)"
        )

        runtime = deployment.runtime()
        created = create_one_at_a_time(runtime, BASELINE_CREATES)

        seconds, rss, output = deployment.run("import", str(source), "--reason", "bench")
        assert f"{rows} referrals imported" in output, output
        imported = rows / seconds
        results = [
            (
                "import",
                imported,
                "referrals/s",
                seconds,
                rss,
                f"one at a time: {created:,.0f}/s, ×{imported / created:.1f}",
            )
        ]

        fill = fill_read_events(url, rows)
        pending = queued(url)
        seconds, rss, output = deployment.run("audit", "seal")
        assert f"{pending} events sealed" in output, output
        now_ms, before_ms = idle_rounds(runtime)
        results.append(
            (
                "seal",
                pending / seconds,
                "events/s",
                seconds,
                rss,
                f"idle round {now_ms:.1f} ms, the anti-join before {before_ms:.1f} ms",
            )
        )

        seconds, rss, output = deployment.run("audit", "verify")
        assert output.splitlines()[-1] == "ok", output
        old_rate, chained = verify_as_before(runtime)
        rate = chained / seconds
        results.append(
            (
                "verify",
                rate,
                "events/s",
                seconds,
                rss,
                f"ORM verifier before: {old_rate:,.0f}/s, ×{rate / old_rate:.1f}",
            )
        )

        deployment.run("keys", "rotate", "--reason", "bench")
        runtime.dispose()
        runtime = deployment.runtime()  # the rotated keyring
        total = rows + BASELINE_CREATES
        old_rate = rewrap_one_row_at_a_time(runtime, runtime.vault, BASELINE_REWRAPS)
        seconds, rss, output = deployment.run("keys", "rewrap", "--reason", "bench")
        assert "0 left under older KEKs" in output, output
        rate = (total - BASELINE_REWRAPS) / seconds
        results.append(
            (
                "rewrap",
                rate,
                "referrals/s",
                seconds,
                rss,
                f"one UPDATE per row: {old_rate:,.0f}/s, ×{rate / old_rate:.1f}",
            )
        )
        runtime.dispose()

        say(
            f"  (the {rows:,} read events were written in {fill:.1f} s, unmeasured fill;"
            f" {pending:,} events sealed, {chained:,} verified)"
        )
        say(
            "  job          rate                   vs goal                  wall      memory   baseline (same run)"
        )
        for result in results:
            line(*result)


if __name__ == "__main__":
    main()
