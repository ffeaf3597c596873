"""The offline upload queue of a clinic terminal (ARCHITECTURE.md §3, terminal/: "offline
first: a village clinic works with the card alone and queues what it must upload").

A visit is written to the card at once; its encounter upload waits here, in a SQLite file on
the terminal's disk, until the platform can be reached.  The file survives a crash or a power
cut (WAL journal, ``synchronous=FULL``, one committed statement per change), and delivery is
*exactly once* on the platform although it is *at least once* on the wire:

::

    put(payload) ──▶ pending ──drain: platform answered 201/200──▶ delivered
                        │  ▲
                        │  └── TransportError (down, timeout, 5xx): attempts += 1, stop the drain
                        └───── 4xx about the upload (400, 404, 409, 422…) ──▶ rejected (not retried)

* An upload is marked delivered only after the platform answered.  If the terminal dies between
  the platform's commit and that mark, or the answer is lost on the way, the next drain sends
  the same upload again; the platform finds its ``upload_key`` and answers ``created: false``,
  which the queue counts as delivered (a *duplicate*), so the platform holds one encounter.
* The first :class:`~healthcard.errors.TransportError` (or a client that could not log in yet,
  :class:`~healthcard.terminal.platform.NotLoggedIn`) stops the drain: the platform is still
  down, and trying the rest would only wait out more timeouts.  Order is kept (first queued,
  first sent).
* A refusal about the upload itself is recorded as ``rejected`` with the platform's error and
  is not sent again (a bad diagnosis code will not become good); someone must look at
  :meth:`UploadQueue.rejected`.  A refusal about the terminal (401 after the client's own
  re-login, 403, 408, 429) stops the drain like a transport failure and keeps the upload.

Times come from a :class:`~healthcard.clock.Clock`.  Two processes draining one file at once
may both send an upload; the platform's idempotency makes that harmless too.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from healthcard.clock import Clock, SystemClock
from healthcard.errors import Duplicate, InvalidValue, StorageError, TransportError
from healthcard.terminal.platform import NotLoggedIn, PlatformRefused

Status = Literal["pending", "delivered", "rejected"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_key      TEXT PRIMARY KEY,
    payload         TEXT NOT NULL,          -- the upload as canonical JSON
    queued_at       TEXT NOT NULL,          -- ISO 8601 UTC
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error      TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'rejected')),
    delivered_at    TEXT,
    encounter_id    INTEGER                 -- the platform's id, once delivered
)
"""
_COLUMNS = "upload_key, payload, queued_at, attempts, last_attempt_at, last_error, status, delivered_at, encounter_id"


class Uploader(Protocol):
    """What a drain needs of the platform (:class:`healthcard.terminal.platform.PlatformClient`)."""

    def upload(self, payload: Mapping[str, Any]) -> tuple[int, bool]: ...


@dataclass(frozen=True)
class QueuedUpload:
    """One upload in the queue and what became of it."""

    upload_key: str
    payload: dict[str, Any]
    queued_at: dt.datetime
    attempts: int  # how many times it was sent (or a send was tried)
    last_attempt_at: dt.datetime | None
    last_error: str | None  # the last failure or refusal, for the operator
    status: Status  # pending: to send; delivered: the platform has it; rejected: refused (4xx)
    delivered_at: dt.datetime | None
    encounter_id: int | None


@dataclass(frozen=True)
class Rejection:
    """An upload the platform refused during a drain."""

    upload_key: str
    status: int
    code: str
    field: str | None
    message: str


@dataclass(frozen=True)
class DrainReport:
    """What one :meth:`UploadQueue.drain` did.

    ``delivered`` counts the uploads the platform confirmed in this drain, new ones and
    ``duplicates`` (those it already had: an earlier answer was lost); ``failed`` is 1 when a
    failure stopped the drain (``error`` says what), else 0; ``rejected`` counts uploads
    refused for good (``rejections`` lists them); ``remaining`` is what is still pending."""

    delivered: int
    duplicates: int
    failed: int
    rejected: int
    remaining: int
    error: str | None = None
    rejections: tuple[Rejection, ...] = ()


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value is not None else None


def _canonical(payload: Mapping[str, Any]) -> str:
    try:
        return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValue("payload", f"not JSON: {exc}") from None


class UploadQueue:
    """A durable first-in, first-out queue of encounter uploads in a SQLite file at ``path``
    (created with its folder when missing)."""

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.clock: Clock = clock if clock is not None else SystemClock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit: every change below is one statement, committed (and synced) on its own
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"upload queue {self.path} cannot be opened: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> UploadQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return self.clock.now().astimezone(dt.UTC).isoformat()

    # --- adding --------------------------------------------------------------------------------
    def put(self, payload: Mapping[str, Any]) -> str:
        """Queue an upload (:func:`healthcard.terminal.platform.upload_payload`); returns its
        ``upload_key``.  Putting the same upload again changes nothing; putting *other* content
        under a queued key is a :class:`~healthcard.errors.Duplicate` (it would reach the
        platform as a repeat and be dropped there)."""
        if not isinstance(payload, Mapping):
            raise InvalidValue("payload", "an encounter upload is a mapping")
        key = payload.get("upload_key")
        if not isinstance(key, str) or not 32 <= len(key) <= 64:
            raise InvalidValue("upload_key", "must be 32 to 64 characters")
        text = _canonical(payload)
        inserted = self._db.execute(
            "INSERT INTO uploads (upload_key, payload, queued_at) VALUES (?, ?, ?) "
            "ON CONFLICT (upload_key) DO NOTHING",
            (key, text, self._now()),
        ).rowcount
        if not inserted:
            (held,) = self._db.execute("SELECT payload FROM uploads WHERE upload_key = ?", (key,)).fetchone()
            if held != text:
                raise Duplicate("upload_key", f"{key} is already queued with other content")
        return key

    # --- looking -------------------------------------------------------------------------------
    def _rows(
        self, where: str, params: tuple[object, ...] = (), limit: int | None = None
    ) -> list[QueuedUpload]:
        sql = f"SELECT {_COLUMNS} FROM uploads WHERE {where} ORDER BY rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            QueuedUpload(
                upload_key=row[0],
                payload=json.loads(row[1]),
                queued_at=dt.datetime.fromisoformat(row[2]),
                attempts=row[3],
                last_attempt_at=_time(row[4]),
                last_error=row[5],
                status=row[6],
                delivered_at=_time(row[7]),
                encounter_id=row[8],
            )
            for row in self._db.execute(sql, params)
        ]

    def pending(self) -> list[QueuedUpload]:
        """Uploads still to send, oldest first."""
        return self._rows("status = 'pending'")

    def rejected(self) -> list[QueuedUpload]:
        """Uploads the platform refused for good, oldest first, ``last_error`` saying why."""
        return self._rows("status = 'rejected'")

    def delivered(self) -> list[QueuedUpload]:
        """Uploads the platform confirmed, oldest first, with its ``encounter_id``."""
        return self._rows("status = 'delivered'")

    def get(self, upload_key: str) -> QueuedUpload | None:
        found = self._rows("upload_key = ?", (upload_key,))
        return found[0] if found else None

    def count(self, status: Status = "pending") -> int:
        (n,) = self._db.execute("SELECT count(*) FROM uploads WHERE status = ?", (status,)).fetchone()
        return int(n)

    # --- sending -------------------------------------------------------------------------------
    def _mark(self, key: str, status: Status, error: str | None, encounter_id: int | None = None) -> None:
        now = self._now()
        self._db.execute(
            "UPDATE uploads SET attempts = attempts + 1, last_attempt_at = ?, last_error = ?, status = ?, "
            "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END, "
            "encounter_id = COALESCE(?, encounter_id) WHERE upload_key = ?",
            (now, error, status, status, now, encounter_id, key),
        )

    def drain(self, client: Uploader, *, max_items: int | None = None) -> DrainReport:
        """Send pending uploads in order, at most ``max_items``, until the queue is empty or the
        platform cannot be reached.  Each upload is marked only after the platform answered."""
        if max_items is not None and (isinstance(max_items, bool) or max_items < 0):
            raise InvalidValue("max_items", "must be 0 or more, or None for all")
        delivered = duplicates = failed = 0
        error: str | None = None
        rejections: list[Rejection] = []
        for item in self._rows("status = 'pending'", limit=max_items):
            try:
                encounter_id, created = client.upload(item.payload)
            except NotLoggedIn as exc:  # nothing was sent: the upload keeps its attempts
                failed, error = 1, str(exc)
                break
            except TransportError as exc:
                failed, error = 1, str(exc)
                self._mark(item.upload_key, "pending", error)
                break
            except PlatformRefused as refused:
                if not refused.about_request:  # the terminal's login or the platform's load
                    failed, error = 1, str(refused)
                    self._mark(item.upload_key, "pending", error)
                    break
                self._mark(item.upload_key, "rejected", str(refused))
                rejections.append(
                    Rejection(item.upload_key, refused.status, refused.code, refused.field, refused.message)
                )
                continue
            self._mark(item.upload_key, "delivered", None, encounter_id)
            delivered += 1
            duplicates += not created
        return DrainReport(
            delivered=delivered,
            duplicates=duplicates,
            failed=failed,
            rejected=len(rejections),
            remaining=self.count("pending"),
            error=error,
            rejections=tuple(rejections),
        )


__all__ = ["DrainReport", "QueuedUpload", "Rejection", "UploadQueue", "Uploader"]
