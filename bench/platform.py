"""The "## Platform" section of the benchmark page: the swipe lookup over HTTP at city scale.

A swipe (``POST /v1/swipes``, :meth:`healthcard.platform.node.Node.swipe`) is what every card
authentication at a clinic's terminal costs the platform: the card by chip serial, the MPI
survivor, a card-use row, the presence grant, the access check with its audit-chain entry, and
the summary the clinician sees (resident, archive, allergies, immunizations, the 3 newest
outpatient visits with their items).  This module measures it the way a city would load it:

* :class:`Population` makes residents with realistic records (a card each, an archive, 0–2
  allergies, ~3 closed outpatient visits at 2–3 institutions with diagnoses, an observation and
  a prescription each, the vaccinations of children) and loads them with COPY into a scratch
  PostgreSQL database — grown in steps 10k → 100k → 1M so the same run shows whether the lookup
  stays flat (index-bound) as the population grows;
* at each step ``healthcard serve --workers 2`` is started on it and driven by ``wrk`` with a
  Lua script rotating over a few thousand real (card number, chip serial) pairs spread over the
  whole population (:func:`wrk_run`); at the largest step ``pgbench -S`` runs on the same server
  in turns with wrk (:func:`pgbench_run`) for the ratio of our requests to the server's raw
  indexed selects;
* in process, through FastAPI's TestClient: the same swipe on the embedded default (SQLite) and
  on PostgreSQL, and a profile of where one swipe's time goes (SQL round trips timed with
  SQLAlchemy's cursor events, Python by cProfile, grouped by package).

Run only this section with ``.venv/bin/python -m bench --only platform [--quick]`` (``--write
docs/benchmarks.md`` replaces just this section).  wrk comes from ``scripts/bench-up.sh``.
"""

from __future__ import annotations

import contextlib
import cProfile
import datetime as dt
import json
import os
import pstats
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import made_by
from bench.issuance import postgres_problem, scratch_postgres

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SCALES = (10_000, 100_000, 1_000_000)
QUICK_SCALES = (10_000, 100_000)
WORKERS = 2
CONNECTIONS = 16  # wrk -c, and pgbench -c
ROTATION = 4_000  # (card, chip) pairs the Lua script cycles through, spread over the population
TARGET_RPS = 1_500
TARGET_P99_MS = 50.0
CHUNK = 25_000  # residents per COPY round (memory bound; visits interleave within a chunk)
SEED = 2026
SECRET = secrets.token_hex(32)  # HEALTHCARD_TOKEN_SECRET of the servers this run starts

# --- the city -------------------------------------------------------------------------------------
PROVINCE = "41"
ISSUER = "41000000001"  # healthcard.issuance.keycentre.issuer_code("41"): Henan's card centre
OPERATOR = "admin-41"
TERMINAL = "5A4E4A0001BE0C01"  # the bench's terminal (a SAM subject id)
#: Zhengzhou's districts, counties and county-level cities (GB/T 2260) with their
#: community health centre (社区卫生服务中心 / 乡镇卫生院)
DISTRICTS: tuple[tuple[str, str], ...] = (
    ("410102", "中原区"),
    ("410103", "二七区"),
    ("410104", "管城回族区"),
    ("410105", "金水区"),
    ("410106", "上街区"),
    ("410108", "惠济区"),
    ("410122", "中牟县"),
    ("410181", "巩义市"),
    ("410182", "荥阳市"),
    ("410183", "新密市"),
    ("410184", "新郑市"),
    ("410185", "登封市"),
)
AREAS = tuple(code for code, _ in DISTRICTS)
#: (code, name, area, level): the hospitals residents visit besides their community centre
HOSPITALS: tuple[tuple[str, str, str, str], ...] = (
    ("410103H0001", "郑州大学第一附属医院", "410103", "province"),
    ("410105H0002", "河南省人民医院", "410105", "province"),
    ("410102H0003", "郑州市中心医院", "410102", "city"),
    ("410104H0004", "郑州市第一人民医院", "410104", "city"),
    ("410105H0005", "郑州人民医院", "410105", "city"),
    ("410122H0006", "中牟县人民医院", "410122", "county"),
    ("410181H0007", "巩义市人民医院", "410181", "county"),
    ("410182H0008", "荥阳市人民医院", "410182", "county"),
    ("410183H0009", "新密市第一人民医院", "410183", "county"),
    ("410184H0010", "新郑市人民医院", "410184", "county"),
    ("410185H0011", "登封市人民医院", "410185", "county"),
)
TERMINAL_INSTITUTION = HOSPITALS[0][0]


def clinic_of(area: str) -> str:
    return f"{area}C0001"


SURNAMES = ("王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭")
SURNAMES_PY = ("WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "ZHAO", "HUANG", "ZHOU", "WU", "XU", "SUN",
               "MA", "ZHU", "HU", "GUO")  # fmt: skip
GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
         "明", "超", "秀兰", "霞", "平", "刚", "桂英", "子涵", "浩然", "一诺", "梓萱", "宇轩")  # fmt: skip
GIVEN_PY = ("WEI", "FANG", "NA", "XIU YING", "MIN", "JING", "LI", "QIANG", "LEI", "JUN", "YANG", "YONG",
            "YAN", "JIE", "JUAN", "TAO", "MING", "CHAO", "XIU LAN", "XIA", "PING", "GANG", "GUI YING",
            "ZI HAN", "HAO RAN", "YI NUO", "ZI XUAN", "YU XUAN")  # fmt: skip
#: ICD-10 (WHO form) with the Chinese name, weighted towards what an outpatient desk sees
DIAGNOSES = (
    ("J06.9", "急性上呼吸道感染"),
    ("I10", "特发性(原发性)高血压"),
    ("E11.9", "2型糖尿病不伴有并发症"),
    ("J20.9", "急性支气管炎"),
    ("K29.7", "胃炎"),
    ("M54.5", "下背痛"),
    ("R05", "咳嗽"),
    ("J45.9", "哮喘"),
    ("N39.0", "泌尿道感染"),
    ("K21.9", "胃-食管反流病不伴有食管炎"),
    ("I25.1", "动脉硬化性心脏病"),
    ("E78.5", "高脂血症"),
    ("H10.9", "结膜炎"),
    ("L30.9", "皮炎"),
    ("A09", "胃肠炎和结肠炎"),
    ("J02.9", "急性咽炎"),
)
DEPARTMENTS = ("呼吸内科", "心血管内科", "内分泌科", "消化内科", "全科", "儿科", "皮肤科", "眼科")
#: (code, name, value, unit, low, high)
OBSERVATIONS = (
    ("WBC", "白细胞计数", 6.4, "10^9/L", 3.5, 9.5),
    ("GLU", "空腹血糖", 5.6, "mmol/L", 3.9, 6.1),
    ("SBP", "收缩压", 132.0, "mmHg", 90.0, 140.0),
    ("HGB", "血红蛋白", 138.0, "g/L", 115.0, 150.0),
    ("CRP", "C反应蛋白", 4.0, "mg/L", 0.0, 10.0),
)
#: (drug, dose, unit, frequency, days)
DRUGS = (
    ("阿莫西林胶囊", "0.5", "g", "每日3次", 5),
    ("苯磺酸氨氯地平片", "5", "mg", "每日1次", 30),
    ("二甲双胍缓释片", "0.5", "g", "每日2次", 30),
    ("奥美拉唑肠溶胶囊", "20", "mg", "每日1次", 14),
    ("布洛芬缓释胶囊", "0.3", "g", "每日2次", 3),
    ("复方甘草口服溶液", "10", "ml", "每日3次", 5),
)
ALLERGENS = (("青霉素", "皮疹"), ("头孢类", "荨麻疹"), ("磺胺类", "皮疹"), ("海鲜", "瘙痒"), ("花粉", "鼻炎"))
ALERTS = ('{}', '{}', '{}', '{}', '{}', '{}', '{"diabetes": true}', '{"heart_disease": true}',
          '{"asthma": true}', '{"diabetes": true, "heart_disease": true}')  # fmt: skip
FEES = '[{"category": "西药费", "code": "02", "amount_fen": 3650}, {"category": "诊察费", "code": "01", "amount_fen": 1000}]'

#: the columns each table gets, in the order of the row tuples below
COLUMNS: dict[str, tuple[str, ...]] = {
    "residents": ("resident_id", "id_type", "id_number", "name", "sex", "birth_date", "created_at",
                  "area_code", "name_pinyin"),
    "applications": ("number", "resident_id", "card_number", "kind", "status", "province", "submitted_by",
                     "submitted_at", "decided_by", "decided_at", "data"),
    "cards": ("id", "resident_id", "card_number", "chip_serial", "issue_serial", "issuer_code", "province",
              "city_code", "key_version", "algorithm", "profile", "status", "application_number",
              "issued_by", "issue_date", "expiry_date", "created_at", "status_at"),
    "health_archives": ("resident_id", "archive_number", "abo", "rh", "alerts", "other_alert",
                        "psychiatric", "history", "family_history", "created_at", "updated_at"),
    "allergies": ("id", "resident_id", "allergen", "reaction", "severity", "recorded_at", "recorded_by"),
    "encounters": ("id", "resident_id", "institution_code", "kind", "status", "number", "department",
                   "clinician", "category", "card_number", "carrier", "payment_method", "started_at",
                   "ended_at", "card_slot", "fees", "created_at"),
    "diagnoses": ("id", "resident_id", "encounter_id", "code", "name", "primary", "category",
                  "diagnosed_on"),
    "observations": ("id", "resident_id", "encounter_id", "kind", "code", "name", "value", "value_num",
                     "unit", "low", "high", "flag", "category", "observed_at"),
    "prescriptions": ("id", "resident_id", "encounter_id", "drug", "drug_code", "dose", "dose_unit",
                      "route_code", "frequency", "days", "category", "prescribed_at"),
    "immunizations": ("id", "resident_id", "vaccine", "dose", "given_on", "lot", "institution_code",
                      "recorded_at", "recorded_by"),
}  # fmt: skip
#: the columns that hold JSON text in the row tuples (SQLite gets them parsed)
JSON_COLUMNS = {"data", "alerts", "history", "family_history", "fees"}
#: tables whose ``id`` the application's own inserts continue from
SERIAL_TABLES = ("cards", "allergies", "encounters", "diagnoses", "observations", "prescriptions",
                 "immunizations")  # fmt: skip


def resident_id(i: int) -> str:
    """Resident ``i``'s id: 32 hex digits that look random (as ``secrets.token_hex(16)`` makes
    them, so the primary-key index sees random inserts) but are a bijection of ``i``."""
    return f"{(i * 0x9E3779B97F4A7C15F39CC0605CEDC835 + 0x1234567) % (1 << 128):032x}"


def chip_serial(i: int) -> str:
    """Resident ``i``'s chip serial: 16 upper-case hex digits, unique (odd multiplier mod 2⁶⁴)."""
    return f"{(i * 0xD1B54A32D192ED03 + 0x5DEECE66D) % (1 << 64):016X}"


def card_number(i: int) -> str:
    """18 characters, unique: the district, then ``i`` (not a valid ID number; the bench needs none)."""
    return f"{AREAS[i % len(AREAS)]}{i:012d}"


Rows = dict[str, list[str]]  # table → lines of COPY text (tab-separated, \N for NULL, "\n" ended)
NULL = "\\N"


@dataclass
class Population:
    """Residents ``0 … size`` with their records, made in chunks as lines of COPY text
    (``COLUMNS`` order): formatting the text directly is what keeps Python from being the
    bottleneck of a 1,000,000-resident load.

    Rows are deterministic in ``i`` and the chunk they are made in; the ids of the serial
    tables continue across calls, so that the population can grow step by step."""

    now: dt.datetime
    size: int = 0
    next_id: dict[str, int] = field(default_factory=lambda: defaultdict(lambda: 1))

    def __post_init__(self) -> None:
        today = self.now.date()
        #: ``days[k]``: the date ``k`` days before today, ISO (ages up to 90 years, future expiry)
        self.days = [(today - dt.timedelta(days=k)).isoformat() for k in range(-3700, 90 * 365 + 1)]
        self.stamp = self.now.strftime("%Y-%m-%d %H:%M:%S+00")

    def day(self, ago: int) -> str:
        return self.days[ago + 3700]

    def reference_rows(self) -> Rows:
        """Institutions, the card administrator and the bench's terminal (once per database)."""
        institutions = [f"{ISSUER}\t河南省卫生健康委员会\tprovince-centre\t410000\tt\tprovince\n"]
        institutions += [
            f"{code}\t{name}\thospital\t{area}\tf\t{level}\n" for code, name, area, level in HOSPITALS
        ]
        institutions += [
            f"{clinic_of(a)}\t{n}社区卫生服务中心\tclinic\t{a}\tf\ttownship\n" for a, n in DISTRICTS
        ]
        return {
            "institutions": institutions,
            "operators": [f"{OPERATOR}\t卡管员老李\tcard-admin\t{ISSUER}\tt\n"],
            "terminals": [
                f"{TERMINAL}\t{TERMINAL_INSTITUTION}\tworkstation\t04{'00' * 64}\tt\t{self.stamp}\n"
            ],
        }

    def chunk(self, start: int, end: int) -> Rows:
        """The rows of residents ``start … end``, tables in foreign-key order.  A resident's visits
        are emitted round by round over the chunk, so they are spread over the table's pages as
        years of real visits would be (not next to each other)."""
        from healthcard.platform.immunization import schedule

        rand = random.Random(SEED * 1_000_003 + start).random

        def ri(low: int, high: int) -> int:  # randrange(low, high), without its checks
            return low + int(rand() * (high - low))

        def two(n: int) -> tuple[int, int]:  # two different indexes below n
            first = int(rand() * n)
            return first, (first + 1 + int(rand() * (n - 1))) % n

        day, stamp = self.day, self.stamp
        ids = {table: self.next_id[table] for table in SERIAL_TABLES}
        card_id, allergy_id, dose_id = ids["cards"], ids["allergies"], ids["immunizations"]
        doses = [(d.code, d.dose, d.months * 30) for d in schedule()]
        out: Rows = {name: [] for name in COLUMNS}
        residents, applications, cards = out["residents"], out["applications"], out["cards"]
        archives, allergies, immunizations = out["health_archives"], out["allergies"], out["immunizations"]
        visits: list[list[tuple[str, str, str]]] = []  # per resident: (rid, card, institution)
        n_alerts, n_surnames, n_given = len(ALERTS), len(SURNAMES), len(GIVEN)
        for i in range(start, end):
            rid, card, area = resident_id(i), card_number(i), AREAS[i % len(AREAS)]
            child = rand() < 0.08
            age = ri(0, 7 * 365) if child else ri(7 * 365, 90 * 365)
            sn, gn = ri(0, n_surnames), ri(0, n_given)
            residents.append(
                f"{rid}\t01\t{card}\t{SURNAMES[sn]}{GIVEN[gn]}\t{1 + (i & 1)}\t{day(age)}\t{stamp}\t{area}\t"
                f"{SURNAMES_PY[sn]} {GIVEN_PY[gn]}\n"
            )
            number = f"SQ{i:018d}"
            ago = ri(30, 2000)
            issued = f"{day(ago)} 09:00:00+00"
            applications.append(
                f"{number}\t{rid}\t{card}\tNEW\tISSUED\t41\t{OPERATOR}\t{issued}\t{OPERATOR}\t{issued}\t{{}}\n"
            )
            cards.append(
                f"{card_id}\t{rid}\t{card}\t{chip_serial(i)}\t{i:010d}\t{ISSUER}\t41\t410100\t1\tSM4\t"
                f"health-card-32k/1\tACTIVE\t{number}\t{OPERATOR}\t{day(ago)}\t{day(ago - 3652)}\t{issued}\t{issued}\n"
            )
            card_id += 1
            archives.append(
                f"{rid}\t{area}{i:011d}\t{ri(1, 5)}\t1\t{ALERTS[ri(0, n_alerts)]}\t\tf\t[]\t[]\t{issued}\t{issued}\n"
            )
            r = rand()
            if r > 0.70:
                picked = two(len(ALLERGENS))
                for allergen, reaction in (ALLERGENS[k] for k in picked[: 1 if r < 0.92 else 2]):
                    allergies.append(
                        f"{allergy_id}\t{rid}\t{allergen}\t{reaction}\tmild\t{issued}\tdoc-0001\n"
                    )
                    allergy_id += 1
            if child:
                clinic = clinic_of(area)
                for code, dose, days in doses:
                    if days <= age:
                        given = day(age - days - ri(0, min(20, age - days + 1)))
                        immunizations.append(
                            f"{dose_id}\t{rid}\t{code}\t{dose}\t{given}\tL{given[:4]}{given[5:7]}{dose}\t"
                            f"{clinic}\t{stamp}\tnurse-0001\n"
                        )
                        dose_id += 1
            picked = two(len(HOSPITALS))
            places = [clinic_of(area), *(HOSPITALS[k][0] for k in picked[: 1 + int(rand() * 2)])]
            r = rand()
            count = 2 if r < 0.3 else 3 if r < 0.7 else 4
            visits.append(
                [
                    (rid, card, places[0] if v == 0 else places[1 + (v - 1) % (len(places) - 1)])
                    for v in range(count)
                ]
            )
        encounters, diagnoses = out["encounters"], out["diagnoses"]
        observations, prescriptions = out["observations"], out["prescriptions"]
        n_dep, n_obs, n_drugs = len(DEPARTMENTS), len(OBSERVATIONS), len(DRUGS)
        encounter_id, diagnosis_id, observation_id, prescription_id = (
            ids["encounters"],
            ids["diagnoses"],
            ids["observations"],
            ids["prescriptions"],
        )
        for rounds in range(4):  # the visits, round by round
            for person in visits:
                if rounds >= len(person):
                    continue
                rid, card, institution = person[rounds]
                eid, encounter_id = encounter_id, encounter_id + 1
                on, minute = day(ri(1, 1095)), ri(0, 600)
                started = f"{on} {8 + minute // 60:02d}:{minute % 60:02d}:00+00"
                ended = f"{on} {8 + (minute + 15) // 60:02d}:{(minute + 15) % 60:02d}:00+00"
                encounters.append(
                    f"{eid}\t{rid}\t{institution}\toutpatient\tclosed\tMZ{eid:012d}\t{DEPARTMENTS[ri(0, n_dep)]}\t"
                    f"doc-0001\tgeneral\t{card}\tcard\t03\t{started}\t{ended}\t{NULL}\t{FEES}\t{started}\n"
                )
                picked = two(len(DIAGNOSES))
                for n in range(1 + int(rand() * 2)):
                    code, name = DIAGNOSES[picked[n]]
                    diagnoses.append(
                        f"{diagnosis_id}\t{rid}\t{eid}\t{code}\t{name}\t{'t' if n == 0 else 'f'}\tgeneral\t{on}\n"
                    )
                    diagnosis_id += 1
                code, name, value, unit, low, high = OBSERVATIONS[ri(0, n_obs)]
                observations.append(
                    f"{observation_id}\t{rid}\t{eid}\tlab\t{code}\t{name}\t{value:g}\t{value}\t{unit}\t{low}\t{high}\t"
                    f"{NULL}\tgeneral\t{started}\n"
                )
                observation_id += 1
                drug, amount, dose_unit, frequency, length = DRUGS[ri(0, n_drugs)]
                prescriptions.append(
                    f"{prescription_id}\t{rid}\t{eid}\t{drug}\t{NULL}\t{amount}\t{dose_unit}\t01\t{frequency}\t{length}\t"
                    f"general\t{started}\n"
                )
                prescription_id += 1
        self.next_id.update(
            cards=card_id,
            allergies=allergy_id,
            immunizations=dose_id,
            encounters=encounter_id,
            diagnoses=diagnosis_id,
            observations=observation_id,
            prescriptions=prescription_id,
        )
        return out

    def grow(self, to: int, load: Callable[[Rows], None]) -> None:
        """Make residents ``size … to`` and hand each chunk's rows to ``load``."""
        for start in range(self.size, to, CHUNK):
            load(self.chunk(start, min(to, start + CHUNK)))
        self.size = max(self.size, to)

    def rotation(self, count: int = ROTATION) -> list[tuple[str, str]]:
        """``count`` (card number, chip serial) pairs spread evenly over the whole population."""
        step = max(1, self.size // count)
        offset = random.Random(SEED + self.size).randrange(step)
        return [(card_number(i), chip_serial(i)) for i in range(offset, self.size, step)][:count]


# --- loading --------------------------------------------------------------------------------------
REFERENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "institutions": ("code", "name", "kind", "area_code", "issues_cards", "level"),
    "operators": ("id", "name", "role", "institution_code", "active"),
    "terminals": ("id", "institution_code", "kind", "public_key", "active", "created_at"),
}


def psycopg_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as libpq takes it."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def copy_rows(conn: Any, rows: Rows) -> None:
    """COPY every table's lines (psycopg 3, text format), in the dict's (foreign-key) order."""
    with conn.cursor() as cur:
        for table, lines in rows.items():
            if not lines:
                continue
            columns = ", ".join(f'"{c}"' for c in COLUMNS.get(table) or REFERENCE_COLUMNS[table])
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for k in range(0, len(lines), 20_000):
                    copy.write("".join(lines[k : k + 20_000]))


@dataclass(frozen=True)
class Step:
    """One growth step of the PostgreSQL population."""

    residents: int
    seconds: float  # seeding this step (COPY + sequences + ANALYZE)
    rows: int  # rows COPYed in this step
    size_bytes: int  # pg_database_size after the step


def grow_postgres(url: str, population: Population, to: int) -> Step:
    """COPY residents ``population.size … to`` in one transaction, set the sequences past the
    loaded ids, ANALYZE (this server runs with autovacuum off), and measure the database."""
    import psycopg

    counted = 0
    start = time.perf_counter()
    with psycopg.connect(psycopg_url(url)) as conn:
        # this session only: no commit wait, and no foreign-key trigger per row (the generator
        # writes consistent rows); bigger sorts for the index builds
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '512MB'")
        # secondary indexes are built once after the load rather than row by row (the same
        # definitions: the database ends as the migrations made it); constraint indexes stay
        secondary = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = current_schema() "
            "AND tablename = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            [list(COLUMNS)],
        ).fetchall()
        for name, _ in secondary:
            conn.execute(f'DROP INDEX "{name}"')
        if population.size == 0:
            copy_rows(conn, population.reference_rows())

        def load(rows: Rows) -> None:
            nonlocal counted
            copy_rows(conn, rows)
            counted += sum(len(b) for b in rows.values())

        population.grow(to, load)
        for _, ddl in secondary:
            conn.execute(ddl)
        for table in SERIAL_TABLES:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
        seconds = time.perf_counter() - start
        size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
    return Step(to, seconds, counted, size)


def _converters(table: str) -> list[Callable[[str], Any]]:
    """COPY text → the Python value SQLAlchemy binds, per column of ``table``."""
    from sqlalchemy import JSON, Boolean, Date, Float, Integer

    from healthcard.storage.tables import Base, UTCDateTime

    def convert(column: Any) -> Callable[[str], Any]:
        kind = column.type
        if isinstance(kind, JSON):
            return json.loads
        if isinstance(kind, Boolean):
            return lambda v: v == "t"
        if isinstance(kind, Integer):
            return int
        if isinstance(kind, Float):
            return float
        if isinstance(kind, UTCDateTime):
            return dt.datetime.fromisoformat
        if isinstance(kind, Date):
            return dt.date.fromisoformat
        return str

    columns = Base.metadata.tables[table].columns
    return [convert(columns[name]) for name in COLUMNS.get(table) or REFERENCE_COLUMNS[table]]


def seed_sqlite(url: str, population: Population, to: int) -> float:
    """The same rows into a SQLite database, through SQLAlchemy Core (its JSON and UTC types)."""
    from sqlalchemy import insert

    from healthcard.storage.db import Database
    from healthcard.storage.tables import Base

    db = Database(url)
    db.upgrade()
    start = time.perf_counter()
    with db.engine.begin() as conn:

        def load(rows: Rows) -> None:
            for table, lines in rows.items():
                if not lines:
                    continue
                names = COLUMNS.get(table) or REFERENCE_COLUMNS[table]
                converters = _converters(table)
                records = [
                    {
                        name: None if value == NULL else to_python(value)
                        for name, to_python, value in zip(
                            names, converters, line[:-1].split("\t"), strict=True
                        )
                    }
                    for line in lines
                ]
                conn.execute(insert(Base.metadata.tables[table]), records)

        load(population.reference_rows())
        population.grow(to, load)
    db.dispose()
    return time.perf_counter() - start


# --- the server and the load ----------------------------------------------------------------------
def terminal_token(now: dt.datetime) -> str:
    from healthcard.api.tokens import Tokens
    from healthcard.platform.access import Actor, Carrier, Role

    actor = Actor(TERMINAL, Role.TERMINAL, institution_code=TERMINAL_INSTITUTION, carrier=Carrier.CARD)
    return Tokens(bytes.fromhex(SECRET)).issue(actor, now).access_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(port: int) -> list[str]:
    return [str(VENV_BIN / "healthcard"), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(WORKERS), "--log-level", "warning"]  # fmt: skip


@contextlib.contextmanager
def server(url: str, data_dir: Path) -> Iterator[str]:
    """``healthcard serve --workers 2`` on ``url``; yields its base URL, stops it after."""
    port = free_port()
    env = {
        **os.environ,
        "HEALTHCARD_DATABASE_URL": url,
        "HEALTHCARD_TOKEN_SECRET": SECRET,
        "HEALTHCARD_DATA_DIR": str(data_dir),
    }
    log_path = data_dir / "serve.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        serve_command(port), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"healthcard serve exited {proc.returncode}: {tail(log_path)}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"healthcard serve did not answer in 90 s: {tail(log_path)}")
            time.sleep(0.3)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


LUA = """\
-- written by bench/platform.py: POST /v1/swipes rotating over real (card, chip) pairs
local cards = {
%(cards)s
}
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s"}
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  errors = 0
  first_error = ""
  i = id * 7919  -- each thread starts elsewhere in the rotation
end

function request()
  i = i + 1
  local c = cards[(i %% #cards) + 1]
  return wrk.format("POST", "/v1/swipes", headers,
    '{"card_number": "' .. c[1] .. '", "chip_serial": "' .. c[2] .. '", "stage": "consultation"}')
end

function response(status, headers, body)
  if status >= 300 then
    errors = errors + 1
    if first_error == "" then first_error = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local failed, sample = 0, ""
  for _, t in ipairs(threads) do
    failed = failed + t:get("errors")
    if sample == "" then sample = t:get("first_error") end
  end
  local e = summary.errors
  io.write(string.format("BENCH non2xx=%%d socket=%%d requests=%%d\\n",
    failed, e.connect + e.read + e.write + e.timeout, summary.requests))
  if sample ~= "" then io.write("BENCH first_error=" .. sample .. "\\n") end
end
"""


def write_lua(path: Path, cards: Sequence[tuple[str, str]], token: str) -> None:
    lines = ",\n".join(f'  {{"{number}", "{chip}"}}' for number, chip in cards)
    path.write_text(LUA % {"cards": lines, "token": token}, encoding="utf-8")


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    first_error: str


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec and the 50% / 99% latencies of ``wrk --latency``, and our Lua's error counts."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    ours = re.search(r"^BENCH non2xx=(\d+) socket=(\d+) requests=(\d+)", output, re.M)
    if not (rps and p50 and p99 and ours):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    sample = re.search(r"^BENCH first_error=(.*)$", output, re.M)
    return WrkResult(
        float(rps.group(1)),
        _ms(p50.group(1)),
        _ms(p99.group(1)),
        int(ours.group(3)),
        int(ours.group(1)),
        int(ours.group(2)),
        sample.group(1) if sample else "",
    )


def wrk_command(base: str, lua: Path, threads: int, connections: int, seconds: int) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(lua),
        base + "/v1/swipes",
    ]


def wrk_run(base: str, lua: Path, threads: int, connections: int, seconds: int) -> WrkResult:
    out = subprocess.run(
        wrk_command(base, lua, threads, connections, seconds),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return parse_wrk(out.stdout)


# --- pgbench --------------------------------------------------------------------------------------
@contextlib.contextmanager
def pgbench_database() -> Iterator[tuple[str, float]]:
    """A scratch database initialised by ``pgbench -i -s 10`` (and the seconds it took); dropped after."""
    with scratch_postgres() as url:
        libpq = psycopg_url(url)
        start = time.perf_counter()
        subprocess.run(
            ["pgbench", "-i", "-s", "10", "-q", libpq],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        yield libpq, time.perf_counter() - start


def pgbench_run(libpq: str, seconds: int) -> float:
    """TPS of ``pgbench -S -c 16 -j 2 -T seconds`` (select-only: one indexed lookup per transaction)."""
    out = subprocess.run(
        ["pgbench", "-S", "-n", "-c", str(CONNECTIONS), "-j", "2", "-T", str(seconds), libpq],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    tps = re.search(r"^tps = ([\d.]+)", out.stdout, re.M)
    if tps is None:
        raise RuntimeError(f"cannot read pgbench's output:\n{out.stdout}\n{out.stderr}")
    return float(tps.group(1))


# --- in process -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InProcess:
    """Swipes one after the other through FastAPI's TestClient, one process, no network."""

    backend: str
    residents: int
    swipes: int
    median_ms: float
    p99_ms: float
    errors: int


def client_for(url: str, data_dir: Path) -> Any:
    with warnings.catch_warnings():  # starlette's TestClient warns about httpx on import
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from healthcard.api.app import create_app
    from healthcard.bootstrap import bootstrap
    from healthcard.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=url, token_secret=bytes.fromhex(SECRET))
    return TestClient(create_app(bootstrap(settings)))


def swipe_loop(
    client: Any, cards: Sequence[tuple[str, str]], count: int, token: str
) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {token}"}
    samples, errors = [], 0
    for n in range(count):
        number, chip = cards[(n * 7) % len(cards)]
        start = time.perf_counter()
        answer = client.post(
            "/v1/swipes",
            json={"card_number": number, "chip_serial": chip, "stage": "consultation"},
            headers=headers,
        )
        samples.append(time.perf_counter() - start)
        if answer.status_code >= 300:
            errors += 1
    return samples, errors


def in_process(
    backend: str, url: str, population: Population, data_dir: Path, count: int, token: str
) -> InProcess:
    cards = population.rotation()
    with client_for(url, data_dir) as client:
        swipe_loop(client, cards, min(50, count), token)  # warm-up: imports, pool, caches
        samples, errors = swipe_loop(client, cards, count, token)
    samples.sort()
    return InProcess(
        backend,
        population.size,
        count,
        statistics.median(samples) * 1000,
        samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000,
        errors,
    )


@dataclass(frozen=True)
class Profile:
    """Where one swipe's time goes (in process, PostgreSQL, one swipe at a time)."""

    swipes: int
    http_ms: float  # per swipe through TestClient (HTTP in process: routing, auth, JSON)
    node_ms: float  # per swipe calling Node.swipe + the response's JSON directly, profiler off
    statements: float  # SQL statements per swipe
    sql_ms: float  # per swipe: cursor execute → result, the round trips included
    by_package: list[tuple[str, float]]  # (package, share of profiled self time)
    top: list[tuple[str, float, float]]  # (function, calls per swipe, cumulative ms per swipe)
    statement_kinds: list[tuple[str, float, float]]  # (first words, count per swipe, ms per swipe)


def _package(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if "healthcard" in parts:
        return "healthcard"
    return "stdlib"


def _statement_kind(statement: str) -> str:
    words = statement.split()
    if words[:1] == ["SELECT"]:
        table = next((words[k + 1] for k, w in enumerate(words) if w == "FROM" and k + 1 < len(words)), "?")
        return f"SELECT … FROM {table}"
    return " ".join(words[:3])


def profile_swipes(url: str, population: Population, data_dir: Path, count: int, token: str) -> Profile:
    """``count`` swipes each way: through TestClient (HTTP in process); then calling
    :meth:`Node.swipe` and dumping its JSON as the route does, plain, with SQLAlchemy's cursor
    events timing every statement, and under cProfile (self time grouped by package).  The
    direct calls run in this thread, so cProfile sees them (TestClient runs the app in others)."""
    from pydantic import TypeAdapter
    from sqlalchemy import event

    from healthcard.platform.access import Actor, Carrier, Role
    from healthcard.platform.node import Swipe

    cards = population.rotation()
    actor = Actor(TERMINAL, Role.TERMINAL, institution_code=TERMINAL_INSTITUTION, carrier=Carrier.CARD)
    answer = TypeAdapter(Swipe)
    with client_for(url, data_dir) as client:
        swipe_loop(client, cards, 50, token)
        http, _ = swipe_loop(client, cards, count, token)
        node = client.app.state.node

        def direct(n: int) -> list[float]:
            samples = []
            for k in range(n):
                number, chip = cards[(k * 11) % len(cards)]
                start = time.perf_counter()
                answer.dump_json(
                    node.swipe(actor, card_number=number, chip_serial=chip, stage="consultation")
                )
                samples.append(time.perf_counter() - start)
            return samples

        plain = direct(count)
        started: list[float] = []
        kinds: dict[str, list[float]] = defaultdict(list)

        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            started.append(time.perf_counter())

        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            kinds[_statement_kind(statement)].append(time.perf_counter() - started.pop())

        engine = node.db.engine
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        try:
            direct(count)
        finally:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
        profiler = cProfile.Profile()
        profiler.enable()
        direct(count)
        profiler.disable()
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    packages: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in raw.items():
        packages[_package(filename)] += tottime
    ours = [
        (f"{Path(fn).parent.name}/{Path(fn).name}:{line} {name}", v[1] / count, v[3] / count * 1000)
        for (fn, line, name), v in raw.items()
        if _package(fn) == "healthcard" and v[3] / count * 1000 >= 0.05
    ]
    ours.sort(key=lambda r: -r[2])
    statements = sum(len(v) for v in kinds.values())
    return Profile(
        count,
        statistics.median(http) * 1000,
        statistics.median(plain) * 1000,
        statements / count,
        sum(sum(v) for v in kinds.values()) / count * 1000,
        sorted(((p, s / total) for p, s in packages.items()), key=lambda r: -r[1])[:8],
        ours[:15],
        sorted(((k, len(v) / count, sum(v) / count * 1000) for k, v in kinds.items()), key=lambda r: -r[2]),
    )


# --- the run --------------------------------------------------------------------------------------
@dataclass
class ScaleResult:
    step: Step
    serial: WrkResult  # wrk -t1 -c1: one client, the lookup's own latency
    loaded: list[WrkResult]  # wrk -t2 -c16 repeats


@dataclass
class PlatformRun:
    quick: bool
    wrk_seconds: int
    full_seconds: int
    repeats: int
    sqlite: InProcess | None = None
    postgres_small: InProcess | None = None
    scales: list[ScaleResult] = field(default_factory=list)
    full: list[WrkResult] = field(default_factory=list)
    pgbench: list[float] = field(default_factory=list)
    pgbench_init_s: float | None = None
    profile: Profile | None = None
    problems: list[str] = field(default_factory=list)
    total_s: float = 0.0
    load: list[float] = field(default_factory=list)  # the machine's 1-minute load average, start / end


def run_platform_bench(quick: bool) -> PlatformRun:
    start = time.perf_counter()
    scales = QUICK_SCALES if quick else SCALES
    run = PlatformRun(quick, wrk_seconds=5 if quick else 10, full_seconds=5 if quick else 20, repeats=3)
    run.load.append(os.getloadavg()[0])
    swipes = 200 if quick else 300
    now = dt.datetime.now(dt.UTC)
    token = terminal_token(now)
    with tempfile.TemporaryDirectory(prefix="healthcard-bench-platform-") as tmp:
        folder = Path(tmp)
        # the embedded default, in process
        (folder / "sqlite").mkdir()
        lite = Population(now)
        lite_url = f"sqlite:///{folder / 'sqlite' / 'healthcard.db'}"
        seed_sqlite(lite_url, lite, scales[0])
        run.sqlite = in_process("SQLite", lite_url, lite, folder / "sqlite", swipes, token)
        print(f"platform: SQLite {run.sqlite}", file=sys.stderr)
        problem = postgres_problem()
        if problem is not None:
            run.problems.append(f"PostgreSQL unavailable: {problem}")
            run.total_s = time.perf_counter() - start
            return run
        if shutil.which("wrk") is None:
            run.problems.append("wrk is not installed (bash scripts/bench-up.sh): no HTTP figures")
        if shutil.which("pgbench") is None:
            run.problems.append("pgbench is not installed: no ratio to the server's raw selects")
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(scratch_postgres())
            from healthcard.storage.db import Database

            db = Database(url)
            db.upgrade()
            db.dispose()
            libpq = None
            if shutil.which("pgbench"):
                libpq, run.pgbench_init_s = stack.enter_context(pgbench_database())
            population = Population(now)
            lua = folder / "swipe.lua"
            for scale in scales:
                step = grow_postgres(url, population, scale)
                print(f"platform: seeded {step}", file=sys.stderr)
                if scale == scales[0]:
                    run.postgres_small = in_process("PostgreSQL", url, population, folder, swipes, token)
                    print(f"platform: {run.postgres_small}", file=sys.stderr)
                if shutil.which("wrk") is None:
                    continue
                write_lua(lua, population.rotation(), token)
                with server(url, folder) as base:
                    warm = wrk_run(base, lua, 2, CONNECTIONS, 3)  # warm-up: workers, pools, pages
                    if warm.requests and warm.non2xx + warm.socket_errors >= warm.requests:
                        run.problems.append(
                            f"every swipe of the warm-up at {scale:,} residents FAILED ({warm.first_error or 'socket errors'}): "
                            f"the HTTP measurements stopped there; the server's log said: {tail(folder / 'serve.log', 3)}"
                        )
                        break
                    serial = wrk_run(base, lua, 1, 1, run.wrk_seconds // 2 or 1)
                    loaded = [wrk_run(base, lua, 2, CONNECTIONS, run.wrk_seconds) for _ in range(run.repeats)]
                    run.scales.append(ScaleResult(step, serial, loaded))
                    print(f"platform: {scale:,}: {serial} {loaded}", file=sys.stderr)
                    if scale == scales[-1]:  # the full run: wrk and pgbench -S in turns
                        for _ in range(run.repeats):
                            run.full.append(wrk_run(base, lua, 2, CONNECTIONS, run.full_seconds))
                            if libpq is not None:
                                run.pgbench.append(pgbench_run(libpq, run.full_seconds))
                        print(f"platform: full {run.full} pgbench {run.pgbench}", file=sys.stderr)
            run.profile = profile_swipes(url, population, folder, 100 if quick else 300, token)
    run.total_s = time.perf_counter() - start
    run.load.append(os.getloadavg()[0])
    return run


# --- the report -----------------------------------------------------------------------------------
def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def report_platform(run: PlatformRun, command: str) -> str:
    wrk_c = (
        f"wrk -t2 -c{CONNECTIONS} -d{run.wrk_seconds}s --latency -s swipe.lua http://127.0.0.1:PORT/v1/swipes"
    )
    wrk_1 = (
        f"wrk -t1 -c1 -d{run.wrk_seconds // 2 or 1}s --latency -s swipe.lua http://127.0.0.1:PORT/v1/swipes"
    )
    wrk_full = f"wrk -t2 -c{CONNECTIONS} -d{run.full_seconds}s --latency -s swipe.lua http://127.0.0.1:PORT/v1/swipes"
    pgb = f"pgbench -S -n -c {CONNECTIONS} -j 2 -T {run.full_seconds} <scratch db>"
    serve = shlex.join(["healthcard", *serve_command(0)[1:-4], "--workers", str(WORKERS)]).replace(
        "--port 0", "--port PORT"
    )
    lines = [
        "## Platform",
        "",
        f"{made_by(command)} The swipe lookup of issue 5: `POST /v1/swipes` (card number + chip serial → "
        "card use, presence grant, audit entry, summary JSON) served by "
        f"`{serve}` on PostgreSQL, every figure from one run of {run.total_s / 60:.1f} min. "
        f"**The server's {WORKERS} workers, PostgreSQL and wrk share the machine's 2 cores**: the load "
        "generator takes CPU from the server it measures, so these are floors for a machine of its own."
        + (
            f" The machine's load average (1 min) was {run.load[0]:.1f} at the start and {run.load[-1]:.1f} at the "
            "end of the run (other work on the shared machine counts in it)."
            if len(run.load) == 2
            else ""
        ),
        "",
    ]
    for problem in run.problems:
        lines += [f"**{problem}**", ""]
    errors = sum(r.non2xx + r.socket_errors for s in run.scales for r in [s.serial, *s.loaded]) + sum(
        r.non2xx + r.socket_errors for r in run.full
    )
    if errors:
        sample = next(
            (r.first_error for s in run.scales for r in [s.serial, *s.loaded, *run.full] if r.first_error), ""
        )
        lines += [
            f"**⚠ {errors:,} requests FAILED (non-2xx or socket errors) during this run — the figures below "
            f"include failures and are not valid as throughput.** First failure: `{sample}`",
            "",
        ]
    elif run.scales:
        lines += [
            "Every request of every wrk run answered 2xx (the Lua script counts status ≥ 300; wrk counts socket errors).",
            "",
        ]
    if run.full:
        rps, p50 = _median([r.rps for r in run.full]), _median([r.p50_ms for r in run.full])
        p99 = _median([r.p99_ms for r in run.full])
        pg = _median(run.pgbench) if run.pgbench else None
        largest = run.scales[-1].step.residents if run.scales else 0
        lines += [
            f"### Swipe lookup at {largest:,} residents ({run.repeats} runs, medians)",
            "",
            "| figure | value | target |",
            "|---|---|---|",
            f"| throughput | {rps:,.0f} req/s | ≥ {TARGET_RPS:,} req/s {'✅' if rps >= TARGET_RPS else '❌ missed'} |",
            f"| latency p50 | {p50:.1f} ms | |",
            f"| latency p99 | {p99:.1f} ms | ≤ {TARGET_P99_MS:.0f} ms {'✅' if p99 <= TARGET_P99_MS else '❌ missed'} |",
        ]
        if pg is not None:
            lines += [
                f"| `pgbench -S` on the same server, in turns with wrk | {pg:,.0f} TPS | |",
                f"| our req/s ÷ pgbench -S TPS | {rps / pg:.3f} (1 swipe ≈ {pg / rps:,.0f} raw indexed selects) | |",
            ]
        lines += [
            "",
            "Runs (wrk then pgbench, in turns): "
            + "; ".join(
                f"{r.rps:,.0f} req/s p50 {r.p50_ms:.1f} p99 {r.p99_ms:.1f} ms"
                + (f" / {run.pgbench[k]:,.0f} TPS" if k < len(run.pgbench) else "")
                for k, r in enumerate(run.full)
            )
            + ".",
            "",
            f"Commands: `{wrk_full}` and `{pgb}` (pgbench's database made by `pgbench -i -s 10`"
            + (f", {run.pgbench_init_s:.0f} s" if run.pgbench_init_s is not None else "")
            + "). The Lua script rotates over "
            f"{ROTATION:,} (card, chip) pairs spread evenly over the whole population, checks every response "
            "and counts the failures.",
            "",
        ]
    if run.scales:
        lines += [
            "### Flat with the population? (10k → 100k → 1M, the same run)",
            "",
            "The database grows in steps; after each step (COPY, ANALYZE) the server is restarted on it and "
            "measured. One client alone shows the lookup's own latency; 16 clients the throughput.",
            "",
            "| residents | seeding the step | rows COPYed | database size | 1 client p50 / p99 | "
            f"16 clients req/s (median of {run.repeats}) | 16 clients p50 / p99 |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in run.scales:
            lines.append(
                f"| {s.step.residents:,} | {s.step.seconds:.0f} s | {s.step.rows:,} | {_mib(s.step.size_bytes)} | "
                f"{s.serial.p50_ms:.1f} / {s.serial.p99_ms:.1f} ms | {_median([r.rps for r in s.loaded]):,.0f} | "
                f"{_median([r.p50_ms for r in s.loaded]):.1f} / {_median([r.p99_ms for r in s.loaded]):.1f} ms |"
            )
        first, last = run.scales[0], run.scales[-1]
        growth = last.step.residents / first.step.residents
        ratio = last.serial.p50_ms / first.serial.p50_ms
        lines += [
            "",
            f"{growth:,.0f}× the residents: one client's p50 ×{ratio:.2f}, throughput "
            f"×{_median([r.rps for r in last.loaded]) / _median([r.rps for r in first.loaded]):.2f} — "
            + ("flat: index-bound, not scan-bound." if ratio < 1.5 else "**not flat: look for a scan.**"),
            "",
            f"Commands per step: `{wrk_1}`, then `{wrk_c}` {run.repeats}×.  Seeding: psycopg 3 `COPY … FROM STDIN` "
            f"of {CHUNK:,}-resident chunks in one transaction per step, then `ANALYZE` (this server runs "
            "with autovacuum off). Per resident: the resident, an application and an ACTIVE card, a health "
            "archive (alerts for 40%), 0–2 allergies, 2–4 closed outpatient visits at the district's "
            "community centre and 1–2 hospitals (1–2 ICD-10 diagnoses, a lab observation and a prescription "
            "each), and for the 8% under 7 their vaccinations by the national schedule.  Visits are written "
            "round by round, so a resident's visits lie on different pages as years of visits would. "
            "`card_uses`, `presence_grants` and the audit log start empty and grow with the run.",
            "",
        ]
    inproc = [r for r in (run.sqlite, run.postgres_small) if r is not None]
    if inproc:
        lines += [
            "### In process (FastAPI TestClient, one swipe at a time, no network)",
            "",
            "| database | residents | swipes | median | p99 | swipes/s (1 / median) |",
            "|---|---|---|---|---|---|",
        ]
        for r in inproc:
            flag = f" ⚠ {r.errors} failed" if r.errors else ""
            lines.append(
                f"| {r.backend} | {r.residents:,} | {r.swipes}{flag} | {r.median_ms:.2f} ms | {r.p99_ms:.2f} ms | "
                f"{1000 / r.median_ms:,.0f} |"
            )
        lines += [
            "",
            "SQLite is the embedded default (a file in the data directory); both rows come from the same generator.",
            "",
        ]
    if run.profile is not None:
        p = run.profile
        residents = run.scales[-1].step.residents if run.scales else 0
        lines += [
            f"### Where a swipe's time goes (PostgreSQL, {residents:,} residents, {p.swipes} swipes each way, "
            "one at a time, in process)",
            "",
            "| way | median per swipe |",
            "|---|---|",
            f"| HTTP in process (TestClient: routing, token, `Node.swipe`, JSON) | {p.http_ms:.2f} ms |",
            f"| `Node.swipe` + the response's JSON (pydantic), called directly | {p.node_ms:.2f} ms |",
            f"| of which SQL: {p.statements:.0f} statements, cursor execute → result (round trips included) | "
            f"{p.sql_ms:.2f} ms ({p.sql_ms / p.node_ms:.0%}) |",
            "",
            "| statement | per swipe | ms per swipe |",
            "|---|---|---|",
            *[f"| `{k}` | {n:.1f} | {ms:.3f} |" for k, n, ms in p.statement_kinds],
            "",
            "cProfile of the direct calls, self time by package: "
            + ", ".join(f"{name} {share:.0%}" for name, share in p.by_package)
            + " (psycopg's self time is mostly its wait for PostgreSQL's answers: the round trips).",
            "",
            "| our function (cumulative under cProfile, per swipe) | calls | ms |",
            "|---|---|---|",
            *[f"| `{name}` | {calls:g} | {ms:.2f} |" for name, calls, ms in p.top],
            "",
        ]
    return "\n".join(lines) + "\n"


def run_platform(command: str, quick: bool) -> str:
    """The "## Platform" section (markdown)."""
    return report_platform(run_platform_bench(quick), command)


__all__ = ["Population", "report_platform", "run_platform", "run_platform_bench"]
