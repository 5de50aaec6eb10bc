"""Prometheus metrics: what an operator on call watches, and nothing about anyone.

- ``families``: the metric families each process kind exports (the app's requests, the
  worker's deliveries, the sealer's rounds), built per process, never at import time.
- ``database``: gauges read from the database when Prometheus scrapes (audit backlog,
  outbox, overdue referrals), by one cheap read-only transaction, never per request.
- ``access``: the bearer token that guards every exposition, compared in constant time.
- ``exposition``: the text a scrape gets (gunicorn's multiprocess mode included), and the
  small HTTP server of the worker and the sealer.

Label values come from closed sets only: route templates (never a path: paths hold
referral ids), method names, status classes, unit slugs, priority and state codes.
"""
