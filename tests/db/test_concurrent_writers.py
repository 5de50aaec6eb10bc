"""Ordinary traffic from several clients at once never answers 5xx, on either database.

The embedded default is SQLite: one file, one writer at a time.  Writers there must queue
for the lock (WAL, ``BEGIN IMMEDIATE``, a busy timeout) instead of failing at once when a
read-then-write transaction finds another writer ahead of it, which answered 503
``database-busy`` / ``audit-unavailable`` to a single client in a quiet loop.  The sealer
writes the chain at the same time, as it does in the quickstart.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask

from referrals.audit import sealing
from referrals.db.engine import Database
from referrals.runtime import Runtime, audit_public_keys
from tests.api.helpers import REFERRALS, SODERMALM, Actors, referral_body

CLIENTS = 8
ROUNDS = 6
BARRIER_TIMEOUT = 30.0


def client_loop(app: Flask, actors: Actors, barrier: threading.Barrier) -> Counter[int]:
    """One client's ordinary work: create and submit, list, accept, timeline, a refused
    read, a note."""
    client = app.test_client()
    statuses: Counter[int] = Counter()
    barrier.wait()
    for _ in range(ROUNDS):
        body = referral_body(submit=True, subject={"district": SODERMALM})
        created = client.post(REFERRALS, json=body, headers=actors.worker)
        statuses[created.status_code] += 1
        if created.status_code != 201:
            continue
        rid = created.get_json()["id"]
        for response in (
            client.get(REFERRALS, headers=actors.worker),
            client.post(f"{REFERRALS}/{rid}/accept", json={}, headers=actors.sodermalm),
            client.get(f"{REFERRALS}/{rid}/events", headers=actors.worker),
            # Another unit's caseworker: 404, recorded by the refusal path's own transaction.
            client.get(f"{REFERRALS}/{rid}", headers=actors.norrmalm),
            client.post(
                f"{REFERRALS}/{rid}/notes",
                json={"text": "Called back.", "visibility": "shared"},
                headers=actors.sodermalm,
            ),
        ):
            statuses[response.status_code] += 1
    return statuses


def test_concurrent_clients_and_the_sealer_get_no_server_error(
    live_app: Flask, committed_database: Database, dev_token: Any
) -> None:
    runtime: Runtime = live_app.extensions["referrals"]
    actors = Actors(dev_token)
    barrier = threading.Barrier(CLIENTS + 1, timeout=BARRIER_TIMEOUT)
    done = threading.Event()
    sealer_errors: list[str] = []

    def seal_meanwhile() -> None:
        barrier.wait()
        while not done.is_set():
            try:
                with committed_database.sessions() as session:
                    sealing.seal_pending(session, runtime.clock)
            except Exception as exc:  # the finding is the class; the test fails below
                sealer_errors.append(type(exc).__name__)

    sealer = threading.Thread(target=seal_meanwhile)
    sealer.start()
    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            results = list(
                pool.map(lambda _: client_loop(live_app, actors, barrier), range(CLIENTS))
            )
    finally:
        done.set()
        sealer.join(timeout=BARRIER_TIMEOUT)

    statuses = sum(results, Counter[int]())
    # Every create and note is 201, every list, accept and timeline 200, every read by the
    # wrong unit 404: nothing else.
    assert statuses == Counter(
        {201: 2 * CLIENTS * ROUNDS, 200: 3 * CLIENTS * ROUNDS, 404: CLIENTS * ROUNDS}
    )
    assert sealer_errors == []
    with committed_database.sessions() as session:
        sealing.seal_pending(session, runtime.clock)
    with committed_database.sessions() as session:
        result = sealing.verify(session, audit_public_keys(runtime))
    assert result.ok
    assert result.pending == 0
    assert result.sealed == CLIENTS * ROUNDS * 6
