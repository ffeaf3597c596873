"""The master patient index (主索引, ARCHITECTURE.md §3 platform/mpi): one person, many numbers.

A resident is known by many identifiers: the health-card number, the citizen ID number, the
NCMS (新农合) number, the 17-digit health-archive number (DECISIONS.md 9) and the old visit-card
number of every hospital the resident went to before the health card.  "一院一卡" ends because a
hospital's legacy card keeps working: its number is a ``visit-card`` identifier whose
``assigner`` is the hospital, and it resolves to the resident like the health card does.

The person is the :class:`~healthcard.storage.tables.Resident` row.  Records that arrive
without a card (a hospital's register, a paper archive) are matched on demographics —
the name in pinyin (pypinyin, surname readings cared for) compared with rapidfuzz, the birth
date (a swapped day and month or one wrong digit still counts for something), the sex and the
GB/T 2260 area — and either link on their own (an exact citizen-ID hit, or one very strong
match) or wait in the review queue for a person to link, create or reject.

Merging moves no data.  The duplicate gets ``merged_into = survivor``, every lookup follows
that one link, and un-merging clears it; :class:`~healthcard.storage.tables.MergeEvent` rows
keep the history.  Links are one level deep by construction — a survivor is never itself
merged — so the hot path (:meth:`Mpi.resolve_card`, every swipe) is one indexed query.  The
refusals that keep it so:

* a resident merged into itself;
* a merge into a resident that is itself merged (the caller must name the survivor: guessing
  it would hide a reviewer's mistake);
* a merge of a resident that is already merged, or that others are merged into (un-merge
  those first: no chains, hence no cycles);
* an un-merge of a resident that is not merged.

Identifiers live in ``resident_identifiers``; some are also held elsewhere and resolve from
there without a copy: the live cards (``cards``, system ``card``), the ID document of the
resident row (``citizen-id`` for the GB 11643 document types, ``passport``) and the health
archive (``health_archives.archive_number``, system ``archive``).  A second holder of any of
them is refused as :class:`~healthcard.errors.Duplicate`.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler
from sqlalchemy import ColumnElement, and_, bindparam, func, literal, or_, select, union_all
from sqlalchemy.exc import IntegrityError

from healthcard.clock import Clock, local_date
from healthcard.errors import Duplicate, InvalidValue, NotFound, TransitionRefused
from healthcard.issuance.identity import (
    CITIZEN_NUMBER_TYPES,
    EARLIEST_BIRTH,
    SEXES,
    IdType,
    area,
    check_digit,
    check_identity,
)
from healthcard.platform.fields import text as _text
from healthcard.storage.tables import (
    LIVE_CARD,
    Card,
    HealthArchive,
    Institution,
    MatchCandidate,
    MergeEvent,
    Resident,
    ResidentIdentifier,
)
from healthcard.storage.uow import UnitOfWork

# --- identifiers ----------------------------------------------------------------------------


class IdSystem(StrEnum):
    """The kinds of number a resident is known by (``resident_identifiers.system``)."""

    CARD = "card"  # 居民健康卡号 = the citizen ID number, or the ID document's number
    CITIZEN_ID = "citizen-id"  # 公民身份号码, GB 11643 (a 15-digit first-generation number is upgraded)
    NCMS = "ncms"  # 新农合 (NCMS) number: up to 18 digits
    ARCHIVE = "archive"  # 健康档案编号: 17 digits, county + township + village + serial
    VISIT_CARD = "visit-card"  # a hospital's own old card (一院一卡): assigner = the hospital
    PASSPORT = "passport"
    OTHER = "other"


#: systems a national body assigns: their ``assigner`` is always ''
NATIONAL = frozenset({IdSystem.CARD, IdSystem.CITIZEN_ID, IdSystem.NCMS, IdSystem.ARCHIVE})

_CITIZEN = re.compile(r"\d{17}[\dX]")
_CITIZEN_OLD = re.compile(r"\d{15}")
_DOCUMENT = re.compile(r"[A-Z0-9-]{1,18}")
_PASSPORT = re.compile(r"[A-Z0-9]{5,17}")
_VISIT_CARD = re.compile(r"[A-Z0-9][A-Z0-9._/-]{0,39}")
_OTHER = re.compile(r"[\x21-\x7e]{1,40}")
_CITIZEN_TYPES = tuple(sorted(t.value for t in CITIZEN_NUMBER_TYPES))


@dataclass(frozen=True)
class IdentifierView:
    system: str
    value: str
    assigner: str  # the hospital of a visit card, '' for national systems
    active: bool


@dataclass(frozen=True)
class PersonView:
    resident_id: str
    name: str
    sex: int  # GB/T 2261.1
    birth_date: dt.date
    area_code: str | None
    id_type: str  # WS 364.3 CV02.01.101
    id_number: str
    merged_into: str | None  # the survivor, when this resident is a merged duplicate
    identifiers: tuple[IdentifierView, ...]


@dataclass(frozen=True)
class Match:
    resident_id: str
    score: float  # 0..1
    reasons: tuple[str, ...]  # one phrase per thing compared, e.g. "birth: day and month swapped"


class CandidateStatus(StrEnum):
    PENDING = "PENDING"  # waiting for a reviewer
    LINKED = "LINKED"  # belongs to ``resident_id`` (by ID number, a strong match or a reviewer)
    CREATED = "CREATED"  # a reviewer made a new resident of it
    REJECTED = "REJECTED"  # not a person to index (a test record, garbage)


@dataclass(frozen=True)
class CandidateView:
    id: int
    source: str  # the institution that sent it
    local_id: str  # its number there: becomes the visit-card identifier on LINKED / CREATED
    name: str
    sex: int
    birth_date: dt.date
    area_code: str | None
    id_number: str | None
    status: str  # CandidateStatus
    matches: tuple[Match, ...]  # best first, as scored when it arrived
    resident_id: str | None
    received_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    note: str | None = None  # the reviewer's reason, for a rejection


class MergeAction(StrEnum):
    MERGE = "MERGE"
    UNMERGE = "UNMERGE"


@dataclass(frozen=True)
class MergeView:
    id: int
    action: str  # MergeAction
    survivor: str  # the resident the duplicate resolved (or resolves) to
    duplicate: str
    actor: str
    reason: str
    at: dt.datetime


def upgrade_citizen_id(number: str) -> str:
    """A 15-digit first-generation ID number (6 area, 6 birth date YYMMDD, 3 sequence) as the
    18-digit GB 11643 number it became: ``19`` inserted before the year, the check character
    appended.  Any other value is returned as it is."""
    if _CITIZEN_OLD.fullmatch(number):
        body = number[:6] + "19" + number[6:]
        return body + check_digit(body)
    return number


def normalise_value(system: str, value: str) -> str:
    """The stored form of an identifier: stripped, upper case, an old ID number upgraded."""
    text = value.strip().upper()
    return upgrade_citizen_id(text) if system == IdSystem.CITIZEN_ID else text


def check_citizen_id(number: str, today: dt.date, field: str = "value") -> tuple[str, dt.date, int]:
    """A GB 11643 number, checked as the collection point checks it (format, birth date,
    check character, area); (the number, its birth date, its sex)."""
    number = upgrade_citizen_id(number.strip().upper())
    if not _CITIZEN.fullmatch(number):
        raise InvalidValue(
            field, f"{number}: a citizen ID number is 17 digits and a digit or X (or 15 digits)"
        )
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidValue(field, f"{number}: birth date {number[6:14]} is not a date") from None
    sex = 1 if int(number[16]) % 2 else 2
    try:
        check_identity(IdType.CITIZEN_ID, number, birth_date=born, sex=sex, today=today)
    except InvalidValue as error:
        raise InvalidValue(field, error.message) from None
    return number, born, sex


def check_identifier(system: str, value: str, assigner: str, today: dt.date) -> tuple[IdSystem, str, str]:
    """(system, value, assigner) as stored, or :class:`InvalidValue` naming the field."""
    try:
        kind = IdSystem(system)
    except ValueError:
        known = ", ".join(s.value for s in IdSystem)
        raise InvalidValue("system", f"unknown identifier system {system!r} (one of {known})") from None
    number = normalise_value(kind, value)
    assigner = assigner.strip()
    if not number:
        raise InvalidValue("value", f"no {kind} number given")
    if kind in NATIONAL and assigner:
        raise InvalidValue("assigner", f"a {kind} number is national: it has no assigner")
    if kind is IdSystem.VISIT_CARD and not assigner:
        raise InvalidValue("assigner", "a visit card (就诊卡) needs the code of the hospital that gave it")
    if len(assigner) > 22:
        raise InvalidValue("assigner", "an institution code has at most 22 characters")
    if kind is IdSystem.CITIZEN_ID:
        number = check_citizen_id(number, today)[0]
    elif kind is IdSystem.CARD:
        # the citizen ID number; for a holder without one, the ID document's number (ans 18)
        if _CITIZEN.fullmatch(number):
            number = check_citizen_id(number, today)[0]
        elif not _DOCUMENT.fullmatch(number):
            raise InvalidValue("value", f"{number}: a card number is 1-18 letters, digits or hyphens")
    elif kind is IdSystem.NCMS:
        if not (number.isascii() and number.isdigit() and len(number) <= 18):
            raise InvalidValue("value", f"{number}: an NCMS (新农合) number is 1-18 digits")
    elif kind is IdSystem.ARCHIVE:
        if not (number.isascii() and number.isdigit() and len(number) == 17):
            raise InvalidValue(
                "value", f"{number}: a health-archive number (健康档案编号) is exactly 17 digits"
            )
        if area(number[:6]) is None:
            raise InvalidValue("value", f"{number}: {number[:6]} is not a GB/T 2260 county code")
    elif kind is IdSystem.PASSPORT:
        if not _PASSPORT.fullmatch(number):
            raise InvalidValue("value", f"{number}: a passport number is 5-17 letters or digits")
    elif kind is IdSystem.VISIT_CARD:
        if not _VISIT_CARD.fullmatch(number):
            raise InvalidValue("value", f"{number}: a visit-card number is 1-40 letters, digits and . _ / -")
    elif not _OTHER.fullmatch(number):
        raise InvalidValue("value", "an identifier is 1-40 visible ASCII characters")
    return kind, number, assigner


# --- matching (pure) ------------------------------------------------------------------------

#: surnames whose reading is not the character's most common one (pypinyin's default)
SURNAME_READINGS = {
    "尉迟": ("yu", "chi"),
    "万俟": ("mo", "qi"),
    "单于": ("chan", "yu"),
    "长孙": ("zhang", "sun"),
    "单": ("shan",),
    "曾": ("zeng",),
    "区": ("ou",),
    "仇": ("qiu",),
    "解": ("xie",),
    "朴": ("piao",),
    "查": ("zha",),
    "盖": ("ge",),
    "乐": ("yue",),
    "覃": ("qin",),
    "缪": ("miao",),
    "种": ("chong",),
    "繁": ("po",),
    "折": ("she",),
    "员": ("yun",),
    "召": ("shao",),
    "翟": ("zhai",),
    "秘": ("bi",),
    "句": ("gou",),
}
_SEPARATORS = re.compile(r"[\s·•・.\-_,，]+")
_HAN = re.compile(r"[\u3400-\u9fff]")


def clean_name(name: str) -> str:
    """The name as compared: no spaces or middle dots (买买提·艾力 = 买买提艾力)."""
    return _SEPARATORS.sub("", name.strip())


@lru_cache(maxsize=65536)
def syllables(name: str) -> tuple[str, ...]:
    """The name in toneless pinyin, one syllable a character.  The surname (first one or two
    characters) takes its surname reading (单 shan, 曾 zeng, 区 ou …); the given name is read
    on its own, so that pypinyin's phrase table does not join it to the surname.  A name that
    arrives already romanised ("Zhang San") is split into its words."""
    text = name.strip()
    if not _HAN.search(text):
        return tuple(w for w in re.split(r"[^a-z]+", text.lower().replace("ü", "v")) if w)
    text = clean_name(text)
    for size in (2, 1):
        reading = SURNAME_READINGS.get(text[:size])
        if reading is not None:
            return reading + tuple(lazy_pinyin(text[size:]) if text[size:] else ())
    return (*lazy_pinyin(text[:1]), *(lazy_pinyin(text[1:]) if text[1:] else ()))


def pinyin_key(name: str) -> str:
    """What ``residents.name_pinyin`` holds, the blocking key of matching: the syllables in
    lower case, run together ("zhangsan"), so that a romanised "Zhang San" meets 张三 and 章三
    on the same index entry."""
    return "".join(syllables(name))[:120]


def _fold(syllable: str) -> str:
    """A syllable as a southern speaker may type it (模糊音): zh/ch/sh = z/c/s, n = l,
    -ng = -n."""
    for curled, flat in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if syllable.startswith(curled):
            syllable = flat + syllable[2:]
    if syllable.startswith("n"):
        syllable = "l" + syllable[1:]
    if syllable.endswith("ng"):
        syllable = syllable[:-1]
    return syllable


@dataclass(frozen=True)
class Demographics:
    """What matching compares.  ``None`` is "not known": a field the query leaves out is not
    compared; an area a resident lacks counts as neither for nor against."""

    name: str
    birth_date: dt.date | None = None
    sex: int | None = None
    area_code: str | None = None


#: weights of the things compared (normalised over what the query gives)
WEIGHTS = {"name": 0.45, "birth": 0.35, "sex": 0.10, "area": 0.10}
#: a name less alike than this weakens the whole match in proportion (two people who share a
#: birthday, a sex and a county are not one person)
NAME_GATE = 0.7
#: a birth date that is no typo of the other makes the whole match this much weaker
BIRTH_MISS = 0.7
#: a submitted record links on its own to one match at least this strong
AUTO_LINK = 0.97
#: a submitted record keeps matches at least this strong for the reviewer
REVIEW_MIN = 0.6
#: :meth:`Mpi.find` answers matches at least this strong
FIND_MIN = 0.5


def _name_score(a: Demographics, b: Demographics) -> tuple[float, str]:
    if _HAN.search(a.name) and clean_name(a.name) == clean_name(b.name):
        return 1.0, "name: same"
    pa, pb = syllables(a.name), syllables(b.name)
    ja, jb = "".join(pa), "".join(pb)
    if ja and ja == jb:
        return 0.95, "name: same pinyin"
    if ja and "".join(map(_fold, pa)) == "".join(map(_fold, pb)):
        return 0.9, "name: similar sound (模糊音)"
    alike = (JaroWinkler.normalized_similarity(ja, jb) + fuzz.ratio(ja, jb) / 100) / 2
    initials = fuzz.ratio("".join(s[:1] for s in pa), "".join(s[:1] for s in pb)) / 100
    value = 0.85 * alike + 0.15 * initials
    return value, f"name: pinyin {value:.2f} alike"


def _birth_score(a: dt.date, b: dt.date) -> tuple[float, str]:
    if a == b:
        return 1.0, "birth: same"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return 0.6, "birth: day and month swapped"
    sa, sb = a.strftime("%Y%m%d"), b.strftime("%Y%m%d")
    differ = [i for i in range(8) if sa[i] != sb[i]]
    if len(differ) == 1:
        return 0.6, "birth: one digit differs"
    first, second = (differ[0], differ[1]) if len(differ) == 2 else (0, 0)
    if second == first + 1 and sa[first] == sb[second] and sa[second] == sb[first]:
        return 0.6, "birth: two digits swapped"
    return 0.0, "birth: differs"


def _sex_score(a: int, b: int) -> tuple[float, str]:
    if a == b:
        return 1.0, "sex: same"
    if a in (0, 9) or b in (0, 9):
        return 0.5, "sex: not stated"
    return 0.0, "sex: differs"


def _area_score(a: str, b: str | None) -> tuple[float, str]:
    if b is None:
        return 0.5, "area: not known"
    for size, value, phrase in ((6, 1.0, "county"), (4, 0.6, "city"), (2, 0.3, "province")):
        if a[:size] == b[:size]:
            return value, f"area: same {phrase}"
    return 0.0, "area: differs"


def score(a: Demographics, b: Demographics, *, resident_id: str = "") -> Match:
    """How alike the record ``a`` (the query) and the resident ``b`` are, 0..1, with a reason
    for each thing compared.  Pure: no database."""
    parts: dict[str, tuple[float, str]] = {"name": _name_score(a, b)}
    if a.birth_date is not None and b.birth_date is not None:
        parts["birth"] = _birth_score(a.birth_date, b.birth_date)
    if a.sex is not None and b.sex is not None:
        parts["sex"] = _sex_score(a.sex, b.sex)
    if a.area_code is not None:
        parts["area"] = _area_score(a.area_code, b.area_code)
    total = sum(WEIGHTS[k] * v for k, (v, _) in parts.items()) / sum(WEIGHTS[k] for k in parts)
    name = parts["name"][0]
    if name < NAME_GATE:
        total *= name / NAME_GATE
    if "birth" in parts and parts["birth"][0] == 0.0:
        total *= BIRTH_MISS
    return Match(resident_id, round(total, 4), tuple(reason for _, reason in parts.values()))


# --- the service ----------------------------------------------------------------------------

#: at most this many residents are scored for one query (a city node's busiest birthday)
MAX_SCORED = 5000
#: who decides what the MPI decides on its own
AUTO_ACTOR = "mpi"


def _area_code(value: str | None, field: str = "area_code") -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not (len(value) == 6 and value.isascii() and value.isdigit()):
        raise InvalidValue(field, f"{value!r}: an area is a 6-digit GB/T 2260 code")
    return value


def _identifier_view(row: ResidentIdentifier) -> IdentifierView:
    return IdentifierView(row.system, row.value, row.assigner, row.active)


def _merge_view(row: MergeEvent) -> MergeView:
    return MergeView(
        row.id, row.action, row.resident_id, row.source_resident_id, row.actor, row.reason, row.at
    )


def _matches_json(matches: Iterable[Match]) -> list[dict[str, Any]]:
    return [{"resident_id": m.resident_id, "score": m.score, "reasons": list(m.reasons)} for m in matches]


def _candidate_view(row: MatchCandidate) -> CandidateView:
    matches = tuple(
        Match(str(m["resident_id"]), float(m["score"]), tuple(str(r) for r in m["reasons"]))
        for m in row.matches
    )
    return CandidateView(
        row.id,
        row.source,
        row.local_id,
        row.name,
        row.sex,
        row.birth_date,
        row.area_code,
        row.id_number,
        row.status,
        matches,
        row.resident_id,
        row.received_at,
        row.decided_by,
        row.decided_at,
        row.note,
    )


def _survivor_of() -> ColumnElement[str]:
    return func.coalesce(Resident.merged_into, Resident.resident_id)


_RESIDENTS = Resident.__table__.c
#: prebuilt (compiled once, cached by SQLAlchemy): a resident's merge link
_MERGED_INTO = select(_RESIDENTS.merged_into).where(_RESIDENTS.resident_id == bindparam("id"))
#: a resident and everyone merged into it, by id (the MPI's links are one hop)
_LINKED = (
    select(_RESIDENTS.resident_id, _RESIDENTS.merged_into)
    .where(or_(_RESIDENTS.resident_id == bindparam("id"), _RESIDENTS.merged_into == bindparam("id")))
    .order_by(_RESIDENTS.resident_id)
)


def _autoflush(uow: UnitOfWork) -> None:
    """Flush pending ORM changes before a Core statement reads, as an ORM query would."""
    if uow.session.autoflush:
        uow.session.flush()


class Mpi:
    """The master patient index over one unit of work: every method takes the caller's ``uow``
    (so several services compose in one transaction) and never commits."""

    def __init__(self, clock: Clock, *, new_id: Callable[[], str] = lambda: secrets.token_hex(16)) -> None:
        self.clock = clock
        #: resident ids as the card centre makes them (32 hex characters)
        self.new_id = new_id

    # --- following links --------------------------------------------------------------------

    def survivor(self, uow: UnitOfWork, resident_id: str) -> str:
        """The resident that ``resident_id`` resolves to (itself unless merged)."""
        _autoflush(uow)  # the prebuilt statements are Core ones: SQLAlchemy would not flush
        seen: list[str] = []
        current = resident_id
        while True:
            merged_into = uow.session.execute(_MERGED_INTO, {"id": current}).one_or_none()
            if merged_into is None:
                raise NotFound("resident", current)
            if merged_into[0] is None:
                return current
            seen.append(current)
            # one hop by construction; the loop only guards rows written by other means
            if merged_into[0] in seen or len(seen) > 8:
                raise TransitionRefused(f"resident {resident_id}: merge links form a cycle")
            current = merged_into[0]

    def linked_ids(self, uow: UnitOfWork, resident_id: str) -> list[str]:
        """The survivor first, then every resident merged into it: the records of all of them
        are the person's.

        Read at every swipe, so one indexed query answers the common case — ``resident_id``
        itself and whoever is merged into it; only when ``resident_id`` was itself merged away
        is the survivor resolved first and its links read."""
        _autoflush(uow)
        rows = uow.session.execute(_LINKED, {"id": resident_id}).all()
        own = next((row for row in rows if row[0] == resident_id), None)
        if own is None:
            raise NotFound("resident", resident_id)
        if own[1] is not None:  # a merged duplicate: the person is its survivor's
            survivor = self.survivor(uow, resident_id)
            rows = uow.session.execute(_LINKED, {"id": survivor}).all()
            return [survivor, *(row[0] for row in rows if row[0] != survivor)]
        return [resident_id, *(row[0] for row in rows if row[0] != resident_id)]

    def _resident(self, uow: UnitOfWork, resident_id: str, *, lock: bool = False) -> Resident:
        query = select(Resident).where(Resident.resident_id == resident_id)
        if lock:  # re-read under the lock: a row loaded earlier may be stale
            query = query.with_for_update().execution_options(populate_existing=True)
        row = uow.session.scalars(query).one_or_none()
        if row is None:
            raise NotFound("resident", resident_id)
        return row

    # --- the person -------------------------------------------------------------------------

    def person(self, uow: UnitOfWork, resident_id: str) -> PersonView:
        """The resident as stored, with every identifier that resolves to it: its own and, for a
        survivor, those of the residents merged into it; the ID document, live cards and the
        archive number included."""
        row = self._resident(uow, resident_id)
        owners = [resident_id] if row.merged_into else self.linked_ids(uow, resident_id)
        found: dict[tuple[str, str, str], IdentifierView] = {}
        stored = select(ResidentIdentifier).where(ResidentIdentifier.resident_id.in_(owners))
        for ident in uow.session.scalars(stored):
            found[(ident.system, ident.assigner, ident.value)] = _identifier_view(ident)
        implicit: list[tuple[IdSystem, str]] = []
        people = uow.session.execute(
            select(Resident.id_type, Resident.id_number).where(Resident.resident_id.in_(owners))
        )
        for id_type, id_number in people:
            if id_type in _CITIZEN_TYPES:
                implicit.append((IdSystem.CITIZEN_ID, id_number))
            elif id_type == IdType.PASSPORT:
                implicit.append((IdSystem.PASSPORT, id_number))
        cards = select(Card.card_number).where(Card.resident_id.in_(owners), Card.status.in_(LIVE_CARD))
        implicit += [(IdSystem.CARD, number) for number in uow.session.scalars(cards)]
        archives = select(HealthArchive.archive_number).where(HealthArchive.resident_id.in_(owners))
        implicit += [(IdSystem.ARCHIVE, n) for n in uow.session.scalars(archives) if n is not None]
        for system, value in implicit:
            found.setdefault((system.value, "", value), IdentifierView(system.value, value, "", True))
        return PersonView(
            row.resident_id,
            row.name,
            row.sex,
            row.birth_date,
            row.area_code,
            row.id_type,
            row.id_number,
            row.merged_into,
            tuple(found[key] for key in sorted(found)),
        )

    def ensure_person(self, uow: UnitOfWork, *, resident_id: str, area_code: str | None = None) -> None:
        """Fill what matching needs of a resident the card centre made: the name in pinyin, and
        the area (given, or the first 6 digits of a citizen ID number)."""
        area_code = _area_code(area_code)
        row = self._resident(uow, resident_id)
        row.name_pinyin = pinyin_key(row.name)
        if area_code is not None:
            row.area_code = area_code
        elif row.area_code is None and row.id_type in _CITIZEN_TYPES:
            row.area_code = row.id_number[:6]
        uow.session.flush()

    # --- identifiers ------------------------------------------------------------------------

    def _holders(self, uow: UnitOfWork, kind: IdSystem, value: str, assigner: str) -> list[str]:
        """The residents (as survivors) that hold the number elsewhere than in
        ``resident_identifiers``."""
        query: Any
        if kind is IdSystem.CARD and not assigner:
            query = (
                select(_survivor_of())
                .select_from(Card)
                .join(Resident, Resident.resident_id == Card.resident_id)
                .where(Card.card_number == value, Card.status.in_(LIVE_CARD))
            )
        elif kind in (IdSystem.CITIZEN_ID, IdSystem.PASSPORT) and not assigner:
            types = _CITIZEN_TYPES if kind is IdSystem.CITIZEN_ID else (IdType.PASSPORT.value,)
            query = select(_survivor_of()).where(Resident.id_type.in_(types), Resident.id_number == value)
        elif kind is IdSystem.ARCHIVE and not assigner:
            query = (
                select(_survivor_of())
                .select_from(HealthArchive)
                .join(Resident, Resident.resident_id == HealthArchive.resident_id)
                .where(HealthArchive.archive_number == value)
            )
        else:
            return []
        return sorted(set(uow.session.scalars(query)))

    def add_identifier(
        self, uow: UnitOfWork, resident_id: str, system: str, value: str, assigner: str = ""
    ) -> IdentifierView:
        """Give the resident a number.  Adding one it already holds (or a resident merged with it
        holds) answers the existing one; another person holding it is :class:`Duplicate`."""
        kind, value, assigner = check_identifier(system, value, assigner, local_date(self.clock))
        resident = self._resident(uow, resident_id)
        person = self.survivor(uow, resident_id)
        if kind is IdSystem.VISIT_CARD and uow.session.get(Institution, assigner) is None:
            raise InvalidValue("assigner", f"no institution {assigner}")
        if kind is IdSystem.CITIZEN_ID:
            self._check_citizen_fits(uow, resident, value)
        existing = uow.session.scalars(
            select(ResidentIdentifier).where(
                ResidentIdentifier.system == kind.value,
                ResidentIdentifier.assigner == assigner,
                ResidentIdentifier.value == value,
            )
        ).one_or_none()
        if existing is not None:
            if self.survivor(uow, existing.resident_id) != person:
                raise Duplicate("value", f"{kind} {value} belongs to another resident")
            existing.active = True
            uow.session.flush()
            return _identifier_view(existing)
        if any(holder != person for holder in self._holders(uow, kind, value, assigner)):
            raise Duplicate("value", f"{kind} {value} belongs to another resident")
        row = ResidentIdentifier(
            resident_id=resident_id,
            system=kind.value,
            assigner=assigner,
            value=value,
            active=True,
            created_at=self.clock.now(),
        )
        try:
            with uow.session.begin_nested():
                uow.session.add(row)
        except IntegrityError:  # another process added it between the look-up and here
            raise Duplicate("value", f"{kind} {value} was just taken") from None
        return _identifier_view(row)

    def _check_citizen_fits(self, uow: UnitOfWork, resident: Resident, number: str) -> None:
        """A person has one citizen ID number, and it carries their birth date."""
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        if born != resident.birth_date:
            raise InvalidValue(
                "value",
                f"{number}: its birth date {born} is not the resident's ({resident.birth_date})",
            )
        held = {resident.id_number} if resident.id_type in _CITIZEN_TYPES else set()
        held |= set(
            uow.session.scalars(
                select(ResidentIdentifier.value).where(
                    ResidentIdentifier.resident_id == resident.resident_id,
                    ResidentIdentifier.system == IdSystem.CITIZEN_ID.value,
                )
            )
        )
        others = held - {number}
        if others:
            raise InvalidValue("value", f"the resident already has citizen ID number {min(others)}")

    def resolve(self, uow: UnitOfWork, system: str, value: str, assigner: str = "") -> str:
        """The survivor known by this number; :class:`NotFound` ``("identifier", …)``."""
        try:
            kind = IdSystem(system)
        except ValueError:
            raise InvalidValue("system", f"unknown identifier system {system!r}") from None
        value, assigner = normalise_value(kind, value), assigner.strip()
        if kind is IdSystem.CARD and not assigner:
            return self.resolve_card(uow, value)
        found = uow.session.scalars(
            select(_survivor_of())
            .select_from(ResidentIdentifier)
            .join(Resident, Resident.resident_id == ResidentIdentifier.resident_id)
            .where(
                ResidentIdentifier.system == kind.value,
                ResidentIdentifier.assigner == assigner,
                ResidentIdentifier.value == value,
                ResidentIdentifier.active.is_(True),
            )
        ).one_or_none()
        if found is not None:
            return found
        holders = self._holders(uow, kind, value, assigner)
        if len(holders) == 1:
            return holders[0]
        raise NotFound("identifier", f"{kind} {assigner + ':' if assigner else ''}{value}")

    def resolve_card(self, uow: UnitOfWork, card_number: str) -> str:
        """The survivor a swiped card belongs to: a ``card`` identifier, else the live card with
        that number.  The hot path: one statement over two unique indexes (identifiers'
        (system, assigner, value) and the cards' live card number), links followed in SQL."""
        number = card_number.strip().upper()
        stored = (
            select(_survivor_of().label("person"), literal(0).label("priority"))
            .select_from(ResidentIdentifier)
            .join(Resident, Resident.resident_id == ResidentIdentifier.resident_id)
            .where(
                ResidentIdentifier.system == IdSystem.CARD.value,
                ResidentIdentifier.assigner == "",
                ResidentIdentifier.value == number,
                ResidentIdentifier.active.is_(True),
            )
        )
        live = (
            select(_survivor_of().label("person"), literal(1).label("priority"))
            .select_from(Card)
            .join(Resident, Resident.resident_id == Card.resident_id)
            .where(Card.card_number == number, Card.status.in_(LIVE_CARD))
        )
        both = union_all(stored, live).subquery()
        found = uow.session.scalars(select(both.c.person).order_by(both.c.priority).limit(1)).first()
        if found is None:
            raise NotFound("identifier", f"card {number}")
        return str(found)

    # --- matching ---------------------------------------------------------------------------

    def _scored(self, uow: UnitOfWork, query: Demographics) -> list[Match]:
        """Every survivor that the blocking keys reach, scored, best first.  Blocking keys:
        the same pinyin (homophones, any birth date), the same name (rows whose pinyin is not
        filled yet), the same birth date with a compatible sex (name typos).  Residents merged
        into a survivor count for it: a duplicate's old spelling still finds the person."""
        key = pinyin_key(query.name)
        arms: list[ColumnElement[bool]] = [Resident.name == clean_name(query.name)]
        if key:
            arms.append(Resident.name_pinyin == key)
        if query.birth_date is not None:
            born = Resident.birth_date == query.birth_date
            if query.sex in (1, 2):
                arms.append(and_(born, Resident.sex.in_([query.sex, 0, 9])))
            else:
                arms.append(born)
        rows = uow.session.execute(
            select(
                Resident.resident_id,
                Resident.name,
                Resident.sex,
                Resident.birth_date,
                Resident.area_code,
                _survivor_of().label("person"),
            )
            .where(or_(*arms))
            .limit(MAX_SCORED)
        )
        best: dict[str, Match] = {}
        for row in rows:
            seen = Demographics(row.name, row.birth_date, row.sex, row.area_code)
            match = score(query, seen, resident_id=row.person)
            if row.person not in best or match.score > best[row.person].score:
                best[row.person] = match
        return sorted(best.values(), key=lambda m: (-m.score, m.resident_id))

    def find(
        self,
        uow: UnitOfWork,
        *,
        name: str,
        birth_date: dt.date | None = None,
        sex: int | None = None,
        area_code: str | None = None,
        limit: int = 10,
    ) -> list[Match]:
        """Residents who may be this person, best first (score at least :data:`FIND_MIN`)."""
        name = _text("name", name, 60)
        area_code = _area_code(area_code)
        if sex is not None and (isinstance(sex, bool) or sex not in SEXES):
            raise InvalidValue("sex", f"unknown sex code {sex!r} (GB/T 2261.1)")
        if not 1 <= limit <= 100:
            raise InvalidValue("limit", "between 1 and 100")
        query = Demographics(name, birth_date, sex, area_code)
        return [m for m in self._scored(uow, query) if m.score >= FIND_MIN][:limit]

    # --- the review queue -------------------------------------------------------------------

    def _candidate(self, uow: UnitOfWork, candidate_id: int, *, lock: bool = False) -> MatchCandidate:
        query = select(MatchCandidate).where(MatchCandidate.id == candidate_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = uow.session.scalars(query).one_or_none()
        if row is None:
            raise NotFound("candidate", str(candidate_id))
        return row

    def submit(
        self,
        uow: UnitOfWork,
        *,
        source: str,
        local_id: str,
        name: str,
        sex: int,
        birth_date: dt.date,
        area_code: str | None = None,
        id_number: str | None = None,
    ) -> CandidateView:
        """Index a record that arrived without a card.  It links on its own (LINKED, and the
        source's ``local_id`` becomes a visit-card identifier of the person) when its visit card
        is already known, when its citizen ID number is known, or when exactly one resident
        matches at least :data:`AUTO_LINK` with a known area; otherwise it waits PENDING with
        its matches.  Idempotent per (source, local_id); the same pair with other data is
        :class:`Duplicate`."""
        today = local_date(self.clock)
        source = _text("source", source, 22)
        try:
            _, local_id, _ = check_identifier(IdSystem.VISIT_CARD, local_id, source, today)
        except InvalidValue as error:  # the record's own field names
            raise InvalidValue({"value": "local_id"}.get(error.field, "source"), error.message) from None
        name = _text("name", name, 60)
        if isinstance(sex, bool) or sex not in SEXES:
            raise InvalidValue("sex", f"unknown sex code {sex!r} (GB/T 2261.1: 0, 1, 2, 9)")
        if not EARLIEST_BIRTH <= birth_date <= today:
            raise InvalidValue("birth_date", f"{birth_date} is not between {EARLIEST_BIRTH} and today")
        area_code = _area_code(area_code)
        if id_number is not None and id_number.strip():
            id_number = check_citizen_id(id_number, today, field="id_number")[0]
        else:
            id_number = None
        if uow.session.get(Institution, source) is None:
            raise InvalidValue("source", f"no institution {source}")

        earlier = uow.session.scalars(
            select(MatchCandidate).where(MatchCandidate.source == source, MatchCandidate.local_id == local_id)
        ).one_or_none()
        if earlier is not None:
            same = (earlier.name, earlier.sex, earlier.birth_date, earlier.area_code, earlier.id_number)
            if same != (name, sex, birth_date, area_code, id_number):
                raise Duplicate("local_id", f"{source} {local_id} was submitted with other data")
            return _candidate_view(earlier)

        matches = [
            m
            for m in self._scored(uow, Demographics(name, birth_date, sex, area_code))
            if m.score >= REVIEW_MIN
        ][:10]
        known_card = self._resolve_or_none(uow, IdSystem.VISIT_CARD, local_id, source)
        by_id = self._resolve_or_none(uow, IdSystem.CITIZEN_ID, id_number) if id_number else None
        linked: str | None = None
        if known_card is not None and by_id in (None, known_card):
            linked = known_card
        elif known_card is None and by_id is not None:
            linked = by_id
        elif known_card is None and area_code is not None:
            strong = [m for m in matches if m.score >= AUTO_LINK]
            if len(strong) == 1 and (id_number is None or self._id_free(uow, strong[0].resident_id)):
                linked = strong[0].resident_id
        now = self.clock.now()
        row = MatchCandidate(
            source=source,
            local_id=local_id,
            name=name,
            sex=sex,
            birth_date=birth_date,
            area_code=area_code,
            id_number=id_number,
            status=(CandidateStatus.LINKED if linked else CandidateStatus.PENDING).value,
            matches=_matches_json(matches),
            resident_id=linked,
            received_at=now,
            decided_by=AUTO_ACTOR if linked else None,
            decided_at=now if linked else None,
        )
        try:
            with uow.session.begin_nested():
                uow.session.add(row)
        except IntegrityError:  # the same record sent twice at once: the first one stands
            raise Duplicate("local_id", f"{source} {local_id} is being submitted already") from None
        if linked is not None and known_card is None:
            self.add_identifier(uow, linked, IdSystem.VISIT_CARD, local_id, source)
        return _candidate_view(row)

    def _resolve_or_none(self, uow: UnitOfWork, system: str, value: str, assigner: str = "") -> str | None:
        try:
            return self.resolve(uow, system, value, assigner)
        except NotFound:
            return None

    def _id_free(self, uow: UnitOfWork, resident_id: str) -> bool:
        """A record carrying an ID number that no one holds may only link on its own to a
        resident without a citizen ID number (else the numbers disagree: a reviewer decides)."""
        ids = self.person(uow, resident_id).identifiers
        return not any(i.system == IdSystem.CITIZEN_ID for i in ids)

    def queue(self, uow: UnitOfWork, status: str = "PENDING", limit: int = 50) -> list[CandidateView]:
        """The candidates in ``status``, oldest first."""
        try:
            status = CandidateStatus(status).value
        except ValueError:
            raise InvalidValue("status", f"one of {', '.join(CandidateStatus)}") from None
        if not 1 <= limit <= 500:
            raise InvalidValue("limit", "between 1 and 500")
        rows = uow.session.scalars(
            select(MatchCandidate)
            .where(MatchCandidate.status == status)
            .order_by(MatchCandidate.received_at, MatchCandidate.id)
            .limit(limit)
        )
        return [_candidate_view(row) for row in rows]

    def _pending(self, uow: UnitOfWork, candidate_id: int) -> MatchCandidate:
        row = self._candidate(uow, candidate_id, lock=True)
        if row.status != CandidateStatus.PENDING:
            raise TransitionRefused(f"candidate {candidate_id} is {row.status}, not PENDING")
        return row

    def _decide(self, row: MatchCandidate, status: CandidateStatus, by: str, resident_id: str | None) -> None:
        row.status = status.value
        row.resident_id = resident_id
        row.decided_by = by
        row.decided_at = self.clock.now()

    def link(self, uow: UnitOfWork, candidate_id: int, resident_id: str, *, by: str) -> CandidateView:
        """A reviewer's decision: the candidate is this resident (the survivor, when merged); its
        visit card becomes the person's identifier."""
        by = _text("by", by, 40)
        row = self._pending(uow, candidate_id)
        person = self.survivor(uow, resident_id)
        holder = self._resolve_or_none(uow, IdSystem.VISIT_CARD, row.local_id, row.source)
        if holder not in (None, person):
            raise Duplicate(
                "resident_id", f"visit card {row.source} {row.local_id} belongs to another resident"
            )
        self.add_identifier(uow, person, IdSystem.VISIT_CARD, row.local_id, row.source)
        self._decide(row, CandidateStatus.LINKED, by, person)
        uow.session.flush()
        return _candidate_view(row)

    def create(self, uow: UnitOfWork, candidate_id: int, *, by: str) -> CandidateView:
        """A reviewer's decision: the candidate is someone new.  The resident gets the citizen ID
        number it came with (ID type 01) or, without one, ID type 99 and the number
        ``MPI-`` + 14 characters of its resident id (the ID document is unknown; when the person
        later applies for a card with a real one, the two residents are merged)."""
        by = _text("by", by, 40)
        row = self._pending(uow, candidate_id)
        resident_id = self.new_id()
        if row.id_number is not None:
            id_type, id_number = IdType.CITIZEN_ID.value, row.id_number
            if self._resolve_or_none(uow, IdSystem.CITIZEN_ID, id_number) is not None:
                raise Duplicate("id_number", f"{id_number} belongs to a resident: link to it instead")
        else:
            id_type, id_number = IdType.OTHER.value, f"MPI-{resident_id[:14].upper()}"
        holder = self._resolve_or_none(uow, IdSystem.VISIT_CARD, row.local_id, row.source)
        if holder is not None:
            raise Duplicate("local_id", f"visit card {row.source} {row.local_id} belongs to a resident")
        uow.session.add(
            Resident(
                resident_id=resident_id,
                id_type=id_type,
                id_number=id_number,
                name=row.name,
                sex=row.sex,
                birth_date=row.birth_date,
                created_at=self.clock.now(),
                area_code=row.area_code or (id_number[:6] if row.id_number else None),
                name_pinyin=pinyin_key(row.name),
            )
        )
        uow.session.flush()
        self.add_identifier(uow, resident_id, IdSystem.VISIT_CARD, row.local_id, row.source)
        self._decide(row, CandidateStatus.CREATED, by, resident_id)
        uow.session.flush()
        return _candidate_view(row)

    def reject(self, uow: UnitOfWork, candidate_id: int, *, by: str, reason: str) -> CandidateView:
        """A reviewer's decision: not a person to index; the reason is kept with it."""
        by = _text("by", by, 40)
        reason = _text("reason", reason, 200)
        row = self._pending(uow, candidate_id)
        self._decide(row, CandidateStatus.REJECTED, by, None)
        row.note = reason
        uow.session.flush()
        return _candidate_view(row)

    # --- merge and un-merge -----------------------------------------------------------------

    def merge(self, uow: UnitOfWork, survivor: str, duplicate: str, *, by: str, reason: str) -> MergeView:
        """``duplicate`` is the same person as ``survivor``: from now on it resolves to it.
        Refusals (nothing written): the same resident twice, a survivor that is itself merged,
        a duplicate already merged or with residents merged into it."""
        by, reason = _text("by", by, 40), _text("reason", reason, 200)
        if survivor == duplicate:
            raise InvalidValue("duplicate", "a resident cannot be merged into itself")
        # lock both rows, in a fixed order, before looking: two merges at once see each other
        rows = {
            r.resident_id: r
            for r in uow.session.scalars(
                select(Resident)
                .where(Resident.resident_id.in_(sorted((survivor, duplicate))))
                .order_by(Resident.resident_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        for resident_id in (survivor, duplicate):
            if resident_id not in rows:
                raise NotFound("resident", resident_id)
        kept, gone = rows[survivor], rows[duplicate]
        if kept.merged_into is not None:
            raise TransitionRefused(
                f"resident {survivor} is merged into {kept.merged_into}: merge into that one"
            )
        if gone.merged_into is not None:
            raise TransitionRefused(f"resident {duplicate} is already merged into {gone.merged_into}")
        absorbed = uow.session.scalars(
            select(Resident.resident_id).where(Resident.merged_into == duplicate).limit(1)
        ).first()
        if absorbed is not None:
            raise TransitionRefused(
                f"resident {absorbed} is merged into {duplicate}: un-merge it first (no chains)"
            )
        gone.merged_into = survivor
        return self._event(uow, MergeAction.MERGE, survivor, duplicate, by, reason)

    def unmerge(self, uow: UnitOfWork, duplicate: str, *, by: str, reason: str) -> MergeView:
        """Undo a merge: ``duplicate`` resolves to itself again."""
        by, reason = _text("by", by, 40), _text("reason", reason, 200)
        row = self._resident(uow, duplicate, lock=True)
        if row.merged_into is None:
            raise TransitionRefused(f"resident {duplicate} is not merged")
        survivor = row.merged_into
        row.merged_into = None
        return self._event(uow, MergeAction.UNMERGE, survivor, duplicate, by, reason)

    def _event(
        self, uow: UnitOfWork, action: MergeAction, survivor: str, duplicate: str, by: str, reason: str
    ) -> MergeView:
        event = MergeEvent(
            resident_id=survivor,
            source_resident_id=duplicate,
            action=action.value,
            actor=by,
            reason=reason,
            at=self.clock.now(),
        )
        uow.session.add(event)
        uow.session.flush()
        return _merge_view(event)

    def history(self, uow: UnitOfWork, resident_id: str) -> list[MergeView]:
        """Every merge and un-merge the resident took part in (as survivor or duplicate), oldest
        first."""
        self._resident(uow, resident_id)
        rows = uow.session.scalars(
            select(MergeEvent)
            .where(or_(MergeEvent.resident_id == resident_id, MergeEvent.source_resident_id == resident_id))
            .order_by(MergeEvent.at, MergeEvent.id)
        )
        return [_merge_view(row) for row in rows]


__all__ = [
    "AUTO_LINK",
    "FIND_MIN",
    "REVIEW_MIN",
    "SURNAME_READINGS",
    "CandidateStatus",
    "CandidateView",
    "Demographics",
    "IdSystem",
    "IdentifierView",
    "Match",
    "MergeAction",
    "MergeView",
    "Mpi",
    "PersonView",
    "check_citizen_id",
    "check_identifier",
    "clean_name",
    "normalise_value",
    "pinyin_key",
    "score",
    "syllables",
    "upgrade_citizen_id",
]
