"""The demo city that ``make run`` serves (``healthcard serve --demo``): Zhengzhou, seeded once.

What a person trying the platform needs to find in it, made through the same services as the
API (the same checks, the same tables) and deterministic for a seed.  One exception, for speed:
past visits are checked by the records service's own checker and then inserted a chunk at a
time (:meth:`Records.import_encounters`), as the service would store them:

* **institutions of every level** (省 市 县 乡 村) around the card centre's demo organisation:
  河南省人民医院, 郑州市中心医院, 郑州市中原区人民医院, 中牟县人民医院, a community health
  centre, a township health centre, a village clinic, the city CDC and a county NCMS office;
* **residents with cards**: plausible people of Zhengzhou (:mod:`healthcard.issuance.seed`)
  written to a batch file and issued by batch issuance (:func:`~healthcard.issuance.batch.
  run_batch`) on simulated chips, then handed over (activated) so terminals accept them;
* **their records**: an archive from what the collection point took (blood group, medical
  alerts, history), allergies, 0–6 outpatient visits of the last two years with common
  diagnoses, labs with normal ranges, prescriptions and fees in fen; children's doses after the
  national schedule with some late or missing, adults' flu shots;
* **staff accounts** of every role, **resident accounts** (the username is the ID number) for a
  child with overdue doses, an adult with a record and an elderly resident, and a **terminal**
  per institution whose SAM image is saved (``<data>/democity/terminals/``) so a demo terminal
  can be driven later.

:func:`ensure` is idempotent: the staff accounts are made last, in one transaction, and mark
the city as complete; when they exist it only reads the logins back.  An interrupted first run
picks up where it stopped (the batch file is kept and batch issuance resumes by its digest;
records are written 200 residents per transaction and a resident whose archive exists is done).

The files live under ``<data>/democity/`` — not ``<data>/demo/``, which ``healthcard demo``
recreates on every run and would take the terminals' SAMs with it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import itertools
import json
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, update

from healthcard.card import image
from healthcard.card.cos import CardState
from healthcard.card.sam import sam_certificate
from healthcard.clock import SHANGHAI, Clock, SystemClock, local_date
from healthcard.errors import Duplicate, InvalidValue
from healthcard.issuance import seed as seeding
from healthcard.issuance.application import Application
from healthcard.issuance.batch import file_digest, run_batch
from healthcard.issuance.cardcentre import CardCentre
from healthcard.issuance.chips import Chip, SimulatedChip, SimulatedChips
from healthcard.issuance.identity import area
from healthcard.issuance.keycentre import KeyCentre, SamRequest, terminal_number
from healthcard.issuance.organisation import PROVINCE_CENTRES, OperatorSpec, Organisation
from healthcard.keys.kek import DEFAULT_MODULE, Kek, open_kek
from healthcard.keys.keystore import KeyStore
from healthcard.platform import records as rec
from healthcard.platform.access import Role
from healthcard.platform.appointments import seed_demo as seed_appointments
from healthcard.platform.household import Households
from healthcard.platform.immunization import GRACE_DAYS, add_months, schedule
from healthcard.platform.node import Node
from healthcard.platform.settlement.bank import DEMO_BANK, SimulatedBank
from healthcard.platform.settlement.fees import CATEGORIES as FEE_CATEGORIES
from healthcard.platform.settlement.health_account import HealthAccounts
from healthcard.settings import Settings
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

#: the password of every demo account (printed with the logins; the demo is not production)
PASSWORD = "healthcard-demo"
#: the random seed of the demo people and their records
SEED = 2026
#: who the seeded records say wrote them (audit and ``recorded_by`` columns)
BY = "democity"
#: residents written per transaction
CHUNK = 200
ADMIN_OPERATOR = "demo-admin-41"  # Organisation.ensure_demo(): the Henan card centre's administrator
CLERK_OPERATOR = "demo-clerk-41"
SAM_PIN = "123456"
#: the cardholder PIN of the demo kiosk card (a demo: printed with the logins)
KIOSK_PIN = "888888"
#: Zhengzhou's counties today, and the codes of before the 1983 reform (older residents' ID numbers)
ZHENGZHOU_AREAS: tuple[str, ...] = tuple(
    a for a in seeding.DEFAULT_AREAS if a.startswith("4101") or a in {"412425", "412426", "412428", "412429"}
)


# --- the city --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Institution:
    code: str
    name: str
    area: str
    kind: str
    level: str | None
    terminal: str | None  # the kind of the terminal it gets, None for none


_EXISTING = "410102001"  # 郑州市中原区人民医院: the card centre's demo hospital (ensure_demo)
INSTITUTIONS: tuple[_Institution, ...] = (
    _Institution("410105001", "河南省人民医院", "410105", "hospital", "province", "workstation"),
    _Institution("410102002", "郑州市中心医院", "410102", "hospital", "city", "workstation"),
    _Institution(_EXISTING, "郑州市中原区人民医院", "410102", "hospital", "county", "workstation"),
    _Institution("410122001", "中牟县人民医院", "410122", "hospital", "county", "workstation"),
    _Institution("410102101", "中原区建设路社区卫生服务中心", "410102", "clinic", "township", "vaccination"),
    _Institution("410122101", "中牟县韩寺镇卫生院", "410122", "clinic", "township", "workstation"),
    _Institution("410122201", "中牟县韩寺镇大吴村卫生室", "410122", "clinic", "village", "workstation"),
    _Institution("410100901", "郑州市疾病预防控制中心", "410100", "cdc", "city", "vaccination"),
    _Institution("410122902", "中牟县新型农村合作医疗管理中心", "410122", "ncms-office", None, None),
)
_BY_CODE = {i.code: i for i in INSTITUTIONS}
#: where urban and rural residents go for a visit, with weights
_URBAN_CARE = (("410102101", 30), (_EXISTING, 25), ("410102002", 25), ("410105001", 20))
_RURAL_CARE = (("410122201", 35), ("410122101", 30), ("410122001", 25), ("410102002", 5), ("410105001", 5))
#: 挂号费 by level, fen
_REGISTRATION_FEE = {"province": 1500, "city": 1000, "county": 600, "township": 300, "village": 100}


@dataclass(frozen=True)
class _Staff:
    username: str
    name: str
    role: Role
    institution: str | None
    area: str | None
    what: str


_R = "/v1/residents/{rid}"
STAFF: tuple[_Staff, ...] = (
    _Staff("dr-province", "张建国", Role.CLINICIAN, "410105001", None, f"swipe a card here, then GET {_R}/summary"),
    _Staff("dr-city", "李秀英", Role.CLINICIAN, "410102002", None, f"POST {_R}/break-glass, then GET {_R}/encounters"),
    _Staff("dr-zhongyuan", "王志强", Role.CLINICIAN, _EXISTING, None, "swipe a card, open and record a visit"),
    _Staff("dr-county", "刘红梅", Role.CLINICIAN, "410122001", None, "swipe a card, open and record a visit"),
    _Staff("dr-community", "杨静", Role.CLINICIAN, "410102101", None, f"POST {_R}/immunizations after a swipe"),
    _Staff("dr-township", "陈海峰", Role.CLINICIAN, "410122101", None, "swipe a card, open and record a visit"),
    _Staff("dr-village", "赵德福", Role.CLINICIAN, "410122201", None, "乡村医生: swipe, record, write to the card"),
    _Staff("registration", "孙丽", Role.REGISTRATION, "410102002", None, "GET /v1/residents/lookup?system=card&value=…"),
    _Staff("cashier", "周敏", Role.CASHIER, "410102002", None, "POST /v1/settlements after a swipe (新农合即时结算)"),
    _Staff("cdc-zhengzhou", "吴涛", Role.PUBLIC_HEALTH, "410100901", "4101", "GET /v1/areas/4101/immunizations/due"),
    _Staff("ncms-zhongmou", "郑伟", Role.INSURER, "410122902", None, "GET /v1/ncms/pools/demo/dashboard?year=2026"),
    _Staff("card-admin", "马军", Role.CARD_ADMIN, "41000000001", None, "GET /v1/residents/lookup?system=card&value=…"),
    _Staff("auditor", "胡玲", Role.AUDITOR, None, None, "GET /v1/audit/verify"),
    _Staff("admin", "高峰", Role.ADMIN, None, None, "GET /v1/mpi/queue"),
    _Staff(DEMO_BANK, "演示银行", Role.BANK, None, None, f"POST /v1/banks/{DEMO_BANK}/notices (a top-up)"),
)  # fmt: skip
_DOCTOR = {s.institution: s.username for s in STAFF if s.role == Role.CLINICIAN}


# --- what ensure() answers -------------------------------------------------------------------
@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str
    who: str  # name and institution (or the resident's age)
    what: str  # what to try with it
    kind: str = "staff"  # staff | child | adult | elder (the demo residents)
    resident_id: str | None = None


@dataclass(frozen=True)
class DemoTerminal:
    terminal_id: str  # the SAM certificate's subject
    institution_code: str
    institution_name: str
    sam_image: Path  # sealed with the image passphrase; SAM PIN SAM_PIN


@dataclass(frozen=True)
class DemoKiosk:
    """The demo hospital's self-service kiosk (自助机): its SAM (a terminal of kind ``kiosk``, and
    the card centre's operator of role ``kiosk`` under the same id), a resident's card issued
    **with** a cardholder PIN for its card slot, and an approved application to issue there."""

    terminal_id: str
    institution_code: str
    institution_name: str
    sam_image: Path
    card_image: Path  # the kiosk resident's card (PIN :data:`KIOSK_PIN`)
    card_number: str
    name: str
    pin: str
    applicant_id_number: str  # self-service issuance: the ID number and name to type at /kiosk/issue
    applicant_name: str
    applicant_status: str  # APPROVED until the card is issued at the kiosk (then ISSUED)


@dataclass(frozen=True)
class Logins:
    password: str
    rows: tuple[Login, ...]
    terminals: tuple[DemoTerminal, ...] = ()
    residents: int = 0  # residents the platform holds
    folder: Path | None = None  # the demo city's files
    kiosk: DemoKiosk | None = None

    def resident(self) -> Login | None:
        """The adult resident with a record (the example of :func:`print_logins`)."""
        return next((r for r in self.rows if r.kind == "adult"), None)


# --- set-up ----------------------------------------------------------------------------------
@dataclass
class _City:
    """What the seeding works with: the card centre and the platform node on one database.

    Wired here rather than by :func:`healthcard.bootstrap.bootstrap` (the platform layer does
    not import the composition root): the node trusts the key centre's roots directly, and its
    token secret is a throw-away one (the seeding issues no tokens)."""

    db: Database
    clock: Clock
    cards: CardCentre
    node: Node

    @classmethod
    def wire(cls, settings: Settings, clock: Clock, centre: KeyCentre) -> _City:
        db = Database(settings.db_url)
        db.require_current()
        node = Node(db, clock, token_secret=secrets.token_bytes(32), trust=centre.trust_store())
        return cls(db, clock, CardCentre(db, clock, lambda: centre), node)


def _default_kek(settings: Settings) -> Kek:
    """The key store's KEK for the demo: the configured one, with the demo passphrase when none
    is set (the demo city is a demo; say HEALTHCARD_KEYSTORE_PASSPHRASE for another)."""
    if settings.kek == "pkcs11":
        return open_kek(
            "pkcs11",
            module=os.environ.get("HEALTHCARD_PKCS11_MODULE", DEFAULT_MODULE),
            token=os.environ.get("HEALTHCARD_PKCS11_TOKEN", "healthcard"),
            pin=os.environ.get("HEALTHCARD_PKCS11_PIN"),
        )
    return open_kek(
        "passphrase", passphrase=os.environ.get("HEALTHCARD_KEYSTORE_PASSPHRASE") or image.DEMO_PASSPHRASE
    )


def _key_centre(settings: Settings, kek: Kek, clock: Clock) -> KeyCentre:
    """The key store (made on first use), national keys from a demo ceremony, the province keys
    of the card centres — what ``healthcard demo seed`` sets up."""
    centre = KeyCentre(KeyStore.open_or_create(settings.keystore_path, kek, clock), clock)
    centre.ensure_demo_keys(PROVINCE_CENTRES)
    return centre


def _write_trust(settings: Settings, centre: KeyCentre) -> None:
    """The national roots (public keys) the platform checks SAM certificates against."""
    text = json.dumps(centre.trust_store().to_dict(), indent=1)
    path = settings.trust_path
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _organisation(db: Database) -> None:
    org = Organisation(db)
    org.ensure_demo()
    for staff in STAFF:  # the card centre authorises its administrators' accounts as its operators
        if staff.role == Role.CARD_ADMIN and staff.institution and not org.has_operator(staff.username):
            org.add_operator(OperatorSpec(staff.username, staff.name, staff.role.value, staff.institution))
    for inst in INSTITUTIONS:
        if inst.code == _EXISTING:
            continue
        if not org.has_institution(inst.code):
            org.add_institution(
                inst.code, name=inst.name, area=inst.area, kind=inst.kind, issues=False, level=inst.level
            )
    with db.uow() as uow:  # ensure_demo() makes its hospital without a level: a district hospital
        uow.session.execute(
            update(t.Institution)
            .where(t.Institution.code == _EXISTING, t.Institution.level.is_(None))
            .values(level="county")
        )
        uow.commit()


# --- the people ------------------------------------------------------------------------------
def _months(born: dt.date, today: dt.date) -> int:
    return (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)


def _pick(
    stream: Iterator[Application], taken: list[Application], fits: Callable[[Application], bool]
) -> Application:
    """The first of ``taken`` that fits (removed from it), else the next of ``stream`` that does."""
    for n, app in enumerate(taken):
        if fits(app):
            return taken.pop(n)
    for app in stream:
        if fits(app):
            return app
    raise InvalidValue("residents", "the generator found nobody of the age the demo needs")


def _people(count: int, rng: random.Random, today: dt.date) -> list[Application]:
    """``count`` residents of Zhengzhou; the first three are the demo child (8–36 months), the
    demo adult (45–65, hypertensive, allergic to penicillin) and the demo elder (68+)."""
    # one generator call (ID numbers are unique within a call), longer than needed, read lazily
    stream = seeding.generate_applications(count + 5000, rng=rng, today=today, areas=ZHENGZHOU_AREAS)
    others = list(itertools.islice(stream, count))
    child = _pick(stream, others, lambda a: 8 <= _months(a.birth_date, today) <= 36)
    adult = _pick(stream, others, lambda a: 45 * 12 <= _months(a.birth_date, today) < 66 * 12)
    elder = _pick(stream, others, lambda a: _months(a.birth_date, today) >= 68 * 12)
    allergies = (
        adult.allergies if any(a == "青霉素" for a, _ in adult.allergies) else [("青霉素", "皮疹、呼吸困难")]
    )
    adult = replace(
        adult, other_alert="高血压", allergies=allergies[:2], abo=adult.abo or 1, rh=adult.rh or "1"
    )
    return [child, adult, elder, *others][:count]


class _Tray(SimulatedChips):
    """Simulated chips that keep only the cards of ``wanted`` card numbers (the demo residents'
    images are saved; a thousand card trees are not held in memory)."""

    def __init__(self, wanted: set[str]) -> None:
        super().__init__(keep=True)
        self.wanted = wanted
        self.cards: dict[str, CardState] = {}

    def deliver(self, chip: Chip, card_number: str) -> None:
        assert isinstance(chip, SimulatedChip)
        if card_number in self.wanted:
            self.cards[card_number] = chip.state
            self.delivered[chip.serial] = chip.state


# --- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Lab:
    kind: str  # lab | exam
    code: str
    name: str
    unit: str
    low: float | None
    high: float | None
    mean: float  # of the value in this illness
    sd: float
    digits: int = 1
    text: str | None = None  # a qualitative result instead of a number


@dataclass(frozen=True)
class _Drug:
    drug: str
    dose: str
    unit: str
    route: str  # CV06.00.102: 01 口服, 06 局部 (the platform checks two digits)
    frequency: str
    days: int
    avoid: str | None = None  # the allergen that rules it out
    fen: int = 2000  # what the course costs


@dataclass(frozen=True)
class _Illness:
    code: str  # ICD-10
    department: str
    ages: tuple[int, int]  # years
    weight: float
    drugs: tuple[tuple[_Drug, ...], ...]  # per slot, the options in order of preference
    child_drugs: tuple[tuple[_Drug, ...], ...] = ()
    labs: tuple[_Lab, ...] = ()
    lab_chance: float = 0.5


_WBC = _Lab("lab", "WBC", "白细胞计数", "10^9/L", 3.5, 9.5, 6.4, 1.3)
_WBC_HIGH = replace(_WBC, mean=12.8, sd=2.0)
_CRP = _Lab("lab", "CRP", "C反应蛋白", "mg/L", 0.0, 10.0, 38.0, 15.0)
_AMOXICILLIN = _Drug("阿莫西林胶囊", "0.5", "g", "01", "tid", 5, avoid="青霉素", fen=1850)
_AZITHROMYCIN = _Drug("阿奇霉素片", "0.25", "g", "01", "qd", 3, fen=2600)
_CEFACLOR = _Drug("头孢克洛胶囊", "0.25", "g", "01", "tid", 7, avoid="头孢类", fen=4200)
_IBUPROFEN = _Drug("布洛芬缓释胶囊", "0.3", "g", "01", "bid", 5, avoid="阿司匹林", fen=1200)
_PARACETAMOL = _Drug("对乙酰氨基酚片", "0.5", "g", "01", "tid", 3, fen=650)
ILLNESSES: tuple[_Illness, ...] = (
    _Illness("J06.9", "内科", (0, 100), 6.0,
             ((_PARACETAMOL,), (_Drug("连花清瘟胶囊", "1.4", "g", "01", "tid", 5, fen=2850),)),
             ((_Drug("小儿氨酚黄那敏颗粒", "1", "袋", "01", "tid", 3, fen=1500),),), (_WBC,), 0.4),
    _Illness("J20.9", "呼吸内科", (0, 100), 3.0,
             ((_Drug("盐酸氨溴索片", "30", "mg", "01", "tid", 5, fen=1600),), (_AMOXICILLIN, _AZITHROMYCIN)),
             ((_Drug("氨溴索口服溶液", "5", "ml", "01", "tid", 5, fen=1900),),), (_WBC,), 0.5),
    _Illness("J18.9", "呼吸内科", (0, 100), 1.0,
             ((_CEFACLOR, _AZITHROMYCIN),), (),
             (_WBC_HIGH, _CRP, _Lab("exam", "CXR", "胸部X线", "", None, None, 0, 0, text="右下肺片状阴影")), 1.0),
    _Illness("K29.7", "消化内科", (15, 100), 3.0,
             ((_Drug("奥美拉唑肠溶胶囊", "20", "mg", "01", "bid", 14, fen=3200),),
              (_Drug("铝碳酸镁咀嚼片", "1", "g", "01", "tid", 14, fen=2400),)),
             (), (_Lab("exam", "UBT", "C13尿素呼气试验", "", None, None, 0, 0, text="阴性"),), 0.4),
    _Illness("K52.9", "消化内科", (0, 100), 2.0,
             ((_Drug("蒙脱石散", "3", "g", "01", "tid", 3, fen=1800),),), (), (), 0.0),
    _Illness("M54.5", "骨科", (25, 100), 2.0,
             ((_IBUPROFEN, _Drug("双氯芬酸二乙胺乳胶剂", "2", "g", "06", "tid", 7, fen=2300)),), (),
             (_Lab("exam", "LSXR", "腰椎X线", "", None, None, 0, 0, text="腰椎退行性变"),), 0.3),
    _Illness("N39.0", "泌尿外科", (15, 100), 1.5,
             ((_Drug("左氧氟沙星片", "0.5", "g", "01", "qd", 7, fen=2700),),), (),
             (_Lab("lab", "U-WBC", "尿白细胞", "/μL", 0.0, 25.0, 160.0, 60.0, digits=0),), 0.9),
    _Illness("H10.9", "眼科", (0, 100), 1.5,
             ((_Drug("左氧氟沙星滴眼液", "1", "滴", "06", "qid", 7, fen=1700),),), (), (), 0.0),
)  # fmt: skip
_HYPERTENSION = _Illness(
    "I10", "心血管内科", (35, 120), 0.0,
    ((_Drug("苯磺酸氨氯地平片", "5", "mg", "01", "qd", 30, fen=3600),
      _Drug("缬沙坦胶囊", "80", "mg", "01", "qd", 30, fen=4500)),),
    (), (_Lab("exam", "SBP", "收缩压", "mmHg", 90, 139, 152, 10, 0), _Lab("exam", "DBP", "舒张压", "mmHg", 60, 89, 94, 7, 0)),
    1.0,
)  # fmt: skip
_DIABETES = _Illness(
    "E11.9", "内分泌科", (30, 120), 0.0,
    ((_Drug("盐酸二甲双胍片", "0.5", "g", "01", "tid", 30, fen=2100),), (_Drug("格列美脲片", "2", "mg", "01", "qd", 30, fen=3900),)),
    (), (_Lab("lab", "GLU", "空腹血糖", "mmol/L", 3.9, 6.1, 8.3, 1.4), _Lab("lab", "HbA1c", "糖化血红蛋白", "%", 4.0, 6.0, 7.4, 0.7)),
    1.0,
)  # fmt: skip
_LIPIDS = _Lab("lab", "TC", "总胆固醇", "mmol/L", 2.8, 5.2, 6.0, 0.5)
_STATIN = _Drug("阿托伐他汀钙片", "20", "mg", "01", "qn", 30, fen=5200)
_HISTORY = {
    "heart_disease": "冠心病",
    "cerebrovascular": "脑梗死",
    "asthma": "支气管哮喘",
    "epilepsy": "癫痫",
}
_FAMILY = ("高血压", "糖尿病", "冠心病", "脑卒中", "恶性肿瘤")


@dataclass
class _Person:
    """One demo resident as the records are made for them."""

    row: int  # the batch row: 1 the demo child, 2 the demo adult, 3 the demo elder
    resident_id: str
    card_number: str
    app: Application
    today: dt.date
    rng: random.Random = field(repr=False)

    @property
    def age(self) -> int:
        return _months(self.app.birth_date, self.today) // 12

    @functools.cached_property
    def home(self) -> str:
        """The county the resident lives in (their address names it), else the city."""
        text = self.app.addresses[0][1] if self.app.addresses else ""
        for code, name in _county_names():
            if name in text:
                return code
        return self.app.city_code

    @property
    def rural(self) -> bool:
        return self.home == "410122" or self.home[4] == "8"

    @property
    def hypertensive(self) -> bool:
        return self.app.other_alert == "高血压"

    @property
    def diabetic(self) -> bool:
        return bool(self.app.diabetes)


_COUNTY_NAMES: list[tuple[str, str]] = []


def _county_names() -> list[tuple[str, str]]:
    if not _COUNTY_NAMES:
        for code in ZHENGZHOU_AREAS:
            found = area(code)
            if found is not None and found.valid_in(2000) and code != "410100":
                _COUNTY_NAMES.append((code, found.name))
    return _COUNTY_NAMES


def _choose(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def _value(rng: random.Random, lab: _Lab) -> str:
    if lab.text is not None:
        return lab.text
    value = max(0.0, rng.gauss(lab.mean, lab.sd))
    return f"{value:.{lab.digits}f}"


def _observations(rng: random.Random, labs: Sequence[_Lab], normal: bool) -> list[rec.ObservationIn]:
    out = []
    for lab in labs:
        used = (
            replace(lab, mean=(lab.low + lab.high) / 2, sd=(lab.high - lab.low) / 8)
            if normal and lab.low is not None and lab.high is not None
            else lab
        )
        out.append(
            rec.ObservationIn(lab.kind, lab.code, lab.name, _value(rng, used), lab.unit, lab.low, lab.high)
        )
    return out


def _drugs(rng: random.Random, slots: Sequence[Sequence[_Drug]], allergies: set[str]) -> list[_Drug]:
    out = []
    for options in slots:
        fits = [d for d in options if d.avoid not in allergies]
        if fits and rng.random() < 0.9:
            out.append(fits[0])
    return out


def _illness(person: _Person) -> _Illness:
    rng, age = person.rng, person.age
    choices = [i for i in ILLNESSES if i.ages[0] <= age <= i.ages[1]]
    weights = [i.weight for i in choices]
    if person.hypertensive or (age >= 50 and rng.random() < 0.2):
        choices.append(_HYPERTENSION)
        weights.append(6.0 if person.hypertensive else 2.0)
    if person.diabetic:
        choices.append(_DIABETES)
        weights.append(6.0)
    return rng.choices(choices, weights=weights)[0]


def _visit(person: _Person, n: int, illness: _Illness, days_ago: int) -> rec.EncounterIn:
    rng = person.rng
    code = _choose(rng, _RURAL_CARE if person.rural else _URBAN_CARE)
    inst = _BY_CODE[code]
    department = illness.department
    if inst.level in ("township", "village"):
        department = "全科"
    elif person.age < 14 and illness.department in ("内科", "呼吸内科", "消化内科"):
        department = "儿科"
    day = person.today - dt.timedelta(days=days_ago)
    started = dt.datetime(
        day.year, day.month, day.day, rng.randrange(8, 17), rng.randrange(60), tzinfo=SHANGHAI
    )
    ended = started + dt.timedelta(minutes=rng.randrange(8, 45))
    allergies = {a for a, _ in person.app.allergies}
    slots = illness.child_drugs if person.age < 14 and illness.child_drugs else illness.drugs
    drugs = _drugs(rng, slots, allergies)
    diagnoses = [rec.DiagnosisIn(illness.code, primary=True)]
    labs: list[_Lab] = list(illness.labs) if rng.random() < illness.lab_chance else []
    if illness is _HYPERTENSION and person.age >= 50 and rng.random() < 0.35:
        diagnoses.append(rec.DiagnosisIn("E78.5"))
        labs.append(_LIPIDS)
        drugs.append(_STATIN)
    observations = _observations(rng, labs, normal=False)
    if illness is _HYPERTENSION and rng.random() < 0.3:  # controlled today
        observations = _observations(rng, labs, normal=True)
    level = inst.level or "county"

    # fee categories as a settlement writes them (settlement/fees.py): the consultation and
    # registration under 诊疗费, drugs 西药费, labs 化验费, exams 检查费
    def fee(category: str, fen: int) -> rec.FeeLine:
        return rec.FeeLine(FEE_CATEGORIES[category], category, fen)

    fees = [fee("6", _REGISTRATION_FEE[level])]
    if drugs:
        fees.append(fee("3", sum(d.fen for d in drugs) + rng.randrange(0, 500)))
    measured = [lab for lab in labs if lab.code not in ("SBP", "DBP")]
    for category, kind, each in (("5", "lab", 3500), ("8", "exam", 9000)):
        total = sum(each for lab in measured if lab.kind == kind)
        if total:
            fees.append(fee(category, total))
    payment = person.app.payment_methods[0] if person.app.payment_methods else None
    return rec.EncounterIn(
        institution_code=code,
        kind=rec.EncounterKind.OUTPATIENT,
        department=department,
        clinician=_DOCTOR.get(code),
        started_at=started,
        ended_at=ended,
        carrier="card",
        card_number=person.card_number,
        payment_method=payment,
        diagnoses=tuple(diagnoses),
        observations=tuple(observations),
        prescriptions=tuple(
            rec.PrescriptionIn(d.drug, d.dose, d.unit, d.route, d.frequency, d.days) for d in drugs
        ),
        fees=tuple(fees),
        upload_key=f"demo-{person.card_number}-{n}",
    )


def _visits(person: _Person) -> list[rec.EncounterIn]:
    """0–6 visits of the last two years (more for the old and the chronically ill); the demo
    adult has five, the last a check-up for hypertension."""
    rng, age = person.rng, person.age
    lived = (person.today - person.app.birth_date).days
    if lived < 30:
        return []
    if person.row in (1, 2):  # the demo child has been ill twice, the demo adult five times
        count = 2 if person.row == 1 else 5
    elif age >= 60 or person.hypertensive or person.diabetic:
        count = rng.choice((1, 2, 3, 3, 4, 5, 6))
    else:
        count = rng.choice((0, 0, 1, 1, 1, 2, 2, 3, 4))
    span = min(730, lived - 1)
    days = sorted(rng.sample(range(1, span + 1), min(count, span)), reverse=True)
    out = []
    for n, days_ago in enumerate(days):
        illness = _illness(person)
        if person.row == 2 and n == len(days) - 1:
            illness = _HYPERTENSION
        out.append(_visit(person, n, illness, days_ago))
    return out


@dataclass(frozen=True)
class _Dose:
    vaccine: str
    dose: int
    given_on: dt.date
    institution: str


def _child_doses(person: _Person) -> list[_Dose]:
    """The national schedule, mostly on time, some late, a few missing; the demo child missed
    the last visit it was due for (so its plan shows overdue doses)."""
    rng, born, today = person.rng, person.app.birth_date, person.today
    clinic = "410122101" if person.rural else "410102101"
    birth_hospital = "410122001" if person.rural else "410102002"
    skipped: set[int] = set()
    if person.row == 1:
        past = [
            d.months for d in schedule() if add_months(born, d.months) + dt.timedelta(days=GRACE_DAYS) < today
        ]
        skipped = {max(past)} if past else set()
    out = []
    for scheduled in schedule():
        if scheduled.months in skipped or (person.row != 1 and rng.random() < 0.05):
            continue
        due = add_months(born, scheduled.months)
        delay = rng.randrange(31, 120) if rng.random() < 0.12 else rng.randrange(0, 14)
        given = due + dt.timedelta(days=0 if scheduled.months == 0 else delay)
        if given > today:
            continue
        where = birth_hospital if scheduled.months == 0 else clinic
        out.append(_Dose(scheduled.code, scheduled.dose, given, where))
    return out


def _adult_doses(person: _Person) -> list[_Dose]:
    """Flu vaccine (2601) in the autumns of the last two years, more often for the old; the
    23-valent pneumococcal vaccine (2701) for some over 65."""
    rng, today, age = person.rng, person.today, person.age
    clinic = "410122101" if person.rural else "410102101"
    chance = 1.0 if person.row == 3 else (0.45 if age >= 60 else 0.15)
    season = today.year if today >= dt.date(today.year, 10, 1) else today.year - 1
    out: list[_Dose] = []
    for year in (season - 1, season):
        day = dt.date(year, 10, 1) + dt.timedelta(days=rng.randrange(61))
        if rng.random() < chance and person.app.birth_date < day <= today:
            out.append(_Dose("2601", len(out) + 1, day, clinic))
    if age >= 65 and rng.random() < (1.0 if person.row == 3 else 0.15):
        out.append(_Dose("2701", 1, today - dt.timedelta(days=rng.randrange(30, 1000)), clinic))
    return out


def _severity(reaction: str) -> str:
    if any(word in reaction for word in ("休克", "呼吸困难", "喉头水肿")):
        return "severe"
    return "moderate" if "荨麻疹" in reaction else "mild"


def _history(person: _Person) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    rng, app = person.rng, person.app
    history = []
    since = rng.randint(max(app.birth_date.year, person.today.year - 15), person.today.year)
    if person.hypertensive:
        history.append({"type": "疾病", "name": "高血压", "since": str(since)})
    if person.diabetic:
        history.append({"type": "疾病", "name": "2型糖尿病", "since": str(since)})
    for flag, name in _HISTORY.items():
        if getattr(app, flag):
            history.append({"type": "疾病", "name": name, "since": str(since)})
    if person.age >= 20 and rng.random() < 0.08:
        year = min(person.today.year, app.birth_date.year + rng.randrange(10, 20))
        history.append({"type": "手术", "name": "阑尾切除术", "since": str(year)})
    family = []
    for relation in ("父亲", "母亲"):
        if rng.random() < 0.25:
            family.append({"relation": relation, "condition": rng.choice(_FAMILY)})
    return history, family


def _write_person(node: Node, uow: UnitOfWork, person: _Person) -> list[rec.EncounterIn]:
    """Everything the demo holds about one resident, through the services; the visits are
    returned for :meth:`Records.import_encounters`."""
    app = person.app
    node.mpi.ensure_person(uow, resident_id=person.resident_id, area_code=person.home)
    if app.ncms_number:
        with contextlib.suppress(Duplicate):  # a number drawn twice: the second goes without
            node.mpi.add_identifier(uow, person.resident_id, "ncms", app.ncms_number)
    history, family = _history(person)

    def archive(number: str | None) -> None:
        node.records.put_archive(
            uow,
            person.resident_id,
            by=BY,
            abo=app.abo,
            rh=app.rh,
            alerts=app.flags,
            other_alert=app.other_alert or None,
            psychiatric=app.psychiatric,
            history=history,
            family_history=family,
            archive_number=number,
        )

    try:
        archive(app.health_record_number or None)
    except Duplicate:  # a drawn archive number twice: the archive without it
        archive(None)
    for allergen, reaction in app.allergies:
        node.records.add_allergy(
            uow, person.resident_id, allergen=allergen, reaction=reaction, severity=_severity(reaction), by=BY
        )
    visits = _visits(person)
    if any(v.institution_code == "410102002" for v in visits) and person.rng.random() < 0.4:
        # 一院一卡: the hospital's own old visit card resolves to the resident too
        with contextlib.suppress(Duplicate):
            number = f"ZX{person.rng.randrange(10**8):08d}"
            node.mpi.add_identifier(uow, person.resident_id, "visit-card", number, "410102002")
    doses = _child_doses(person) if person.age < 7 else _adult_doses(person) if person.age >= 18 else []
    for d in doses:
        node.immunizations.record(
            uow,
            resident_id=person.resident_id,
            vaccine=d.vaccine,
            dose=d.dose,
            given_on=d.given_on,
            lot=f"{d.given_on.year}{person.rng.randrange(10**6):06d}",
            institution_code=d.institution,
            by=BY,
        )
    return visits


def _records(app: _City, batch_id: str, seed: int, say: Callable[[str], None]) -> int:
    """Records for every resident of the batch without an archive yet, ``CHUNK`` a transaction."""
    node = app.node
    today = local_date(app.clock)
    with app.db.uow() as uow:
        rows = uow.session.execute(
            select(t.Application.batch_row, t.Application.data, t.Card.card_number, t.Card.resident_id)
            .join(t.Card, t.Card.application_number == t.Application.number)
            .where(t.Application.batch_id == batch_id, t.Card.status.in_(t.LIVE_CARD))
            .order_by(t.Application.batch_row)
        ).all()
        done = set(uow.session.scalars(select(t.HealthArchive.resident_id)))
    todo = [r for r in rows if r.resident_id not in done]
    written = 0
    for start in range(0, len(todo), CHUNK):
        with app.db.uow() as uow:
            visits: list[tuple[str, rec.EncounterIn]] = []
            for row in todo[start : start + CHUNK]:
                person = _Person(
                    row.batch_row,
                    row.resident_id,
                    row.card_number,
                    Application.from_json(row.data),
                    today,
                    random.Random(f"{seed}/{row.card_number}"),
                )
                visits += [(person.resident_id, v) for v in _write_person(node, uow, person)]
            node.records.import_encounters(uow, visits)
            uow.commit()
        written += len(todo[start : start + CHUNK])
        say(f"records: {written}/{len(todo)} residents")
    return written


# --- terminals -------------------------------------------------------------------------------
def _terminals(app: _City, centre: Callable[[], KeyCentre], folder: Path, sealer: image.Sealer) -> None:
    """A terminal per institution: its SAM from the key centre (saved), registered by the SAM's
    certificate.  A SAM image already saved is registered again (re-registering is a no-op)."""
    (folder / "terminals").mkdir(parents=True, exist_ok=True)
    with app.db.uow() as uow:
        for n, inst in enumerate(INSTITUTIONS, start=1):
            if inst.terminal is None:
                continue
            path = folder / "terminals" / f"{inst.code}.sam"
            if path.exists():
                sam = image.load(path, sealer)
            else:
                request = SamRequest(
                    bytes.fromhex(f"53414D{n:010X}"), terminal_number(f"410100{n:06d}"), pin=SAM_PIN
                )
                sam = centre().sam(request)
                image.save(sam, path, sealer)
            app.node.terminals.register(
                uow, certificate=sam_certificate(sam), institution_code=inst.code, kind=inst.terminal
            )
        uow.commit()


# --- the self-service kiosk ------------------------------------------------------------------
_KIOSK_NAME = "中原区人民医院自助机"


def _kiosk_people(app: _City, seed: int) -> Iterator[Application]:
    """Adults of Zhengzhou (25–59) who have neither a card nor an application yet, in the order
    of the seed: the kiosk resident first, then the applicant."""
    today = local_date(app.clock)
    stream = seeding.generate_applications(
        500, rng=random.Random(f"{seed}/kiosk"), today=today, areas=ZHENGZHOU_AREAS
    )
    for person in stream:
        if not 25 * 12 <= _months(person.birth_date, today) < 60 * 12:
            continue
        with app.db.uow() as uow:
            taken = uow.session.scalar(
                select(func.count())
                .select_from(t.Application)
                .where(t.Application.card_number == person.card_number)
            )
        if not taken:
            yield person


def _kiosk(
    app: _City, centre: Callable[[], KeyCentre], folder: Path, sealer: image.Sealer, seed: int
) -> bool:
    """The demo hospital's self-service kiosk, once (``<data>/democity/kiosk/kiosk.json`` marks
    it done; returns whether it was made now):

    * a SAM registered as a terminal of kind ``kiosk`` at 郑州市中原区人民医院, and the card
      centre's operator of role ``kiosk`` under the terminal's id (self-service issuance);
    * a resident whose card the card centre issued **with** the cardholder PIN
      :data:`KIOSK_PIN`, with a record, insured — the card image for the kiosk's slot;
    * an approved application of another resident, for self-service issuance at ``/kiosk/issue``.

    An interrupted run leaves at most a resident the next run does not use (it takes the next)."""
    mark = folder / "kiosk" / "kiosk.json"
    if mark.exists():
        return False
    (folder / "kiosk").mkdir(parents=True, exist_ok=True)
    path = folder / "terminals" / f"{_EXISTING}-kiosk.sam"
    if path.exists():
        sam = image.load(path, sealer)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        request = SamRequest(bytes.fromhex("53414D00000004B1"), terminal_number("410100000901"), pin=SAM_PIN)
        sam = centre().sam(request)
        image.save(sam, path, sealer)
    with app.db.uow() as uow:
        terminal = app.node.terminals.register(
            uow, certificate=sam_certificate(sam), institution_code=_EXISTING, kind="kiosk"
        )
        uow.commit()
    org = Organisation(app.db)
    if not org.has_operator(terminal.id):  # the card centre lets the kiosk issue and hand over
        org.add_operator(OperatorSpec(terminal.id, _KIOSK_NAME, "kiosk", _EXISTING))
    people = _kiosk_people(app, seed)
    holder, applicant = next(people), next(people)
    cards = app.cards
    submitted = cards.submit(CLERK_OPERATOR, holder, collection_point="410102-01")
    cards.approve(ADMIN_OPERATOR, submitted.number)
    chips = SimulatedChips()
    card = cards.issue(ADMIN_OPERATOR, submitted.number, chips, pin=KIOSK_PIN)
    cards.activate(CLERK_OPERATOR, card.card_number)
    person = _Person(
        4,
        card.resident_id,
        card.card_number,
        holder,
        local_date(app.clock),
        random.Random(f"{seed}/kiosk-records"),
    )
    with app.db.uow() as uow:
        app.node.records.import_encounters(
            uow, [(person.resident_id, v) for v in _write_person(app.node, uow, person)]
        )
        app.node.settlement.service.enrol_many(
            uow, [card.resident_id], pool=NCMS_POOL, year=NCMS_YEAR, premium_fen=NCMS_PREMIUM, actor=BY
        )
        uow.commit()
    image.save(
        chips.delivered[bytes.fromhex(card.chip_serial)],
        folder / "kiosk" / f"{card.card_number}.card",
        sealer,
    )
    waiting = cards.submit(CLERK_OPERATOR, applicant, collection_point="410102-01")
    cards.approve(ADMIN_OPERATOR, waiting.number)
    text = json.dumps(
        {
            "terminal_id": terminal.id,
            "card_number": card.card_number,
            "name": holder.name,
            "applicant_id_number": applicant.card_number,
            "applicant_name": applicant.name,
        },
        ensure_ascii=False,
        indent=1,
    )
    tmp = mark.with_name(f".{mark.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, mark)
    return True


def _kiosk_login(uow: UnitOfWork, folder: Path, names: dict[str, str]) -> DemoKiosk | None:
    """The kiosk :func:`_kiosk` made (None before it is made)."""
    mark = folder / "kiosk" / "kiosk.json"
    if not mark.exists():
        return None
    made = json.loads(mark.read_text(encoding="utf-8"))
    applicant = made["applicant_id_number"]
    status = uow.session.scalar(
        select(t.Application.status)
        .where(t.Application.card_number == applicant)
        .order_by(t.Application.submitted_at.desc())
        .limit(1)
    )
    return DemoKiosk(
        made["terminal_id"],
        _EXISTING,
        names.get(_EXISTING, ""),
        folder / "terminals" / f"{_EXISTING}-kiosk.sam",
        folder / "kiosk" / f"{made['card_number']}.card",
        made["card_number"],
        made["name"],
        KIOSK_PIN,
        applicant,
        made["applicant_name"],
        str(status or "none"),
    )


# --- health accounts -------------------------------------------------------------------------
#: what the demo bank's customers paid in when they opened their health accounts (fen)
_OPENING_FEN = (20_000, 30_000, 50_000, 100_000)


def _health_accounts(app: _City, batch_id: str, folder: Path, seed: int) -> int:
    """A health account at the demo bank for the three demo residents and every second other
    resident, each topped up by the simulated bank (booked as its notices are; the bank's
    statement file of the day in ``<data>/democity/bank/``), ``CHUNK`` a transaction.  A
    resident who has an account is done (a resumed run goes on from there)."""
    with app.db.uow() as uow:
        rows = uow.session.execute(
            select(t.Application.batch_row, t.Card.resident_id)
            .join(t.Card, t.Card.application_number == t.Application.number)
            .where(t.Application.batch_id == batch_id, t.Card.status.in_(t.LIVE_CARD))
            .order_by(t.Application.batch_row)
        ).all()
        held = set(uow.session.scalars(select(t.HealthAccount.resident_id)))
        used = int(uow.session.scalar(select(func.count()).select_from(t.BankTransfer)) or 0)
    todo = [rid for row, rid in rows if row is not None and (row <= 3 or row % 2 == 0) and rid not in held]
    if not todo:
        return 0
    rng = random.Random(f"{seed}/health-accounts/{used}")
    bank = SimulatedBank(DEMO_BANK, folder / "bank", app.clock, serial=used)
    accounts = HealthAccounts(app.clock, serials=lambda: rng.randrange(10**12))
    for start in range(0, len(todo), CHUNK):
        with app.db.uow() as uow:
            for rid in todo[start : start + CHUNK]:
                account = accounts.open(uow, [rid], bank=DEMO_BANK)
                accounts.receive(uow, bank.deposit(account.account_number, rng.choice(_OPENING_FEN)), by=BY)
            uow.commit()
        for notice in bank.notices():
            bank.acknowledge(notice.bank_ref, accepted=True)
    bank.statement_file(local_date(app.clock))
    return len(todo)


# --- NCMS enrolment --------------------------------------------------------------------------
#: the demo pool's year (its policy and catalog files) and each resident's premium (fen)
NCMS_POOL, NCMS_YEAR, NCMS_PREMIUM = "demo", 2026, 40_000


def _enrol(app: _City) -> int:
    """参合: every resident insured in the demo pool for 2026, in bulk (those enrolled already
    are skipped, so a resumed run goes on from there)."""
    with app.db.uow() as uow:
        ids = list(
            uow.session.scalars(select(t.Resident.resident_id).where(t.Resident.merged_into.is_(None)))
        )
        done = app.node.settlement.service.enrol_many(
            uow, ids, pool=NCMS_POOL, year=NCMS_YEAR, premium_fen=NCMS_PREMIUM, actor=BY
        )
        uow.commit()
    return done


# --- appointments ------------------------------------------------------------------------------
def _schedules(db: Database, clock: Clock) -> int:
    """Departments, doctors (the demo clinicians among them) and weekly templates of the hospitals
    and township clinics (once), and the sessions of today and the booking window (every start):
    something to book.  Returns the sessions opened by this call."""
    doctors = {code: username for code, username in _DOCTOR.items() if code}
    reports = seed_appointments(db, clock, [(i.code, i.level) for i in INSTITUTIONS], doctors)
    return sum(r.sessions for r in reports)


# --- accounts and logins ---------------------------------------------------------------------
def _complete(uow: UnitOfWork) -> bool:
    names = [s.username for s in STAFF]
    found = uow.session.scalar(
        select(func.count()).select_from(t.Account).where(t.Account.username.in_(names))
    )
    return found == len(names)


def _accounts(app: _City, batch_id: str) -> None:
    """Staff and the three demo residents' accounts, one transaction: the mark of a finished city."""
    node = app.node
    with app.db.uow() as uow:
        residents = uow.session.execute(
            select(t.Card.card_number, t.Card.resident_id)
            .join(t.Application, t.Card.application_number == t.Application.number)
            .where(
                t.Application.batch_id == batch_id,
                t.Application.batch_row <= 3,
                t.Card.status.in_(t.LIVE_CARD),
            )
            .order_by(t.Application.batch_row)
        ).all()
        for card_number, resident_id in residents:
            if uow.session.get(t.Account, card_number) is None:
                name = uow.session.get(t.Resident, resident_id)
                node.accounts.create(
                    uow,
                    username=card_number,
                    name=name.name if name is not None else card_number,
                    role=Role.RESIDENT,
                    password=PASSWORD,
                    resident_id=resident_id,
                )
        for staff in STAFF:
            if uow.session.get(t.Account, staff.username) is None:
                node.accounts.create(
                    uow,
                    username=staff.username,
                    name=staff.name,
                    role=staff.role,
                    password=PASSWORD,
                    institution_code=staff.institution,
                    area_code=staff.area,
                )
        uow.commit()


def _logins(db: Database, clock: Clock, folder: Path) -> Logins:
    today = local_date(clock)
    rows: list[Login] = []
    with db.uow() as uow:
        names = {
            code: name for code, name in uow.session.execute(select(t.Institution.code, t.Institution.name))
        }
        residents = uow.session.execute(
            select(t.Account.username, t.Account.resident_id, t.Resident.name, t.Resident.birth_date)
            .join(t.Resident, t.Resident.resident_id == t.Account.resident_id)
            .where(t.Account.role == Role.RESIDENT.value)
            .order_by(t.Account.created_at, t.Account.username)
            .limit(5)
        ).all()
        for staff in STAFF:
            where = names.get(staff.institution or "", "") or (f"area {staff.area}" if staff.area else "")
            rows.append(
                Login(
                    staff.username,
                    PASSWORD,
                    staff.role.value,
                    f"{staff.name} · {where}".strip(" ·"),
                    staff.what,
                )
            )
        people = []
        for username, resident_id, name, born in residents:
            assert resident_id is not None  # joined to the resident
            months = _months(born, today)
            if months < 7 * 12:
                kind, who = "child", f"{name} · child, {months} months"
                what = f"GET {_R}/vaccination-plan (overdue doses)"
            elif months < 68 * 12:
                kind, who = "adult", f"{name} · {months // 12} years"
                what = f"GET {_R}/summary · {_R}/encounters · {_R}/access-log · {_R}/dependants"
            else:
                kind, who = "elder", f"{name} · {months // 12} years"
                what = f"GET {_R}/immunizations · /fhir/Patient/{{rid}}"
            what = what.replace("{rid}", resident_id)
            people.append(Login(username, PASSWORD, Role.RESIDENT.value, who, what, kind, resident_id))
        order = ("child", "adult", "elder")
        rows.extend(sorted(people, key=lambda p: order.index(p.kind)))
        terminals = [
            DemoTerminal(
                row.id,
                row.institution_code,
                names.get(row.institution_code, ""),
                folder / "terminals" / f"{row.institution_code}.sam",
            )
            for row in uow.session.scalars(
                select(t.Terminal)
                .where(
                    t.Terminal.institution_code.in_([i.code for i in INSTITUTIONS]),
                    t.Terminal.kind != "kiosk",
                )
                .order_by(t.Terminal.institution_code)
            )
        ]
        count = int(uow.session.scalar(select(func.count()).select_from(t.Resident)) or 0)
        kiosk = _kiosk_login(uow, folder, names)
    return Logins(PASSWORD, tuple(rows), tuple(terminals), count, folder, kiosk)


def _household(db: Database, clock: Clock, logins: Logins) -> bool:
    """The demo adult is the demo child's parent: a household proxy link (established by the
    card centre on the 户口簿), so the adult's portal shows the child's due and overdue doses.
    Once: a live link of the pair is kept; returns whether one was made."""
    child = next((r for r in logins.rows if r.kind == "child"), None)
    adult = logins.resident()
    if child is None or adult is None or child.resident_id is None or adult.resident_id is None:
        return False
    admin = next(s for s in STAFF if s.role == Role.CARD_ADMIN)
    h = t.HouseholdLink
    with db.uow() as uow:
        standing = uow.session.scalar(
            select(h.id).where(
                h.guardian_id == adult.resident_id,
                h.dependant_id == child.resident_id,
                h.revoked_at.is_(None),
            )
        )
        resident = uow.session.get(t.Resident, child.resident_id)
        if standing is not None or resident is None:
            return False
        Households(clock).establish(
            uow,
            guardian_id=adult.resident_id,
            dependant_id=child.resident_id,
            relation="parent",
            evidence_kind="hukou",
            evidence=f"{resident.area_code or '410102'}{resident.id_number[-6:]}",  # 户号
            by=admin.username,
            institution_code=admin.institution,
        )
        uow.commit()
        return True


# --- the two entry points --------------------------------------------------------------------
def ensure(
    settings: Settings,
    *,
    residents: int = 1000,
    console: Console | None = None,
    kek: Kek | None = None,
    clock: Clock | None = None,
    seed: int = SEED,
) -> Logins:
    """The demo city in ``settings``' database, made on the first call (a minute at most for
    1,000 residents on SQLite); later calls only read the logins back.  ``kek`` opens the key
    store (default: the configured KEK, with the demo passphrase when none is set)."""
    if isinstance(residents, bool) or not isinstance(residents, int) or not 10 <= residents <= 100_000:
        raise InvalidValue("residents", f"{residents!r}: 10 to 100,000 residents")
    out = console or Console(quiet=True)
    clock = clock or SystemClock()
    folder = settings.data_dir / "democity"
    db = Database(settings.db_url)
    try:
        db.upgrade()
        with db.uow() as uow:
            complete = _complete(uow)
    finally:
        db.dispose()
    sealer = image.Sealer(os.environ.get("HEALTHCARD_IMAGE_PASSPHRASE") or image.DEMO_PASSPHRASE)
    if complete and not (folder / "kiosk" / "kiosk.json").exists():  # a city seeded before the kiosk
        centre = _key_centre(settings, kek or _default_kek(settings), clock)
        city = _City.wire(settings, clock, centre)
        try:
            _kiosk(city, lambda: centre, folder, sealer, seed)
        finally:
            city.db.dispose()
    if complete:
        db = Database(settings.db_url)
        try:
            _schedules(db, clock)  # the days move on: open the sessions of today's window
            logins = _logins(db, clock, folder)
            _household(db, clock, logins)  # a city seeded before household links gets its link
            return logins
        finally:
            db.dispose()

    began = time.monotonic()

    def say(text: str) -> None:
        out.print(
            f"[dim]demo city[/dim] {text} [dim]({time.monotonic() - began:.1f} s)[/dim]", highlight=False
        )

    say(f"seeding Zhengzhou with {residents} residents (once; later starts reuse it)")
    centre = _key_centre(settings, kek or _default_kek(settings), clock)
    _write_trust(settings, centre)
    folder.mkdir(parents=True, exist_ok=True)
    app = _City.wire(settings, clock, centre)
    try:
        _organisation(app.db)
        say(f"institutions of every level: {len(INSTITUTIONS) + 1} (with the card centre's hospital)")
        source = folder / f"residents-{seed}-{residents}.csv"
        if not source.exists():  # kept: a re-run after a crash resumes the same batch
            tmp = source.with_name(f".{source.name}.tmp")
            seeding.write_csv(_people(residents, random.Random(f"{seed}/democity"), local_date(clock)), tmp)
            os.replace(tmp, source)
        batch_id = file_digest(source)
        with source.open(encoding="utf-8", newline="") as fh:  # rows 1-3: the demo residents
            wanted = {row["id_number"] for row in itertools.islice(csv.DictReader(fh), 3)}
        tray = _Tray(wanted)
        report = run_batch(app.cards, ADMIN_OPERATOR, source, tray, errors=source.with_suffix(".errors.csv"))
        say(f"cards issued: {report.issued} (earlier: {report.already}, refused: {report.refused})")
        (folder / "cards").mkdir(exist_ok=True)
        for card_number, state in tray.cards.items():
            image.save(state, folder / "cards" / f"{card_number}.card", sealer)
        _activate(app, batch_id)
        say("cards handed over (active)")
        _records(app, batch_id, seed, say)
        _terminals(app, lambda: centre, folder, sealer)
        say("terminals registered (one SAM per institution)")
        opened = _health_accounts(app, batch_id, folder, seed)
        say(f"health accounts opened and topped up at {DEMO_BANK}: {opened}")
        if _kiosk(app, lambda: centre, folder, sealer, seed):
            say(f"self-service kiosk: a terminal, a card with PIN {KIOSK_PIN}, an approved application")
        # after the kiosk's people: every resident insured, the applicant waiting for a card too
        say(f"insured in the NCMS pool {NCMS_POOL} for {NCMS_YEAR}: {_enrol(app)}")
        _accounts(app, batch_id)
        say("accounts made")
        say(f"appointments: {_schedules(app.db, clock)} clinic sessions opened (today and the window)")
        logins = _logins(app.db, clock, folder)
        if _household(app.db, clock, logins):
            say("household link: the demo adult sees the demo child's vaccinations on the portal")
        return logins
    finally:
        app.db.dispose()


def _activate(app: _City, batch_id: str) -> None:
    with app.db.uow() as uow:
        issued = list(
            uow.session.scalars(
                select(t.Card.card_number)
                .join(t.Application, t.Card.application_number == t.Application.number)
                .where(t.Application.batch_id == batch_id, t.Card.status == "ISSUED")
            )
        )
    for card_number in issued:
        app.cards.activate(CLERK_OPERATOR, card_number)


def print_logins(console: Console, logins: Logins, base_url: str) -> None:
    """The logins as a table, the terminals, the URLs and one example with curl."""
    table = Table(
        title=f"演示城市 郑州 · demo city Zhengzhou — {logins.residents} residents · "
        f"the password of every account: {logins.password}",
        title_justify="left",
    )
    table.add_column("username", no_wrap=True)
    table.add_column("role", no_wrap=True)
    table.add_column("who")
    table.add_column("try", overflow="fold")
    for row in logins.rows:
        table.add_row(row.username, row.role, row.who, row.what)
    console.print(table)
    if logins.terminals:
        terminals = Table(title=f"terminals (SAM images, PIN {SAM_PIN})", title_justify="left")
        for column in ("institution", "terminal id", "SAM image"):
            terminals.add_column(column, overflow="fold")
        for term in logins.terminals:
            terminals.add_row(
                f"{term.institution_name} {term.institution_code}", term.terminal_id, str(term.sam_image)
            )
        console.print(terminals)
    kiosk = logins.kiosk
    if kiosk is not None:
        console.print(
            f"自助机 self-service kiosk at {kiosk.institution_name} (terminal {kiosk.terminal_id}, "
            f"SAM {kiosk.sam_image}):\n"
            f"  log in with the card of {kiosk.name} {kiosk.card_number} ({kiosk.card_image}), "
            f"PIN {kiosk.pin}\n"
            f"  issue a card at {base_url}/kiosk/issue: ID number {kiosk.applicant_id_number}, "
            f"name {kiosk.applicant_name} (application {kiosk.applicant_status})",
            highlight=False,
        )
    console.print(f"OpenAPI: {base_url}/docs   FHIR: {base_url}/fhir/Patient/<resident id>", highlight=False)
    console.print(
        f"居民健康网 resident portal: {base_url}/portal — log in with a resident's username (the ID number) "
        f"and the password above",
        highlight=False,
    )
    example = logins.resident()
    if example is not None and example.resident_id is not None:
        login = json.dumps({"username": example.username, "password": example.password})
        console.print("try it (log in as a resident, then read the summary):", highlight=False)
        console.print(
            f"  TOKEN=$(curl -s -X POST {base_url}/v1/auth/token -H 'content-type: application/json' \\\n"
            f"      -d '{login}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
            f'  curl -s {base_url}/v1/residents/{example.resident_id}/summary -H "Authorization: Bearer $TOKEN"',
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


__all__ = [
    "INSTITUTIONS",
    "KIOSK_PIN",
    "PASSWORD",
    "STAFF",
    "DemoKiosk",
    "DemoTerminal",
    "Login",
    "Logins",
    "ensure",
    "print_logins",
]
