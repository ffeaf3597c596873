"""Audit retention: old audit entries move out of ``audit_log`` into archived segments, and the
chains stay verifiable across the boundary (docs/platform.md, "Audit retention and archiving").

A run (:func:`archive`) moves, for every chain, the **longest prefix** of entries older than
``before`` — entries 1‥k of the chain when entry k+1 is the first at or after ``before`` (a
denial written late can be older than the entry before it: it stays, with all after it) — and
never leaves a hole.  It checks each chain as it goes (seq without gaps, each link, each hash)
and leaves a chain that does not verify where it is, for ``healthcard audit verify`` to show.

The segment ``audit-NNNNNN.jsonl.gz`` (NNNNNN = the run's number, 1, 2, …) is a gzip file of
JSON lines, one entry a line, grouped by chain and in ``seq`` order, each chain one gzip
*member* (concatenated members are one gzip stream: ``zcat`` reads the whole file), so a
resident's archived entries are read from the member's byte range alone.  A line is the
canonical JSON (keys sorted, no spaces, UTF-8) of the hashed fields exactly as hashed plus
``prev_hash`` and ``hash``.

Crash safety: the segment is written to a temporary file in the folder, fsynced, renamed into
place and the folder fsynced **before** the ``audit_archives`` row, its ``audit_archive_chains``
rows and the deletion of the entries go into the database — one transaction, the caller's.  A
crash before the commit leaves a segment without a row: the entries are all still in the
database, the verifier lists the file as an orphan and ignores it, and the next run (same number)
writes over it.  Runs are serialised (a PostgreSQL advisory lock; SQLite's ``BEGIN IMMEDIATE``),
and :meth:`~healthcard.platform.audit.Audit.record` may append during a run: an appender holds
its chain's head until it commits, so a run sees a chain's committed entries only, always a
prefix, and deletes exactly the entries it wrote.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, text
from sqlalchemy.orm import Session

from healthcard.clock import Clock
from healthcard.errors import InvalidValue
from healthcard.platform.audit import (
    _COLUMNS,
    FIELDS,
    GENESIS,
    Audit,
    AuditView,
    _fields_of,
    _Problems,
    canonical,
    checkpoints,
    entry_hash,
    iso_utc,
)
from healthcard.storage.tables import AuditArchive, AuditArchiveChain, AuditEntry
from healthcard.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

#: a segment's file name: ``audit-000001.jsonl.gz``
SEGMENT = re.compile(r"audit-(\d{6,})\.jsonl\.gz")
#: the PostgreSQL advisory lock key that serialises archive runs ("HCAUDARC")
_LOCK_KEY = 0x4843415544415243
_GZIP_LEVEL = 6


def segment_name(number: int) -> str:
    return f"audit-{number:06d}.jsonl.gz"


@dataclass(frozen=True)
class ArchiveReport:
    before: dt.datetime
    segment: str | None  # None: nothing was old enough, no segment written
    number: int | None
    entries: int
    chains: int
    size: int
    sha256: str | None
    skipped: tuple[str, ...] = ()  # chains left in the database: they do not verify


@dataclass(frozen=True)
class ArchiveVerifyReport:
    ok: bool
    segments: int
    archived: int  # entries in the segments
    chains: int  # chains in the database (as Audit.verify counts them)
    entries: int  # entries in the database
    problems: tuple[str, ...]
    orphans: tuple[str, ...] = ()  # segment files no row names: an interrupted run's, ignored


# --- archiving -------------------------------------------------------------------------------------
class _SegmentFile:
    """The segment being written: a temporary file in the folder, one gzip member per chain."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.target = directory / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        os.fchmod(fd, 0o600)
        self.tmp = Path(tmp)
        self.file: IO[bytes] = os.fdopen(fd, "w+b")
        self.offset = 0
        self.packer: Any = None

    def begin_chain(self) -> None:
        self.offset = self.file.tell()
        self.packer = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip member

    def write(self, line: bytes) -> None:
        self.file.write(self.packer.compress(line))

    def end_chain(self) -> tuple[int, int]:
        self.file.write(self.packer.flush())
        return self.offset, self.file.tell() - self.offset

    def drop_chain(self) -> None:
        self.file.seek(self.offset)
        self.file.truncate()

    def finish(self) -> tuple[int, str]:
        """fsync, rename into place, fsync the folder; (size, sha256) of the file."""
        self.file.flush()
        os.fsync(self.file.fileno())
        size = self.file.tell()
        self.file.seek(0)
        digest = hashlib.sha256()
        while chunk := self.file.read(1 << 20):
            digest.update(chunk)
        self.file.close()
        os.replace(self.tmp, self.target)
        folder = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return size, digest.hexdigest()

    def abandon(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def entry_line(fields: dict[str, str | None], prev_hash: str, digest: str) -> bytes:
    """One line of a segment: the canonical JSON of the hashed fields, ``prev_hash`` and ``hash``."""
    return canonical({**fields, "prev_hash": prev_hash, "hash": digest}) + b"\n"


def _lock(session: Session) -> None:
    """One archive run at a time (SQLite: the transaction's BEGIN IMMEDIATE already is)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _check_directory(directory: Path, name: str) -> Path:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InvalidValue(name, f"{directory}: not a folder")
    return directory


@dataclass
class _Part:
    chain: str
    first_seq: int
    last_seq: int = 0
    last_hash: str = GENESIS
    offset: int = 0
    length: int = 0
    count: int = 0
    broken: bool = False


def archive(uow: UnitOfWork, clock: Clock, *, before: dt.datetime, directory: Path) -> ArchiveReport:
    """Move every chain's entries older than ``before`` into a new segment in ``directory``, in
    ``uow`` (the caller commits; until then the entries are still in the database and the
    segment is an orphan).  Writes no segment when nothing is old enough."""
    if not isinstance(before, dt.datetime) or before.tzinfo is None:
        raise InvalidValue("before", "an aware date and time")
    before = before.astimezone(dt.UTC)
    now = clock.now()
    if before > now:
        raise InvalidValue(
            "before", f"{iso_utc(before)}: after now ({iso_utc(now)}); only the past is archived"
        )
    directory = _check_directory(directory, "directory")
    directory.mkdir(parents=True, exist_ok=True)
    session = uow.session
    if session.autoflush:
        session.flush()
    _lock(session)
    number = (session.scalar(select(func.max(AuditArchive.id))) or 0) + 1
    name = segment_name(number)

    cut = (
        select(AuditEntry.chain, func.min(AuditEntry.seq).label("cut"))
        .where(AuditEntry.at >= before)
        .group_by(AuditEntry.chain)
        .subquery("cut")
    )
    checkpoint = checkpoints()
    query = (
        select(
            *_COLUMNS,
            AuditEntry.prev_hash,
            AuditEntry.hash,
            checkpoint.c.seq.label("archived_seq"),
            checkpoint.c.hash.label("archived_hash"),
        )
        .outerjoin(cut, cut.c.chain == AuditEntry.chain)
        .outerjoin(checkpoint, checkpoint.c.chain == AuditEntry.chain)
        .where(AuditEntry.at < before, or_(cut.c.cut.is_(None), AuditEntry.seq < cut.c.cut))
        .order_by(AuditEntry.chain, AuditEntry.seq)
    )
    segment = _SegmentFile(directory, name)
    parts: list[_Part] = []
    skipped: list[str] = []
    try:
        current: _Part | None = None
        for row in session.execute(query.execution_options(yield_per=2000)):
            if current is None or row.chain != current.chain:
                _close(segment, current, parts, skipped)
                start = 0 if row.archived_seq is None else int(row.archived_seq)
                current = _Part(row.chain, first_seq=row.seq, last_seq=start)
                current.last_hash = GENESIS if row.archived_hash is None else str(row.archived_hash)
                segment.begin_chain()
            if current.broken:
                continue
            fields = _fields_of(row)
            if (
                row.seq != current.last_seq + 1
                or row.prev_hash != current.last_hash
                or entry_hash(row.prev_hash, fields) != row.hash
            ):
                current.broken = True
                continue
            segment.write(entry_line(fields, row.prev_hash, row.hash))
            current.last_seq, current.last_hash = row.seq, row.hash
            current.count += 1
        _close(segment, current, parts, skipped)
        if not parts:
            segment.abandon()
            return ArchiveReport(before, None, None, 0, 0, 0, None, tuple(skipped))
        size, digest = segment.finish()
    except BaseException:
        segment.abandon()
        raise
    entries = sum(p.count for p in parts)
    _register(session, number, name, before, now, parts, entries, size, digest)
    if skipped:
        log.warning("audit archive: %d chains do not verify and stay in the database", len(skipped))
    return ArchiveReport(before, name, number, entries, len(parts), size, digest, tuple(skipped))


def _close(segment: _SegmentFile, part: _Part | None, parts: list[_Part], skipped: list[str]) -> None:
    if part is None:
        return
    if part.broken:
        segment.drop_chain()
        skipped.append(part.chain)
        return
    part.offset, part.length = segment.end_chain()
    parts.append(part)


_LOG = AuditEntry.metadata.tables[AuditEntry.__tablename__]
#: a Core statement (an ORM DELETE takes no list of parameters)
_DELETE = delete(_LOG).where(
    _LOG.c.chain == bindparam("d_chain"),
    _LOG.c.seq >= bindparam("d_first"),
    _LOG.c.seq <= bindparam("d_last"),
)


def _register(
    session: Session,
    number: int,
    name: str,
    before: dt.datetime,
    now: dt.datetime,
    parts: Sequence[_Part],
    entries: int,
    size: int,
    digest: str,
) -> None:
    """The segment's rows and the deletion of its entries, in the caller's transaction (the file
    is on disk already)."""
    session.execute(
        insert(AuditArchive).values(
            id=number,
            segment=name,
            before=before,
            created_at=now,
            entries=entries,
            chains=len(parts),
            size=size,
            sha256=digest,
        )
    )
    for batch in _batches(parts, 5000):
        session.execute(
            insert(AuditArchiveChain),
            [
                {
                    "archive_id": number,
                    "chain": p.chain,
                    "first_seq": p.first_seq,
                    "last_seq": p.last_seq,
                    "last_hash": p.last_hash,
                    "offset": p.offset,
                    "length": p.length,
                }
                for p in batch
            ],
        )
        session.execute(
            _DELETE,
            [{"d_chain": p.chain, "d_first": p.first_seq, "d_last": p.last_seq} for p in batch],
        )


def _batches(items: Sequence[_Part], size: int) -> Iterator[Sequence[_Part]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- verifying -------------------------------------------------------------------------------------
def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass
class _Seen:
    first: int
    last: int
    hash: str
    count: int = 0
    reported: set[str] = field(default_factory=set)


def _check_segment(
    directory: Path,
    row: AuditArchive,
    register: dict[str, AuditArchiveChain],
    state: dict[str, tuple[int, str]],
    problems: _Problems,
) -> int:
    """One segment against its rows and the chains before it; the entries it holds."""
    path = directory / row.segment
    if not path.is_file():
        problems.add(f"segment {row.segment}: missing from {directory}")
        return 0
    digest, size = _sha256(path)
    if digest != row.sha256 or size != row.size:
        problems.add(
            f"segment {row.segment}: altered (its SHA-256 or size is not the one audit_archives records)"
        )
    position = 0
    for part in sorted(register.values(), key=lambda p: p.offset):
        if part.offset != position:
            break
        position = part.offset + part.length
    if position != row.size:
        problems.add(
            f"segment {row.segment}: the chains' byte ranges in audit_archive_chains do not cover the file"
        )

    seen: dict[str, _Seen] = {}
    lines = 0
    try:
        with gzip.open(path, "rb") as fh:
            for line in fh:
                lines += 1
                entry = json.loads(line)
                chain, seq = str(entry["chain"]), int(entry["seq"])
                fields = {name: entry[name] for name in FIELDS}
                got = seen.get(chain)
                if got is None:
                    if chain not in register:
                        problems.add(f"segment {row.segment}: chain {chain} is not in audit_archive_chains")
                    last, prev = state.get(chain, (0, GENESIS))
                    got = seen[chain] = _Seen(seq, last, prev)
                if seq != got.last + 1:
                    gap = f"{got.last + 1}" if seq == got.last + 2 else f"{got.last + 1}–{seq - 1}"
                    problems.add(
                        f"chain {chain}: entry {gap} missing before entry {seq} (segment {row.segment})"
                    )
                if entry["prev_hash"] != got.hash:
                    problems.add(
                        f"chain {chain}: entry {seq} does not follow the entry before it (segment {row.segment})"
                    )
                if entry_hash(str(entry["prev_hash"]), fields) != entry["hash"]:
                    problems.add(f"chain {chain}: entry {seq} was altered (segment {row.segment})")
                got.last, got.hash = seq, str(entry["hash"])
                got.count += 1
    except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError) as exc:
        problems.add(f"segment {row.segment}: unreadable after {lines} lines ({type(exc).__name__})")
    if lines != row.entries:
        problems.add(f"segment {row.segment}: holds {lines} entries, audit_archives says {row.entries}")
    if len(register) != row.chains:
        problems.add(
            f"segment {row.segment}: audit_archive_chains has {len(register)} chains, audit_archives says {row.chains}"
        )
    for chain, part in register.items():
        got = seen.get(chain)
        if got is None:
            problems.add(f"segment {row.segment}: chain {chain} is registered but not in the file")
        elif (got.first, got.last, got.hash) != (part.first_seq, part.last_seq, part.last_hash):
            problems.add(
                f"segment {row.segment}: chain {chain}: the file holds entries {got.first}–{got.last}, "
                f"audit_archive_chains says {part.first_seq}–{part.last_seq} (or another last hash)"
            )
    return lines


def verify_with_archives(
    uow: UnitOfWork, audit: Audit, directory: Path, *, max_problems: int = 100
) -> ArchiveVerifyReport:
    """Every segment against its SHA-256 and its rows, the chains inside it, each segment's first
    entry of a chain following the previous segment's last, then the database from the last
    checkpoints (:meth:`Audit.verify`).  Memory: one (seq, hash) per archived chain."""
    directory = _check_directory(directory, "archives")
    if not directory.is_dir():
        raise InvalidValue("archives", f"{directory}: no such folder")
    problems = _Problems(max_problems)
    session = uow.session
    rows = list(session.scalars(select(AuditArchive).order_by(AuditArchive.id)))
    state: dict[str, tuple[int, str]] = {}
    archived = 0
    expected = 1
    for row in rows:
        if row.id != expected:
            missing = f"{expected}" if row.id == expected + 1 else f"{expected}–{row.id - 1}"
            problems.add(f"segment number {missing} missing from audit_archives (before {row.segment})")
        expected = row.id + 1
        register = {
            part.chain: part
            for part in session.scalars(
                select(AuditArchiveChain).where(AuditArchiveChain.archive_id == row.id)
            )
        }
        archived += _check_segment(directory, row, register, state, problems)
        # the next segment and the database go on from what the register says (the file, if it
        # differs, has been reported)
        for chain, part in register.items():
            state[chain] = (part.last_seq, part.last_hash)
    hot = audit.verify(uow, max_problems=max_problems)
    for problem in hot.problems:
        problems.add(problem)
    names = {row.segment for row in rows}
    orphans = tuple(
        sorted(p.name for p in directory.iterdir() if SEGMENT.fullmatch(p.name) and p.name not in names)
    )
    return ArchiveVerifyReport(
        not problems.found, len(rows), archived, hot.chains, hot.entries, problems.report(), orphans
    )


# --- reading a resident's archived entries ---------------------------------------------------------
def archived_entries(uow: UnitOfWork, directory: Path, resident_ids: Iterable[str]) -> list[AuditView]:
    """The archived entries about these residents (their chains' gzip members only), oldest
    segment first.  A segment that cannot be read is skipped with a warning (verify reports it)."""
    ids = [i for i in resident_ids if i]
    if not ids:
        return []
    query = (
        select(AuditArchive.segment, AuditArchiveChain.offset, AuditArchiveChain.length)
        .join(AuditArchive, AuditArchive.id == AuditArchiveChain.archive_id)
        .where(AuditArchiveChain.chain.in_(ids))
        .order_by(AuditArchive.id, AuditArchiveChain.chain)
    )
    wanted = set(ids)
    views: list[AuditView] = []
    for segment, offset, length in uow.session.execute(query):
        try:
            with (Path(directory) / segment).open("rb") as fh:
                fh.seek(offset)
                member = zlib.decompress(fh.read(length), 31)
            for line in member.splitlines():
                entry = json.loads(line)
                if entry["resident_id"] in wanted:
                    views.append(_view(entry))
        except (OSError, zlib.error, ValueError, KeyError, TypeError):
            log.warning("audit archive: segment %s could not be read (healthcard audit verify)", segment)
    return views


def _view(entry: dict[str, Any]) -> AuditView:
    return AuditView(
        int(entry["seq"]),
        entry["chain"],
        dt.datetime.fromisoformat(entry["at"]),
        entry["actor"],
        entry["role"],
        entry["institution_code"],
        entry["resident_id"],
        entry["action"],
        entry["what"],
        entry["why"],
        entry["carrier"],
        entry["outcome"],
        entry["hash"],
    )


__all__ = [
    "ArchiveReport",
    "ArchiveVerifyReport",
    "archive",
    "archived_entries",
    "entry_line",
    "segment_name",
    "verify_with_archives",
]
