"""The unit of work: one transaction, the repositories that work inside it.

::

    with db.uow() as uow:
        card = uow.cards.live(card_number)
        ...
        uow.commit()          # nothing is written unless commit() is called

Leaving the block without ``commit()`` — an exception, a refused input — rolls everything back,
so a refusal never leaves half a change behind.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from healthcard.storage.repositories import (
    ApplicationRepository,
    CardRepository,
    CounterRepository,
    HotListRepository,
    ReferenceRepository,
    ResidentRepository,
)


class UnitOfWork:
    session: Session
    reference: ReferenceRepository
    residents: ResidentRepository
    applications: ApplicationRepository
    cards: CardRepository
    counters: CounterRepository
    hotlist: HotListRepository

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def __enter__(self) -> UnitOfWork:
        self.session = session = self._sessions()
        self.reference = ReferenceRepository(session)
        self.residents = ResidentRepository(session)
        self.applications = ApplicationRepository(session)
        self.cards = CardRepository(session)
        self.counters = CounterRepository(session)
        self.hotlist = HotListRepository(session)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.session.rollback()  # a no-op after commit()
        finally:
            self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def flush(self) -> None:
        self.session.flush()
