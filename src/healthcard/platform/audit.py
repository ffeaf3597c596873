"""The audit log (ARCHITECTURE.md §3 platform/audit): every read and write of personal data.

Each entry says who (account or terminal, role, institution), about whom (``resident_id``),
what (the resource), why (the purpose, or the relationship that allowed it), when, via which
carrier (card, QR, login, terminal, upload) and with which outcome (allowed / denied).

The log is **append-only and hash-chained**.  There is one chain per resident (``chain`` =
resident_id, "-" for entries about no resident): chains shard with the resident, and writers to
different residents never wait for each other.  Entry *n* of a chain stores

    hash_n = SM3(hash_{n-1} ‖ canonical JSON of entry n)        hash_0 = 64 zeros

(:func:`entry_hash`), and :class:`~healthcard.storage.tables.AuditHead` holds the newest
(seq, hash) of each chain.  An appender locks the chain's head row, so the sequence numbers of a
chain are 1, 2, … without gaps even with many writers.  :meth:`Audit.verify` recomputes every
hash and finds an edited entry (its hash no longer matches), a deleted entry in the middle (a
gap in ``seq`` and a broken ``prev_hash`` link) and a deleted tail (the chain ends before its
head).  What it cannot find alone is a rewrite of a whole chain *and* its head; anchoring the
head hashes elsewhere (a signed daily digest to the province node) closes that — a later step.

Old entries move out to archived segments (:mod:`healthcard.platform.auditarchive`): only whole
prefixes of a chain, and each chain's last archived (seq, hash) stays in
``audit_archive_chains`` as the **checkpoint** the first entry left in ``audit_log`` chains from.
:meth:`Audit.verify` starts each chain there; ``verify_with_archives`` checks the segments too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, exists, func, insert, not_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from healthcard.clock import Clock
from healthcard.errors import InvalidValue
from healthcard.keys import sm3
from healthcard.platform.access import Actor, Relationship, Role
from healthcard.storage.tables import AuditArchiveChain, AuditEntry, AuditHead
from healthcard.storage.uow import UnitOfWork

if TYPE_CHECKING:
    from healthcard.platform.auditarchive import ArchiveReport, ArchiveVerifyReport

#: the ``prev_hash`` of the first entry of every chain
GENESIS = "0" * 64
#: the chain of entries about no resident (a population query, a login)
NO_RESIDENT = "-"
OUTCOMES = ("allowed", "denied")
#: the fields an entry's hash covers, besides the previous hash
FIELDS = (
    "chain",
    "seq",
    "at",
    "actor",
    "role",
    "institution_code",
    "resident_id",
    "action",
    "what",
    "why",
    "carrier",
    "outcome",
)
# column widths (healthcard.storage.tables.AuditEntry): longer text is clipped before hashing,
# so the stored entry and its hash always agree
_WIDTH = {"actor": 40, "what": 60, "why": 200}


def iso_utc(at: dt.datetime) -> str:
    """A time as the hash sees it: ISO 8601 in UTC with microseconds (one spelling per instant)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: audit times are aware UTC")
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical(fields: Mapping[str, str | None]) -> bytes:
    """Canonical JSON: keys sorted, no spaces, UTF-8 (Chinese text as itself, not \\u escapes)."""
    return json.dumps(dict(fields), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def entry_hash(prev_hash: str, fields: Mapping[str, str | None]) -> str:
    """SM3 over ``prev_hash`` (64 hex digits, as ASCII) followed by the canonical JSON of the
    entry's fields; lower-case hex."""
    if len(prev_hash) != 64:
        raise ValueError("prev_hash: 64 hex digits")
    return sm3(prev_hash.encode("ascii") + canonical(fields)).hex()


def entry_fields(
    *,
    chain: str,
    seq: int,
    at: dt.datetime,
    actor: str,
    role: str,
    institution_code: str | None,
    resident_id: str | None,
    action: str,
    what: str,
    why: str,
    carrier: str,
    outcome: str,
) -> dict[str, str | None]:
    """The hashed fields of one entry, as text (the same from a new entry and a stored row)."""
    return {
        "chain": chain,
        "seq": str(seq),
        "at": iso_utc(at),
        "actor": actor,
        "role": role,
        "institution_code": institution_code,
        "resident_id": resident_id,
        "action": action,
        "what": what,
        "why": why,
        "carrier": carrier,
        "outcome": outcome,
    }


@dataclass(frozen=True)
class AuditView:
    seq: int
    chain: str
    at: dt.datetime
    actor: str
    role: str
    institution_code: str | None
    resident_id: str | None
    action: str  # read | write | deny | break-glass | login …
    what: str
    why: str
    carrier: str
    outcome: str  # allowed | denied
    hash: str


AuditRecord = AuditView


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    chains: int
    entries: int
    problems: tuple[str, ...]  # one line each; chain and seq, no personal data


_COLUMNS = (
    AuditEntry.chain,
    AuditEntry.seq,
    AuditEntry.at,
    AuditEntry.actor,
    AuditEntry.role,
    AuditEntry.institution_code,
    AuditEntry.resident_id,
    AuditEntry.action,
    AuditEntry.what,
    AuditEntry.why,
    AuditEntry.carrier,
    AuditEntry.outcome,
)


def _view(row: Any) -> AuditView:
    return AuditView(
        row.seq,
        row.chain,
        row.at,
        row.actor,
        row.role,
        row.institution_code,
        row.resident_id,
        row.action,
        row.what,
        row.why,
        row.carrier,
        row.outcome,
        row.hash,
    )


def _fields_of(row: Any) -> dict[str, str | None]:
    return entry_fields(**{name: getattr(row, name) for name in FIELDS})


class _Problems:
    """The problems found, up to a limit (a wrecked log must not flood the report)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.found: list[str] = []
        self.more = 0

    def add(self, problem: str) -> None:
        if len(self.found) < self.limit:
            self.found.append(problem)
        else:
            self.more += 1

    def report(self) -> tuple[str, ...]:
        return (*self.found, f"… and {self.more} more") if self.more else tuple(self.found)


class _Chain:
    """The verifier's state along one chain."""

    def __init__(
        self, name: str, head: tuple[int, str] | None, checkpoint: tuple[int, str] | None = None
    ) -> None:
        self.name = name
        self.head = head
        self.expected = 1 if checkpoint is None else checkpoint[0] + 1
        self.prev = GENESIS if checkpoint is None else checkpoint[1]
        self.last: tuple[int, str] | None = None

    def take(self, row: Any, problems: _Problems) -> None:
        if row.seq != self.expected:
            gap = f"{self.expected}" if row.seq == self.expected + 1 else f"{self.expected}–{row.seq - 1}"
            problems.add(f"chain {self.name}: entry {gap} missing before entry {row.seq}")
        if row.prev_hash != self.prev:
            problems.add(f"chain {self.name}: entry {row.seq} does not follow the entry before it")
        if entry_hash(row.prev_hash, _fields_of(row)) != row.hash:
            problems.add(f"chain {self.name}: entry {row.seq} was altered (its hash does not match)")
        self.expected, self.prev, self.last = row.seq + 1, row.hash, (row.seq, row.hash)

    def finish(self, problems: _Problems) -> None:
        """The chain must end where its head says (a deleted tail leaves no other trace)."""
        if self.head is None:
            problems.add(f"chain {self.name}: no head (entries written outside the audit service?)")
        elif self.last != self.head and self.last is not None:
            if self.last[0] < self.head[0]:
                problems.add(
                    f"chain {self.name}: ends at entry {self.last[0]}, its head at {self.head[0]}: entries removed"
                )
            else:
                problems.add(
                    f"chain {self.name}: its last entry {self.last[0]} is not the one its head records"
                )


# --- the append's statements, built once (SQLAlchemy caches their compiled form) ---------------
_LOG = AuditEntry.metadata.tables[AuditEntry.__tablename__]
_HEADS = AuditHead.metadata.tables[AuditHead.__tablename__]
_LOCK_HEAD = (
    select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.chain == bindparam("h_chain")).with_for_update()
)
_FIRST_HEAD_PG = (
    postgresql.insert(_HEADS)
    .values(seq=0, hash=GENESIS)
    .on_conflict_do_nothing()
    .returning(_HEADS.c.seq, _HEADS.c.hash)
)
_FIRST_HEAD_SQLITE = (
    sqlite.insert(_HEADS)
    .values(seq=0, hash=GENESIS)
    .on_conflict_do_nothing()
    .returning(_HEADS.c.seq, _HEADS.c.hash)
)
#: the entry's columns as bind parameters ``e_<column>`` (a column's own name is reserved)
_INSERT_ENTRY = insert(_LOG).values(
    {c.name: bindparam(f"e_{c.name}", type_=c.type) for c in _LOG.c if c.name != "id"}
)
_MOVE_HEAD = (
    update(_HEADS)
    .where(_HEADS.c.chain == bindparam("e_chain"))
    .values(seq=bindparam("e_seq"), hash=bindparam("e_hash"))
)
#: PostgreSQL: the entry and the head in one statement
_APPEND_PG = _MOVE_HEAD.add_cte(_INSERT_ENTRY.cte("entry"))


def checkpoints(chain: str | None = None) -> Any:
    """A subquery: each archived chain's checkpoint (``chain``, ``seq``, ``hash``) — the last
    entry of the newest segment that holds part of it (healthcard.platform.auditarchive)."""
    latest = select(AuditArchiveChain.chain, func.max(AuditArchiveChain.last_seq).label("seq"))
    if chain is not None:
        latest = latest.where(AuditArchiveChain.chain == chain)
    newest = latest.group_by(AuditArchiveChain.chain).subquery("newest")
    return (
        select(newest.c.chain, newest.c.seq, AuditArchiveChain.last_hash.label("hash"))
        .join(
            AuditArchiveChain,
            and_(AuditArchiveChain.chain == newest.c.chain, AuditArchiveChain.last_seq == newest.c.seq),
        )
        .subquery("checkpoint")
    )


class Audit:
    """Append to the chains, verify them, answer "who looked at my record"."""

    def __init__(self, clock: Clock, *, archive_dir: Path | None = None) -> None:
        self.clock = clock
        #: where archived segments are read from for "who looked" (None: the hot table only)
        self.archive_dir = archive_dir

    # --- appending -----------------------------------------------------------------------------
    @staticmethod
    def _lock_head(session: Session, chain: str) -> tuple[int, str]:
        """The chain's head (seq, hash), row-locked until the transaction ends (PostgreSQL
        ``SELECT … FOR UPDATE``; SQLite holds the database lock from ``BEGIN IMMEDIATE``).  A new
        chain's head is created first with ``INSERT … ON CONFLICT DO NOTHING RETURNING``: the
        writer whose row went in holds its lock already; of two first writers the other gets no
        row back, waits for the first and then locks the row it made."""
        row = session.execute(_LOCK_HEAD, {"h_chain": chain}).one_or_none()
        if row is None:
            postgres = session.get_bind().dialect.name == "postgresql"
            row = (
                session.execute(
                    _FIRST_HEAD_PG if postgres else _FIRST_HEAD_SQLITE, {"chain": chain}
                ).one_or_none()
                or session.execute(_LOCK_HEAD, {"h_chain": chain}).one()
            )
        return int(row[0]), str(row[1])

    def record(
        self,
        uow: UnitOfWork,
        actor: Actor,
        *,
        action: str,
        what: str,
        why: str,
        resident_id: str | None,
        outcome: str = "allowed",
        at: dt.datetime | None = None,
    ) -> AuditView:
        """Append one entry in ``uow`` (it commits or rolls back with the caller's work).
        ``at``: when it happened, if not now (a denial written after the caller's transaction).

        Two round trips on PostgreSQL (every access pays them): lock and read the head, then
        one statement that inserts the entry and moves the head (a data-modifying CTE); SQLite,
        in process, takes the insert and the update as two statements."""
        if not action or len(action) > 12:
            raise InvalidValue("action", "read, write, deny, break-glass, login … (at most 12 characters)")
        if outcome not in OUTCOMES:
            raise InvalidValue("outcome", f"{outcome!r}: one of {', '.join(OUTCOMES)}")
        if not what:
            raise InvalidValue("what", "the resource or data category")
        chain = resident_id or NO_RESIDENT
        when = (at or self.clock.now()).astimezone(dt.UTC)
        values: dict[str, Any] = {
            "chain": chain,
            "at": when,
            "actor": actor.id[: _WIDTH["actor"]],
            "role": actor.role.value,
            "institution_code": actor.institution_code,
            "resident_id": resident_id,
            "action": action,
            "what": what[: _WIDTH["what"]],
            "why": why[: _WIDTH["why"]],
            "carrier": actor.carrier.value,
            "outcome": outcome,
        }
        session = uow.session
        if session.autoflush:  # the statements below are Core ones: flush pending work first
            session.flush()
        last_seq, prev = self._lock_head(session, chain)
        values["seq"] = seq = last_seq + 1
        digest = entry_hash(prev, entry_fields(**values))
        values["prev_hash"], values["hash"] = prev, digest
        params = {f"e_{name}": value for name, value in values.items()}
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_APPEND_PG, params)
        else:
            session.execute(_INSERT_ENTRY, params)
            session.execute(_MOVE_HEAD, params)
        return AuditView(
            seq,
            chain,
            when,
            values["actor"],
            values["role"],
            actor.institution_code,
            resident_id,
            action,
            values["what"],
            values["why"],
            values["carrier"],
            outcome,
            digest,
        )

    # --- verifying -----------------------------------------------------------------------------
    def verify(self, uow: UnitOfWork, chain: str | None = None, *, max_problems: int = 100) -> VerifyReport:
        """Recompute every chain (or one): each hash, each ``prev_hash`` link, ``seq`` without
        gaps from 1 (or from the chain's archive checkpoint), and the last entry equal to the
        head.  One streamed pass over the entries in chain order (joined to their heads and
        checkpoints), then one query for heads whose entries are all gone (and not archived):
        constant memory on a log of any size.  The archived segments themselves are checked by
        :func:`healthcard.platform.auditarchive.verify_with_archives`."""
        problems = _Problems(max_problems)
        checkpoint = checkpoints(chain)
        query = (
            select(
                *_COLUMNS,
                AuditEntry.prev_hash,
                AuditEntry.hash,
                AuditHead.seq.label("head_seq"),
                AuditHead.hash.label("head_hash"),
                checkpoint.c.seq.label("archived_seq"),
                checkpoint.c.hash.label("archived_hash"),
            )
            .outerjoin(AuditHead, AuditHead.chain == AuditEntry.chain)
            .outerjoin(checkpoint, checkpoint.c.chain == AuditEntry.chain)
            .order_by(AuditEntry.chain, AuditEntry.seq)
        )
        emptied = (
            select(AuditHead.chain, AuditHead.seq)
            .outerjoin(checkpoint, checkpoint.c.chain == AuditHead.chain)
            .where(
                AuditHead.seq > 0,
                not_(exists().where(AuditEntry.chain == AuditHead.chain)),
                # not a chain archived whole (its checkpoint is its head); no checkpoint is NULL
                or_(
                    checkpoint.c.seq.is_(None),
                    checkpoint.c.seq != AuditHead.seq,
                    checkpoint.c.hash != AuditHead.hash,
                ),
            )
        )
        if chain is not None:
            query = query.where(AuditEntry.chain == chain)
            emptied = emptied.where(AuditHead.chain == chain)

        chains = entries = 0
        current: _Chain | None = None
        for row in uow.session.execute(query.execution_options(yield_per=1000)):
            if current is None or row.chain != current.name:
                if current is not None:
                    current.finish(problems)
                head = None if row.head_seq is None else (int(row.head_seq), str(row.head_hash))
                archived = (
                    None if row.archived_seq is None else (int(row.archived_seq), str(row.archived_hash))
                )
                current = _Chain(row.chain, head, archived)
                chains += 1
            current.take(row, problems)
            entries += 1
        if current is not None:
            current.finish(problems)
        for name, seq in uow.session.execute(emptied.order_by(AuditHead.chain)):
            chains += 1
            problems.add(f"chain {name}: its head counts {seq} entries, none is left")
        return VerifyReport(not problems.found, chains, entries, problems.report())

    # --- reading -------------------------------------------------------------------------------
    def who_looked(
        self, uow: UnitOfWork, resident_ids: Sequence[str], *, limit: int = 100, include_self: bool = False
    ) -> list[AuditView]:
        """ "Who looked at my record": the entries about the person (all linked ids), newest
        first; by default without the resident's own accesses (an allowed entry by a resident
        account is their own — except a guardian's read through a household link, whose reason
        begins ``proxy``: the policy lets residents reach nothing else, and that one is shown)."""
        if not 1 <= limit <= 1000:
            raise InvalidValue("limit", "1 to 1000")
        ids = [i for i in resident_ids if i]
        if not ids:
            return []
        query = select(*_COLUMNS, AuditEntry.hash).where(AuditEntry.resident_id.in_(ids))
        if not include_self:
            query = query.where(
                not_(
                    and_(
                        AuditEntry.role == Role.RESIDENT.value,
                        AuditEntry.outcome == "allowed",
                        not_(AuditEntry.why.startswith(Relationship.PROXY.value)),
                    )
                )
            )
        query = query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
        views = [_view(row) for row in uow.session.execute(query)]
        if self.archive_dir is None or len(views) >= limit:
            return views
        # older entries moved to archived segments: each chain's gzip member, read alone
        from healthcard.platform.auditarchive import archived_entries

        older = [
            v
            for v in archived_entries(uow, self.archive_dir, ids)
            if include_self or not _own_access(v.role, v.outcome, v.why)
        ]
        views.extend(older)
        views.sort(key=lambda v: v.at, reverse=True)
        return views[:limit]

    def denials(self, uow: UnitOfWork, what: Sequence[str], *, limit: int = 100) -> list[AuditView]:
        """The denied entries (``action`` deny) whose ``what`` is one of ``what``, of any chain,
        newest first (the hot table: a security event is read while it is recent)."""
        if not 1 <= limit <= 1000:
            raise InvalidValue("limit", "1 to 1000")
        query = (
            select(*_COLUMNS, AuditEntry.hash)
            .where(AuditEntry.action == "deny", AuditEntry.what.in_(list(what)))
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(limit)
        )
        return [_view(row) for row in uow.session.execute(query)]

    # --- retention (healthcard.platform.auditarchive) ------------------------------------------
    def archive(self, uow: UnitOfWork, *, before: dt.datetime, directory: Path) -> ArchiveReport:
        """Move each chain's entries older than ``before`` to a new segment in ``directory``
        (the caller commits)."""
        from healthcard.platform.auditarchive import archive

        return archive(uow, self.clock, before=before, directory=directory)

    def verify_with_archives(
        self, uow: UnitOfWork, directory: Path, *, max_problems: int = 100
    ) -> ArchiveVerifyReport:
        """:meth:`verify`, and every archived segment in ``directory`` with it."""
        from healthcard.platform.auditarchive import verify_with_archives

        return verify_with_archives(uow, self, directory, max_problems=max_problems)


def _own_access(role: str, outcome: str, why: str) -> bool:
    """A resident's own allowed access (not a guardian's proxy read): left out of "who looked"."""
    return (
        role == Role.RESIDENT.value and outcome == "allowed" and not why.startswith(Relationship.PROXY.value)
    )


__all__ = [
    "GENESIS",
    "NO_RESIDENT",
    "Audit",
    "AuditRecord",
    "AuditView",
    "VerifyReport",
    "canonical",
    "entry_fields",
    "entry_hash",
    "iso_utc",
]
