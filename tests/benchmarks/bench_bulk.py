"""The bulk jobs of issue 13, on PostgreSQL, each as an operator runs it, against the goals.

    .venv/bin/python -m tests.benchmarks.bench_bulk                  # 20,000 referrals
    .venv/bin/python -m tests.benchmarks.bench_bulk --rows 100000    # the issue's size
    .venv/bin/python -m tests.benchmarks.bench_bulk --only verify --rounds 5 --against HEAD~1

A throw-away PostgreSQL database (``tests.support.databases``) and instance folder; every
job is the real ``referrals`` command, run in this process (its time less what a command
that only loads the app takes; and how far it raised the process's peak resident memory,
which stays near zero when a job's memory is flat in the rows):

  import   ``referrals import`` of N JSON lines (every personal field filled, every other
           line submitted and routed): referrals/s, goal 2,000.
           Baseline: the create use case one referral and one commit at a time (as the
           API creates), in this process, on a sample.
  seal     ``referrals audit seal`` of N read events (one per referral, written straight
           into the trail as the API's reads would) plus the import's: events/s, goal
           20,000.  Baseline: one idle round, the queue's against the anti-join of the
           whole trail that each round ran before (revision 0011), median of 20.
  verify   ``referrals audit verify`` of the whole chain: events/s, goal 100,000.
           Baseline: the ORM verifier as it was (entities per row, general canonical
           form), in this process, on the same chain.  ``--against REV`` also runs the
           command with ``sealing.verify`` as it was at git revision REV, interleaved with
           the current one, ``--rounds`` times each (medians reported).
  rewrap   ``referrals keys rotate`` then ``keys rewrap`` of every data key: referrals/s,
           goal 10,000.  Baseline: one UPDATE per row (as before), on a sample, first.

``--only JOB`` (repeatable) measures those jobs and skips the others' baselines; the
jobs before a measured one still run, unmeasured, to build its data.

Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
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
from types import ModuleType
from typing import Any, cast
from unittest import mock

from click.testing import CliRunner
from sqlalchemy import Table, create_engine, insert, select

from referrals import create_app
from referrals.audit import chain, disclosures, sealing
from referrals.audit.actions import AuditAction
from referrals.auth.operator import identify
from referrals.cli import main as cli
from referrals.config import Settings
from referrals.db.models import AuditEvent, AuditSeal
from referrals.runtime import Runtime, audit_public_keys, operator_event
from referrals.services import bulk_import
from referrals.services import referrals as referral_cases
from referrals.services.uow import UnitOfWork
from referrals.services.vault import Vault
from tests.api.helpers import personal_number
from tests.benchmarks.report import say
from tests.support.databases import postgres_database

REFERRER = "ungdomsjouren"
DISTRICTS = ("norrmalm", "sodermalm", "kungsholmen", "gamla-stan")
GOALS = {"import": 2_000, "seal": 20_000, "verify": 100_000, "rewrap": 10_000}
BASELINE_CREATES = 300
BASELINE_REWRAPS = 3_000  # at most; a fifth of the referrals on small runs
FILL_BATCH = 5_000


def unique_personal_number(i: int) -> str:
    """A different valid test number for each i below 2,688,000: serial, day, month and
    year of birth (2006-2013) in turn, so a search at any size matches one referral."""
    serial, rest = i % 1000, i // 1000
    day, rest = 1 + rest % 28, rest // 28
    month, rest = 1 + rest % 12, rest // 12
    return personal_number(2006 + rest % 8, month, day, f"{serial:03d}")


def body(i: int) -> dict[str, Any]:
    """Made-up values in every personal field; every other referral submitted."""
    return {
        "subject": {
            "name": f"Påhittad Testperson {i}",
            "personal_number": unique_personal_number(i),
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
    def env(self) -> dict[str, str | None]:
        cleared = {k: None for k in os.environ if k.startswith("REFERRALS_")}
        return cleared | {
            "REFERRALS_ENV": "development",
            "REFERRALS_INSTANCE_PATH": str(self.instance),
            "REFERRALS_DATABASE_URL": self.url,
        }

    def run(self, *args: str) -> tuple[float, float, str]:
        seconds, _, grown, output = self.timed(*args)
        return seconds, grown, output

    def timed(self, *args: str) -> tuple[float, float, float, str]:
        """(seconds, CPU seconds of this process, MiB its peak resident size grew by, output)
        of ``referrals ARGS``, run in this process as the command line runs it.  A job whose
        memory is flat in the rows leaves the peak where the jobs before it left it."""
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start, cpu = time.perf_counter(), time.process_time()
        result = CliRunner().invoke(cli, list(args), env=self.env)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
        if result.exit_code != 0:
            raise SystemExit(f"referrals {' '.join(args)} failed:\n{result.output}")
        return seconds, cpu, grown, result.output

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


def sealing_at(revision: str, folder: Path) -> ModuleType:
    """``referrals.audit.sealing`` as it was at git ``revision``, loaded beside the current
    one (the rest of the package is today's), to time the verifier before and after."""
    source = folder / "sealing_before.py"
    source.write_bytes(
        subprocess.run(
            ["git", "show", f"{revision}:referrals/audit/sealing.py"],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            check=True,
        ).stdout
    )
    spec = importlib.util.spec_from_file_location("referrals.audit.sealing_before", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


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


@dataclass
class Job:
    name: str
    items: int
    unit: str
    seconds: float  # wall, less start-up
    cpu: float  # this process's CPU seconds, less start-up's
    rss: float
    baseline: str = ""

    def report(self) -> None:
        goal = GOALS[self.name]
        rate, cpu_rate = self.items / self.seconds, self.items / max(self.cpu, 1e-9)
        say(
            f"  {self.name:<7} {rate:>9,.0f} {self.unit:<12} {rate / goal:5.2f}x goal {goal:>7,}"
            f"  {self.seconds:7.2f} s   per CPU-second {cpu_rate:>9,.0f}"
            f" ({cpu_rate / goal:4.2f}x)   RSS +{self.rss:5.1f} MiB"
        )
        say(f"          baseline: {self.baseline}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="referrals to import")
    parser.add_argument(
        "--only", action="append", choices=list(GOALS), help="measure only this job (repeatable)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of verify (median)")
    parser.add_argument("--against", metavar="REV", help="verify as at git REV, interleaved")
    arguments = parser.parse_args()
    rows = arguments.rows
    measured = set(arguments.only or GOALS)
    with tempfile.TemporaryDirectory() as folder, postgres_database() as url:
        deployment = Deployment(Path(folder) / "instance", url)
        before = sealing_at(arguments.against, Path(folder)) if arguments.against else None
        deployment.run("db", "upgrade")
        deployment.run("seed", "demo", "--reason", "bench")
        source = Path(folder) / "referrals.jsonl"
        write_lines(source, rows)
        megabytes = source.stat().st_size / 2**20
        say(f"bench_bulk: {rows:,} referrals on PostgreSQL ({megabytes:.1f} MiB of JSON lines)")
        runtime = deployment.runtime()

        # What every command pays before its job: interpreter state, the app, the keyring.
        startup = min((deployment.timed("keys", "status") for _ in range(3)), key=lambda t: t[0])

        def job(name: str, items: int, unit: str, *args: str, expect: str) -> Job:
            seconds, cpu, rss, output = deployment.timed(*args)
            assert expect in output, output
            return Job(name, items, unit, seconds - startup[0], cpu - startup[1], rss)

        jobs = []
        imported = job(
            "import",
            rows,
            "referrals/s",
            "import",
            str(source),
            "--reason",
            "bench",
            expect=f"{rows} referrals imported",
        )
        if "import" in measured:
            created = create_one_at_a_time(runtime, BASELINE_CREATES)
            rate = rows / imported.seconds
            imported.baseline = (
                f"create one at a time {created:,.0f}/s; import x{rate / created:.1f}"
            )
            jobs.append(imported)

        fill = fill_read_events(url, rows)
        pending = queued(url)
        sealed = job(
            "seal", pending, "events/s", "audit", "seal", expect=f"{pending} events sealed"
        )
        if "seal" in measured:
            now_ms, before_ms = idle_rounds(runtime)
            sealed.baseline = (
                f"an idle round {now_ms:.1f} ms; "
                f"the anti-join every round ran before {before_ms:.1f} ms"
            )
            jobs.append(sealed)

        if "verify" in measured:
            runs, runs_before = [], []
            for _ in range(arguments.rounds):
                if before is not None:
                    with mock.patch.object(sealing, "verify", before.verify):
                        runs_before.append(
                            job("verify", pending, "events/s", "audit", "verify", expect="ok")
                        )
                runs.append(job("verify", pending, "events/s", "audit", "verify", expect="ok"))
            verified = median_job(runs)
            old_rate, chained = verify_as_before(runtime)
            verified.items = chained
            rate = chained / verified.seconds
            verified.baseline = (
                f"the ORM verifier before {old_rate:,.0f}/s; now x{rate / old_rate:.1f}"
            )
            if before is not None:
                then = median_job(runs_before)
                verified.baseline += (
                    f"; at {arguments.against}, interleaved: {chained / then.seconds:,.0f}/s,"
                    f" per CPU-second {chained / then.cpu:,.0f};"
                    f" now x{then.seconds / verified.seconds:.2f} wall,"
                    f" x{then.cpu / verified.cpu:.2f} CPU"
                )
            if arguments.rounds > 1:
                verified.baseline += f" (medians of {arguments.rounds} runs each)"
            jobs.append(verified)

        if "rewrap" in measured:
            deployment.run("keys", "rotate", "--reason", "bench")
            runtime.dispose()
            runtime = deployment.runtime()  # the rotated keyring
            total = rows + BASELINE_CREATES * ("import" in measured)
            sample = min(BASELINE_REWRAPS, total // 5)
            old_rate = rewrap_one_row_at_a_time(runtime, runtime.vault, sample)
            rewrapped = job(
                "rewrap",
                total - sample,
                "referrals/s",
                "keys",
                "rewrap",
                "--reason",
                "bench",
                expect="0 left under older KEKs",
            )
            rate = rewrapped.items / rewrapped.seconds
            rewrapped.baseline = f"one UPDATE per row {old_rate:,.0f}/s; now x{rate / old_rate:.1f}"
            jobs.append(rewrapped)
        runtime.dispose()

        say(
            f"  (the {rows:,} read events were written in {fill:.1f} s, unmeasured fill;"
            f" {pending:,} events sealed)"
        )
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        say(
            f"  a job's time is its command's less a command that only starts ({startup[0]:.2f} s);"
        )
        say(f"  load average {load} on {os.cpu_count()} CPUs")
        for each in jobs:
            each.report()


def median_job(runs: list[Job]) -> Job:
    """One job with the median wall and the median CPU time of several runs."""
    first = runs[0]
    return Job(
        first.name,
        first.items,
        first.unit,
        statistics.median(run.seconds for run in runs),
        statistics.median(run.cpu for run in runs),
        max(run.rss for run in runs),
    )


if __name__ == "__main__":
    main()
