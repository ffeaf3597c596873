"""Cross-region care: a card of another city swiped here (issue 8).

A card issued in Zhengzhou (4101, Henan) is swiped at a hospital in Foshan (4406, Guangdong).
The terminal reads the holder and the offline summary from the card itself with its SAM (that
needs no network); the Foshan city node then:

1. refuses the card if the hot list it received lists it (:func:`healthcard.federation.hotlist.refusal`);
2. finds its home through the national index → Henan → Zhengzhou (:func:`~healthcard.federation.queries.locate`);
3. asks the home city ``q.4101.swipe`` (:func:`city_answers`): the home checks the chip as its
   own terminals would (a lost card is refused with ``HotListed``, carried back), writes the card
   use and a presence grant **for the Foshan institution**, audits the reads under an actor that
   names the Foshan terminal and institution, and answers the person, the summary and the recent
   visits;
4. keeps, in its own database, a local person for the visitor (a row of ``residents`` with the
   home's ID document, and one of ``visitors`` naming the home) and writes its own card use,
   presence grant and audit entry — so visits, grants, appointments and settlement here work as
   for its own residents.

Afterwards a Foshan clinician's glance (or summary) of the visitor is fetched from the home
(``q.4101.glance`` / ``q.4101.summary``), allowed there only while the presence grant for the
Foshan institution is live, audited on both sides.  A visit of the visitor closed in Foshan is
stored in Foshan; its pointer goes home as ``x.4101.visit`` (stream ``HC_X``) through Foshan's
outbox in the visit's own transaction, and the home's consumer ``city-4101-visits`` puts it into
``remote_visits`` — the resident's portal lists it, marked with the Foshan institution.

The home keeps the institutions of other cities that read or wrote for its residents in
``visiting_institutions``, so "who looked" names them.

Home unreachable: the swipe is refused with :class:`~healthcard.errors.MessagingError` and nothing
is written here (the terminal still has the card's own offline summary; the visit may be recorded
offline and uploaded later — it needs the visitor's local person, made by a first online swipe).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import types
import typing
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from healthcard.clock import SHANGHAI, Clock
from healthcard.errors import InvalidValue, MessagingError, NotFound, PermissionDenied
from healthcard.federation import hotlist
from healthcard.federation.bus import Bus
from healthcard.federation.outbox import Announcement, InboxHandler, announce, message_id
from healthcard.federation.queries import QUERY_TIMEOUT, Answer, ask, locate
from healthcard.platform import records as rec
from healthcard.platform.access import Action, Actor, Carrier, Category, Relationship, Role, decide
from healthcard.platform.immunization import DoseStatus
from healthcard.platform.mpi import IdSystem
from healthcard.platform.node import STAGES, Glance, GrantInfo, Node, Swipe
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

#: how many of the home's visits a swipe and a glance bring
VISITS = 20
#: staff of another city who may read at the home under the presence grant, and what
REMOTE_ROLES = frozenset({Role.CLINICIAN, Role.REGISTRATION, Role.CASHIER})


# --- where a visitor is at home --------------------------------------------------------------------
@dataclass(frozen=True)
class VisitorHome:
    """Where a visitor (a local resident id here) is at home."""

    resident_id: str
    card_number: str
    province: str
    city: str
    home_resident_id: str


def visitor_home(session: Session, resident_id: str) -> VisitorHome | None:
    """The home of ``resident_id`` when that person is a visitor from another city, else None."""
    row = session.get(t.Visitor, resident_id)
    if row is None:
        return None
    return VisitorHome(
        row.resident_id, row.card_number, row.home_province, row.home_city, row.home_resident_id
    )


def visits_subject(home_city: str) -> str:
    """``x.<home city>.visit``: a visit of that city's resident made in another city."""
    return f"x.{home_city}.visit"


def visits_consumer(city: str) -> str:
    """The durable consumer of a home city's ``x.<city>.>``."""
    return f"city-{city}-visits"


# --- payloads: checked, each refusal naming its field ----------------------------------------------
def _text(payload: Any, name: str, most: int, *, optional: bool = False, prefix: str = "payload") -> Any:
    value = payload.get(name) if isinstance(payload, dict) else None
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise InvalidValue(f"{prefix}.{name}", f"text of 1 to {most} characters")
    return value.strip()


def _code(payload: Any, name: str, digits: int, *, prefix: str = "payload", optional: bool = False) -> Any:
    value = payload.get(name) if isinstance(payload, dict) else None
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) != digits or not value.isdigit():
        raise InvalidValue(f"{prefix}.{name}", f"{digits} digits")
    return value


def _chip(payload: Any) -> str:
    value = payload.get("chip") if isinstance(payload, dict) else None
    chip = value.strip().upper() if isinstance(value, str) else ""
    if len(chip) != 16 or any(c not in "0123456789ABCDEF" for c in chip):
        raise InvalidValue("payload.chip", "16 hex digits (the chip serial of the card's ATR)")
    return chip


@dataclass(frozen=True)
class InstitutionRef:
    """An institution of the visiting city, as the home learns it: code, name, level, area."""

    code: str
    name: str
    city: str
    level: str | None = None
    area: str | None = None

    def document(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "level": self.level, "area": self.area}


def institution_ref(payload: Any, city: str) -> InstitutionRef:
    """``payload.institution``: ``{code, name, level?, area?}``, its code in ``city``'s area."""
    raw = payload.get("institution") if isinstance(payload, dict) else None
    if not isinstance(raw, dict):
        raise InvalidValue("payload.institution", "an object: code, name, level, area")
    code = _text(raw, "code", 22, prefix="payload.institution")
    if not code.isalnum():
        raise InvalidValue("payload.institution.code", "letters and digits (WS 218)")
    area = _code(raw, "area", 6, prefix="payload.institution", optional=True)
    if area is not None and not area.startswith(city):
        raise InvalidValue("payload.institution.area", f"{area}: not in city {city}")
    return InstitutionRef(
        code,
        _text(raw, "name", 100, prefix="payload.institution"),
        city,
        _text(raw, "level", 10, prefix="payload.institution", optional=True),
        area,
    )


@dataclass(frozen=True)
class SwipeQuery:
    """``q.<home>.swipe``: a card of the home city authenticated at a terminal of ``city``."""

    card: str
    chip: str
    stage: str
    terminal_kind: str
    terminal: str
    city: str
    institution: InstitutionRef


def swipe_query(payload: Any) -> SwipeQuery:
    card = _text(payload, "card", 18).upper()
    chip = _chip(payload)
    stage = _text(payload, "stage", 16)
    if stage not in STAGES:
        raise InvalidValue("payload.stage", f"{stage!r}: one of {', '.join(STAGES)}")
    city = _code(payload, "city", 4)
    return SwipeQuery(
        card,
        chip,
        stage,
        _text(payload, "terminal_kind", 16),
        _text(payload, "terminal", 34),
        city,
        institution_ref(payload, city),
    )


@dataclass(frozen=True)
class ReadQuery:
    """``q.<home>.glance`` / ``q.<home>.summary``: a staff member of ``city`` reads a resident of
    the home (``resident``: the home's id) whose card was swiped at ``institution``."""

    resident: str
    city: str
    institution: InstitutionRef
    staff: str
    role: Role


def read_query(payload: Any) -> ReadQuery:
    resident = _text(payload, "resident", 32)
    city = _code(payload, "city", 4)
    institution = institution_ref(payload, city)
    raw = payload.get("actor")
    if not isinstance(raw, dict):
        raise InvalidValue("payload.actor", "an object: id, role")
    staff = _text(raw, "id", 34, prefix="payload.actor")
    try:
        role = Role(_text(raw, "role", 20, prefix="payload.actor"))
    except ValueError:
        role = Role.ADMIN  # refused just below, naming the field
    if role not in REMOTE_ROLES:
        names = ", ".join(sorted(r.value for r in REMOTE_ROLES))
        raise InvalidValue("payload.actor.role", f"one of {names}")
    return ReadQuery(resident, city, institution, staff, role)


# --- views as JSON, and back -----------------------------------------------------------------------
def to_json(value: Any) -> Any:
    """A view (frozen dataclasses of text, numbers, dates, enums, tuples) as plain JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def document(view: Any) -> dict[str, Any]:
    """A view (a dataclass) as a JSON object: a query's reply."""
    found = to_json(view)
    assert isinstance(found, dict)
    return found


def from_json(kind: Any, value: Any, where: str = "reply") -> Any:
    """A view rebuilt from :func:`to_json`'s JSON by its type hints; anything that does not fit
    is :class:`MessagingError` naming where (another node answered nonsense)."""

    def bad() -> MessagingError:
        return MessagingError(f"{where}: not a {getattr(kind, '__name__', kind)}")

    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        return from_json(next(o for o in options if o is not type(None)), value, where)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, dict):
            raise bad()
        hints = typing.get_type_hints(kind)
        fields = {}
        for f in dataclasses.fields(kind):
            if f.name not in value:
                if f.default is not dataclasses.MISSING:
                    continue
                raise MessagingError(f"{where}.{f.name}: missing")
            fields[f.name] = from_json(hints[f.name], value[f.name], f"{where}.{f.name}")
        return kind(**fields)
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise bad()
        args = typing.get_args(kind)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise bad()
            return tuple(
                from_json(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        items = [from_json(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        _, item = typing.get_args(kind)
        return {str(k): from_json(item, v, f"{where}.{k}") for k, v in value.items()}
    try:
        if kind is dt.datetime and isinstance(value, str):
            return dt.datetime.fromisoformat(value)
        if kind is dt.date and isinstance(value, str):
            return dt.date.fromisoformat(value)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind(value)
    except ValueError:
        raise bad() from None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(kind, type) and isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise bad()


@dataclass(frozen=True)
class HomePerson:
    """The person as the home holds them (a visitor's local person is made from it)."""

    resident_id: str
    name: str
    sex: int
    birth_date: dt.date
    area_code: str | None
    id_type: str
    id_number: str


@dataclass(frozen=True)
class HomeSwipe:
    """The home's answer to a swipe elsewhere."""

    person: HomePerson
    summary: rec.SummaryView
    visits: tuple[rec.EncounterView, ...]
    grant_expires_at: dt.datetime


@dataclass(frozen=True)
class HomeGlance:
    """The home's answer to a glance from elsewhere."""

    summary: rec.SummaryView
    plan: tuple[DoseStatus, ...]
    visits: tuple[rec.EncounterView, ...]


# --- the home city answers -------------------------------------------------------------------------
def _remember_institution(node: Node, ref: InstitutionRef) -> None:
    """Keep (or refresh) the visiting institution, so "who looked" names it.  Reference data, in
    a transaction of its own, before the read it explains."""
    with node.db.uow() as uow:
        row = uow.session.get(t.VisitingInstitution, ref.code)
        if row is None:
            uow.session.add(
                t.VisitingInstitution(
                    code=ref.code,
                    name=ref.name,
                    city_code=ref.city,
                    level=ref.level,
                    area_code=ref.area,
                    first_seen_at=node.clock.now(),
                )
            )
        else:
            row.name, row.city_code, row.level, row.area_code = ref.name, ref.city, ref.level, ref.area
        try:
            uow.commit()
        except IntegrityError:  # another swipe of the same institution made it just now
            uow.rollback()


def city_answers(node: Node, city: str) -> dict[str, Answer]:
    """The questions a city node answers about its own residents' cards swiped elsewhere:
    ``swipe``, ``glance`` and ``summary`` (served as ``q.<city>.<name>`` by the node's
    :class:`~healthcard.federation.nodes.FederationRunner`, ``answers=``)."""

    def refuse_own(query_city: str) -> None:
        if query_city == city:
            raise InvalidValue("payload.city", "a card of this city is swiped through its own node")

    def swipe(payload: dict[str, Any]) -> dict[str, Any]:
        query = swipe_query(payload)
        refuse_own(query.city)
        _remember_institution(node, query.institution)
        terminal = Actor(
            f"{query.city}/{query.terminal}",
            Role.TERMINAL,
            institution_code=query.institution.code,
            carrier=Carrier.CARD,
        )
        done = node.swipe(
            terminal,
            card_number=query.card,
            chip_serial=query.chip,
            stage=query.stage,
            terminal_kind=query.terminal_kind,
        )
        person = node.person(terminal, done.resident_id)
        visits = node.encounters(terminal, done.resident_id, limit=VISITS)
        home = HomePerson(
            person.resident_id,
            person.name,
            person.sex,
            person.birth_date,
            person.area_code,
            person.id_type,
            person.id_number,
        )
        return document(HomeSwipe(home, done.summary, tuple(visits), done.grant.expires_at))

    def staff(query: ReadQuery) -> Actor:
        refuse_own(query.city)
        _remember_institution(node, query.institution)
        return Actor(f"{query.city}/{query.staff}", query.role, institution_code=query.institution.code)

    def glance(payload: dict[str, Any]) -> dict[str, Any]:
        query = read_query(payload)
        if query.role is not Role.CLINICIAN:
            raise InvalidValue("payload.actor.role", "the glance is a clinician's")
        found = node.glance(staff(query), query.resident, visits=VISITS)
        return document(HomeGlance(found.summary, tuple(found.plan), tuple(found.visits)))

    def summary(payload: dict[str, Any]) -> dict[str, Any]:
        query = read_query(payload)
        return document(node.summary(staff(query), query.resident))

    return {"swipe": swipe, "glance": glance, "summary": summary}


# --- the visited city asks -------------------------------------------------------------------------
class Regions:
    """A city node's side of cross-region care (``Node.regions``, set by the composition root
    for a city with a code and a bus): a card not found here is another city's."""

    def __init__(self, node: Node, bus: Bus, city: str, *, timeout: float = QUERY_TIMEOUT) -> None:
        self.node, self.bus, self.city, self.timeout = node, bus, city, timeout

    def _institution(self, uow: UnitOfWork, code: str) -> InstitutionRef:
        row = uow.session.get(t.Institution, code)
        if row is None:
            raise NotFound("institution", code)
        return InstitutionRef(row.code, row.name, self.city, row.level, row.area_code)

    def swipe(
        self, actor: Actor, *, card_number: str, chip_serial: str, stage: str, terminal_kind: str
    ) -> Swipe:
        """A card not found here swiped at ``actor``'s terminal (already checked: a terminal of
        an institution, a known stage, a well-formed chip serial)."""
        node = self.node
        assert actor.institution_code is not None
        number = card_number.strip().upper()
        with node.db.uow() as uow:
            refused = hotlist.refusal(uow.session, number, chip_serial)
            if refused is not None:
                raise refused
            institution = self._institution(uow, actor.institution_code)
        home = locate(self.bus, number, timeout=self.timeout)
        if home.city == self.city:  # ours by the index, but no such chip here
            raise NotFound("card", f"{number} with chip {chip_serial}")
        payload = {
            "card": number,
            "chip": chip_serial,
            "stage": stage,
            "terminal_kind": terminal_kind[:16],
            "terminal": actor.id[:34],
            "city": self.city,
            "institution": institution.document(),
        }
        answer: HomeSwipe = from_json(
            HomeSwipe, ask(self.bus, home.city, "swipe", payload, timeout=self.timeout)
        )
        now = node.clock.now()
        with node.db.uow() as uow:
            resident_id = self._visitor(uow, answer.person, number, home.province, home.city, now)
            ids = node.mpi.linked_ids(uow, resident_id)
            use = t.CardUse(
                resident_id=ids[0],
                card_number=number,
                chip_serial=chip_serial,
                institution_code=actor.institution_code,
                terminal_id=actor.id[:40],
                terminal_kind=terminal_kind[:16],
                stage=stage,
                at=now,
            )
            uow.session.add(use)
            uow.flush()
            grant = node.access.grant_presence(
                uow, resident_id=ids[0], institution_code=actor.institution_code, card_use_id=use.id
            )
            node.access.check(
                uow,
                actor,
                ids,
                Category.SUMMARY,
                what="summary",
                why=f"swipe {stage}, from home {home.city}",
                known=frozenset({Relationship.PRESENCE}),
            )
            uow.commit()
        summary = replace(answer.summary, resident_id=ids[0])
        return Swipe(ids[0], number, use.id, GrantInfo(actor.institution_code, grant.expires_at), summary)

    def _visitor(
        self, uow: UnitOfWork, person: HomePerson, card: str, province: str, city: str, now: dt.datetime
    ) -> str:
        """The local person of a visitor: made at the first swipe (or an existing resident with
        the same ID document taken), refreshed from the home at every one."""
        row = uow.session.scalar(
            select(t.Visitor).where(
                t.Visitor.home_city == city, t.Visitor.home_resident_id == person.resident_id
            )
        )
        if row is not None:
            row.card_number, row.last_seen_at = card, now
            resident = uow.session.get(t.Resident, row.resident_id)
            assert resident is not None
            resident.name, resident.sex, resident.birth_date = person.name, person.sex, person.birth_date
            return row.resident_id
        resident = uow.session.scalar(
            select(t.Resident).where(
                t.Resident.id_type == person.id_type, t.Resident.id_number == person.id_number
            )
        )
        if resident is None:
            resident = t.Resident(
                resident_id=self.node.mpi.new_id(),
                id_type=person.id_type,
                id_number=person.id_number,
                name=person.name,
                sex=person.sex,
                birth_date=person.birth_date,
                created_at=now,
                area_code=person.area_code,
            )
            uow.session.add(resident)
            uow.session.flush()
        elif uow.session.get(t.Visitor, resident.resident_id) is not None:
            # a visitor of the same document under another home id (the home re-issued): take it
            visitor = uow.session.get(t.Visitor, resident.resident_id)
            assert visitor is not None
            visitor.home_province, visitor.home_city = province, city
            visitor.home_resident_id, visitor.card_number, visitor.last_seen_at = (
                person.resident_id,
                card,
                now,
            )
            return resident.resident_id
        uow.session.add(
            t.Visitor(
                resident_id=resident.resident_id,
                card_number=card,
                home_province=province,
                home_city=city,
                home_resident_id=person.resident_id,
                first_seen_at=now,
                last_seen_at=now,
            )
        )
        uow.session.flush()
        self.node.mpi.add_identifier(uow, resident.resident_id, IdSystem.CARD, card)
        return resident.resident_id

    def _read(
        self, actor: Actor, resident_id: str, query: str, categories: tuple[tuple[Category, str], ...]
    ) -> tuple[list[str], VisitorHome, Any] | None:
        """A read of a visitor's record: the local policy first (a refusal audited here and
        raised before anything is asked), the home's answer, then the local audit entries."""
        node = self.node
        with node.db.uow() as uow:
            ids = node.mpi.linked_ids(uow, resident_id)
            home = visitor_home(uow.session, ids[0])
            if home is None:
                return None
            held = node.access.relationships(uow, actor, ids)
            for category, what in categories:
                if not any(decide(actor, category, Action.READ, tie).allowed for tie in held):
                    node.access.check(uow, actor, ids, category, what=what, why="from home")  # raises
            if actor.role not in REMOTE_ROLES or not actor.institution_code:
                raise PermissionDenied("the home city answers staff of an institution here")
            institution = self._institution(uow, actor.institution_code)
        payload = {
            "resident": home.home_resident_id,
            "city": self.city,
            "institution": institution.document(),
            "actor": {"id": actor.id[:34], "role": actor.role.value},
        }
        reply = ask(self.bus, home.city, query, payload, timeout=self.timeout)
        with node.db.uow() as uow:
            for category, what in categories:
                node.access.check(
                    uow, actor, ids, category, what=what, why=f"from home {home.city}", known=held
                )
            uow.commit()
        return ids, home, reply

    def visiting(self, uow: UnitOfWork, resident_id: str) -> bool:
        """Whether ``resident_id`` (a survivor) is a visitor here (:class:`Node` asks in its own
        transaction before reading a record)."""
        return uow.session.get(t.Visitor, resident_id) is not None

    def glance(self, actor: Actor, resident_id: str, *, visits: int = VISITS) -> Glance | None:
        """A clinician's glance at a visitor, fetched from the home; None: not a visitor."""
        categories = (
            (Category.DEMOGRAPHICS, "person"),
            (Category.SUMMARY, "summary"),
            (Category.IMMUNIZATION, "vaccination plan"),
            (Category.ENCOUNTERS, "encounters"),
        )
        done = self._read(actor, resident_id, "glance", categories)
        if done is None:
            return None
        ids, _, reply = done
        answer: HomeGlance = from_json(HomeGlance, reply)
        with self.node.db.uow() as uow:
            person = self.node.mpi.person(uow, ids[0])
        summary = replace(answer.summary, resident_id=ids[0])
        return Glance(person, summary, list(answer.plan), list(answer.visits[:visits]))

    def summary(self, actor: Actor, resident_id: str) -> rec.SummaryView | None:
        """A visitor's summary, fetched from the home; None: not a visitor."""
        done = self._read(actor, resident_id, "summary", ((Category.SUMMARY, "summary"),))
        if done is None:
            return None
        ids, _, reply = done
        found: rec.SummaryView = from_json(rec.SummaryView, reply)
        return replace(found, resident_id=ids[0])

    # --- a visit closed here goes home -------------------------------------------------------------
    def visit_closed(self, uow: UnitOfWork, view: rec.EncounterView) -> None:
        """The records' ``on_closed`` hook (with the province's pointer): a visit of a visitor
        closed here is announced to its home city, in the visit's own transaction."""
        home = visitor_home(uow.session, view.resident_id)
        if home is None:
            return
        institution = self._institution(uow, view.institution_code)
        payload = {
            "city": self.city,
            "resident": home.home_resident_id,
            "card": home.card_number,
            "encounter": view.id,
            "kind": view.kind,
            "day": (view.ended_at or view.started_at).astimezone(SHANGHAI).date().isoformat(),
            "institution": institution.document(),
        }
        announce(
            uow,
            visits_subject(home.city),
            payload,
            message_id("visit", self.city, view.id),
            at=self.node.clock.now(),
        )


# --- the home city receives the pointers -----------------------------------------------------------
def apply_remote_visit(uow: UnitOfWork, home: str, payload: Any, now: dt.datetime) -> bool:
    """Put the pointer of a visit made in another city into ``remote_visits`` (once per city and
    visit) and its institution into ``visiting_institutions``: True when new."""
    city = _code(payload, "city", 4)
    if city == home:
        raise InvalidValue("payload.city", "a visit made at home is not a remote visit")
    encounter = payload.get("encounter")
    if not isinstance(encounter, int) or isinstance(encounter, bool) or encounter <= 0:
        raise InvalidValue("payload.encounter", "a positive integer")
    try:
        day = dt.date.fromisoformat(_text(payload, "day", 10))
    except ValueError:
        raise InvalidValue("payload.day", "YYYY-MM-DD") from None
    kind = _text(payload, "kind", 10)
    resident = _text(payload, "resident", 32)
    ref = institution_ref(payload, city)
    session = uow.session
    if session.get(t.VisitingInstitution, ref.code) is None:
        session.add(
            t.VisitingInstitution(
                code=ref.code,
                name=ref.name,
                city_code=city,
                level=ref.level,
                area_code=ref.area,
                first_seen_at=now,
            )
        )
    known = session.scalar(
        select(t.RemoteVisit.id).where(
            t.RemoteVisit.city_code == city, t.RemoteVisit.encounter_id == encounter
        )
    )
    if known is not None:
        return False
    session.add(
        t.RemoteVisit(
            resident_id=resident,
            city_code=city,
            encounter_id=encounter,
            kind=kind,
            day=day,
            institution_code=ref.code,
            institution_name=ref.name,
            received_at=now,
        )
    )
    session.flush()
    return True


def visits_handler(city: str, clock: Clock) -> InboxHandler:
    """The home city's consumer of ``x.<city>.>``: visits of its residents made elsewhere."""

    def handle(uow: UnitOfWork, message: Announcement) -> None:
        parts = message.subject.split(".")
        if len(parts) != 3 or parts[:2] != ["x", city] or parts[2] != "visit":
            log.warning("city %s: subject %s skipped", city, message.subject)
            return
        apply_remote_visit(uow, city, message.payload, clock.now())

    return handle


def wire_regions(node: Node, bus: Bus, city: str) -> tuple[Regions, dict[str, Answer]]:
    """What the composition root wires for a city with a code and a bus: ``node.regions`` (set
    here) and the answers to serve (``q.<city>.swipe|glance|summary``).  The records'
    ``on_closed`` hook must also call :meth:`Regions.visit_closed` (bootstrap.wire_cross_region)."""
    regions = Regions(node, bus, city)
    node.regions = regions
    return regions, city_answers(node, city)


__all__ = [
    "VISITS",
    "HomeGlance",
    "HomePerson",
    "HomeSwipe",
    "InstitutionRef",
    "ReadQuery",
    "Regions",
    "SwipeQuery",
    "VisitorHome",
    "apply_remote_visit",
    "city_answers",
    "document",
    "from_json",
    "institution_ref",
    "read_query",
    "swipe_query",
    "to_json",
    "visitor_home",
    "visits_consumer",
    "visits_handler",
    "visits_subject",
    "wire_regions",
]
