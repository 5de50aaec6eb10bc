"""Declarative base, naming convention and column types shared by every model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, LargeBinary, MetaData, String, TypeDecorator, Uuid
from sqlalchemy.orm import DeclarativeBase, mapped_column

# Stable constraint names, so Alembic migrations name the same thing on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL.

    SQLite has no time zone type; storing naive UTC there and re-attaching UTC on the
    way out keeps comparisons (deadlines, keyset cursors) identical on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id() -> uuid.UUID:
    """Client-side ids: known before the INSERT, so events and notes can refer to them."""
    return uuid.uuid4()


uuid_pk = Annotated[uuid.UUID, mapped_column(Uuid, primary_key=True, default=new_id)]
timestamp = Annotated[datetime, mapped_column(UTCDateTime)]
optional_timestamp = Annotated[datetime | None, mapped_column(UTCDateTime, nullable=True)]
code = Annotated[str, mapped_column(String(40))]
slug = Annotated[str, mapped_column(String(64))]

# Personal data, sealed.  Every column of this type holds AES-256-GCM ciphertext of a
# value listed as sensitive (SECURITY.md: Encryption at rest; referrals/crypto/aead.py);
# they are written and read only through referrals/services/records.py, the one place
# where fields are sealed.
sealed = Annotated[bytes | None, mapped_column(LargeBinary, nullable=True)]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}
