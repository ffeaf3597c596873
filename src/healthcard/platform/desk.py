"""What the node's use-case classes share (appointments, settlement, health accounts): the
database, the clock, the access policy, the audit log, the MPI — and one transaction on a
person's data of the class's category (ARCHITECTURE.md §2: one transaction, one policy decision
per use case)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from healthcard.clock import Clock
from healthcard.platform.access import Access, Action, Actor, Category
from healthcard.platform.audit import Audit
from healthcard.platform.mpi import Mpi
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork


class Desk:
    #: the data category every person-level use case of the class asks the policy for
    category: ClassVar[Category]

    def __init__(self, db: Database, clock: Clock, *, access: Access, audit: Audit, mpi: Mpi) -> None:
        self.db = db
        self.clock = clock
        self.access = access
        self.audit = audit
        self.mpi = mpi

    @contextmanager
    def _record(
        self, actor: Actor, resident_id: str, action: Action, *, what: str, why: str = ""
    ) -> Iterator[tuple[UnitOfWork, list[str]]]:
        """One transaction on a person's data: the person's ids (survivor first), the policy's
        decision audited with the work (or a refusal audited on its own), commit at the end."""
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, resident_id)
            self.access.check(uow, actor, ids, self.category, action, what=what, why=why)
            yield uow, ids
            uow.commit()
