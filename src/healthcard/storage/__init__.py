"""Persistence: tables, repositories, the unit of work, migrations (ARCHITECTURE.md §3)."""

from healthcard.storage.db import Database, SchemaStatus, redact
from healthcard.storage.uow import UnitOfWork

__all__ = ["Database", "SchemaStatus", "UnitOfWork", "redact"]
