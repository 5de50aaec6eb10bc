"""Rows of ``web_sessions``; flushes only, the caller commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from referrals.db.models import WebSession


class WebSessionRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, key_hash: str) -> WebSession | None:
        return self._session.get(WebSession, key_hash)

    def add(self, row: WebSession) -> None:
        self._session.add(row)
        self._session.flush()

    def delete(self, key_hash: str) -> None:
        self._session.execute(delete(WebSession).where(WebSession.id == key_hash))

    def delete_stale(self, now: datetime, idle_since: datetime) -> None:
        """Sessions past their lifetime or idle too long: nobody can use them any more."""
        self._session.execute(
            delete(WebSession).where(
                or_(WebSession.expires_at <= now, WebSession.last_seen_at <= idle_since)
            )
        )
