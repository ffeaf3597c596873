"""Plausible demo residents: applications for load tests, demos and batch-issuance files.

:func:`generate_applications` streams :class:`~healthcard.issuance.application.Application`
objects that pass :func:`~healthcard.issuance.application.parse_application`:

* citizen ID numbers (GB 11643, CARD-SPEC.md §2) unique within one call, with a valid check
  digit and an area code that python-stdnum's GB/T 2260 table accepts *for the birth year*
  (``stdnum.cn.ric.is_valid``): many county codes date from the 1983 reform or later (410102
  中原区 [1983-], 440604 禅城区 [2002-]), so older residents get the codes of their birth years
  (410120 郑州市市区 [-1983], 412425 中牟县 [-1983], 442722 南海县 [-1983] …) and live today in
  the county that carries the name on (address, city code, health-record number);
* uniqueness without memory: with ``B = ceil(count / 499)`` blocks, application ``i`` belongs to
  block ``i mod B``, its birth date lies on a day ``≡ block (mod B)`` (moved back by less than
  ``B`` days from the drawn date) and its sequence number is slot
  ``(a·(i div B) + c + d·block) mod 499`` (``a``, ``c``, ``d`` drawn once; 499 is prime, so
  within a block this is a permutation) — odd ``2·slot+1`` for men, even ``2·slot+2`` for women.
  Two applications of one block differ in the sequence, two of different blocks in the birth
  date;
* common surnames by frequency, one- or two-character given names, birth dates from 1930 to
  ``today`` along a population pyramid (children included), ethnicity mostly 汉 (01), addresses
  in the resident's county, mobile numbers, contacts, blood groups, medical alerts, allergies,
  the national immunization schedule for children (CARD-SPEC.md §10.3, 2025 schedule) and a few
  adult vaccinations, payment method 03 (新农合) for rural counties;
* a photo on ``photo_fraction`` of them, from a small pool of JPEG portraits drawn with Pillow
  once per process (each within :data:`~healthcard.issuance.photo.PHOTO_LIMIT`).

Everything random comes from the ``rng`` argument: the same seed gives the same residents.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from random import Random

from PIL import Image, ImageDraw

from healthcard.errors import InvalidValue
from healthcard.issuance.application import (
    CSV_COLUMNS,
    Application,
    Contact,
    application_to_row,
)
from healthcard.issuance.identity import Area, IdType, area, check_digit
from healthcard.issuance.photo import PHOTO_LIMIT, PORTRAIT_SIZE, normalise_photo

#: county codes residents are drawn from: Henan (Zhengzhou 4101xx, Hebi 4106xx) above all, a few
#: of Guangdong (Foshan 4406xx), Beijing (1101xx) and Sichuan (Chengdu 5101xx); each with the
#: codes of earlier years, so that every birth year from 1930 has codes stdnum accepts
DEFAULT_AREAS: tuple[str, ...] = (
    # 郑州市: 中原 二七 管城 金水 上街 惠济 中牟 巩义 荥阳 新密 新郑 登封
    "410102",
    "410103",
    "410104",
    "410105",
    "410106",
    "410108",
    "410122",
    "410181",
    "410182",
    "410183",
    "410184",
    "410185",
    # … before the 1983 reform: 郑州市市区, 荥阳县, 中牟县, 新郑县, 密县, 登封县
    "410120",
    "410121",
    "412425",
    "412426",
    "412428",
    "412429",
    # 鹤壁市: 鹤山 山城 淇滨 浚县 淇县; before 1983 浚县, 淇县 of 安阳地区
    "410602",
    "410603",
    "410611",
    "410621",
    "410622",
    "412124",
    "412125",
    # 佛山市: 禅城 南海 顺德 三水 高明; before 2002 城区, 石湾区, 南海县, 顺德县; before 1983 佛山市, 南海县, 顺德县
    "440604",
    "440605",
    "440606",
    "440607",
    "440608",
    "440602",
    "440603",
    "440622",
    "440623",
    "442701",
    "442722",
    "442723",
    # 北京市: 东城 西城 朝阳 海淀
    "110101",
    "110102",
    "110105",
    "110108",
    # 成都市: 锦江 青羊 武侯 金堂县 大邑县; before 1990 东城区, 西城区; before 1983 市区
    "510104",
    "510105",
    "510107",
    "510121",
    "510129",
    "510102",
    "510103",
    "510120",
)

FIRST_BIRTH_YEAR = 1930
_SLOTS = 499  # sequence slots per sex and birth date (prime): 001–997 odd, 002–998 even

_SURNAMES = (
    ("王", 7.1), ("李", 7.0), ("张", 6.7), ("刘", 5.4), ("陈", 4.5), ("杨", 3.1), ("黄", 2.2),
    ("赵", 2.0), ("吴", 1.9), ("周", 1.9), ("徐", 1.5), ("孙", 1.5), ("马", 1.3), ("朱", 1.3),
    ("胡", 1.2), ("郭", 1.1), ("何", 1.1), ("高", 1.0), ("林", 1.0), ("罗", 0.9), ("郑", 0.8),
    ("梁", 0.8), ("谢", 0.7), ("宋", 0.6), ("唐", 0.6), ("许", 0.6), ("韩", 0.6), ("冯", 0.5),
    ("邓", 0.5), ("曹", 0.5), ("彭", 0.5), ("曾", 0.4), ("肖", 0.4), ("田", 0.4), ("董", 0.4),
    ("袁", 0.4), ("潘", 0.4), ("于", 0.4), ("蒋", 0.4), ("蔡", 0.3), ("余", 0.3), ("杜", 0.3),
    ("叶", 0.3), ("程", 0.3), ("苏", 0.3), ("魏", 0.3), ("吕", 0.3), ("丁", 0.3), ("任", 0.3),
    ("沈", 0.3), ("姚", 0.2), ("卢", 0.2), ("姜", 0.2), ("崔", 0.2), ("钟", 0.2), ("谭", 0.2),
    ("陆", 0.2), ("汪", 0.2), ("范", 0.2), ("金", 0.2), ("石", 0.2), ("廖", 0.2), ("贾", 0.2),
    ("夏", 0.2), ("韦", 0.2), ("付", 0.2), ("方", 0.2), ("白", 0.2), ("邹", 0.2), ("孟", 0.2),
    ("欧阳", 0.03), ("司马", 0.01), ("诸葛", 0.01), ("上官", 0.01),
)  # fmt: skip
_GIVEN = {
    1: "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林阳建国志文东海峰亮成博轩睿泽宸航然豪晨毅",
    2: "芳娜敏静丽艳娟霞秀英玲桂兰萍红燕梅琳雪婷倩颖慧佳欣怡悦涵萱梓诗雨思琪晶媛洁璐瑶淑",
}
_ETHNICITIES = (
    ("01", 91.0), ("03", 3.0), ("11", 1.4), ("08", 1.2), ("06", 0.7), ("15", 0.6), ("02", 0.5),
    ("07", 0.5), ("05", 0.3), ("04", 0.3), ("10", 0.2), ("12", 0.2), ("13", 0.1),
)  # fmt: skip
_MOBILE = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
           "155", "156", "158", "159", "166", "173", "176", "177", "180", "181", "185", "186",
           "187", "188", "189", "191", "198", "199")  # fmt: skip
_STREETS = ("建设路", "人民路", "解放路", "中山路", "文化路", "花园路", "大学路", "农业路", "黄河路",
            "长江路", "和平路", "友谊路", "健康路", "朝阳路", "胜利路", "新华路", "光明路", "民主路",
            "经三路", "纬五路", "淇河路", "九州路", "兴华街", "学院路")  # fmt: skip
_COMMUNITIES = ("幸福家园", "阳光小区", "锦绣花园", "和谐苑", "金色港湾", "书香园", "翠竹苑", "东方明珠")
_TOWNS = ("城关镇", "新城镇", "黄店镇", "白沙镇", "官渡镇", "张庄镇", "刘集镇", "北岗乡", "南湖乡")
_VILLAGES = ("王庄村", "李寨村", "刘楼村", "张湾村", "陈营村", "杨店村", "赵屯村", "孙岗村", "东村", "西村")
_ALLERGENS = (
    "青霉素",
    "磺胺",
    "头孢类",
    "链霉素",
    "阿司匹林",
    "花粉",
    "海鲜",
    "尘螨",
    "鸡蛋",
    "牛奶",
    "花生",
)
_REACTIONS = ("皮疹", "荨麻疹", "瘙痒", "呼吸困难", "皮疹、呼吸困难", "过敏性休克", "腹泻", "喉头水肿")
_OTHER_ALERTS = ("高血压", "冠心病", "慢性肾病", "乙肝病毒携带", "慢性阻塞性肺疾病", "恶性肿瘤术后")
#: national immunization schedule from 2025 (CARD-SPEC.md §10.3): (vaccine, age in months)
SCHEDULE = (
    ("卡介苗", 0),
    ("乙肝疫苗(第1剂)", 0),
    ("乙肝疫苗(第2剂)", 1),
    ("脊灰灭活疫苗(第1剂)", 2),
    ("百白破疫苗(第1剂)", 2),
    ("脊灰灭活疫苗(第2剂)", 3),
    ("脊灰减毒疫苗(第3剂)", 4),
    ("百白破疫苗(第2剂)", 4),
    ("乙肝疫苗(第3剂)", 6),
    ("百白破疫苗(第3剂)", 6),
    ("A群流脑疫苗(第1剂)", 6),
    ("麻腮风疫苗(第1剂)", 8),
    ("乙脑疫苗(第1剂)", 8),
    ("A群流脑疫苗(第2剂)", 9),
    ("百白破疫苗(第4剂)", 18),
    ("麻腮风疫苗(第2剂)", 18),
    ("甲肝疫苗", 18),
    ("乙脑疫苗(第2剂)", 24),
    ("AC流脑疫苗(第1剂)", 36),
    ("脊灰减毒疫苗(第4剂)", 48),
    ("百白破疫苗(第5剂)", 72),
    ("AC流脑疫苗(第2剂)", 72),
)
_MUNICIPAL = {"市辖区", "县", "省直辖县级行政单位", "省直辖县级行政区划", "自治区直辖县级行政区划"}


@dataclass(frozen=True)
class _Place:
    """Where a resident lives today: a county in use now."""

    code: str
    city_code: str
    prefix: str  # 河南省郑州市中原区
    rural: bool


def _place(found: Area, today: dt.date) -> _Place:
    city = area(found.code[:4] + "00")
    city_ok = city is not None and city.valid_in(today.year) and city.code != found.code
    prefix = found.province
    if city is not None and city_ok and city.name not in _MUNICIPAL and city.name != found.province:
        prefix += city.name
    if found.name != found.province:
        prefix += found.name
    rural = found.name.endswith("县") or found.code[4] == "8"
    return _Place(found.code, city.code if city is not None and city_ok else found.code, prefix, rural)


def _base(name: str) -> str:
    return name[:-1] if len(name) > 2 and name[-1] in "县市区" else name


@dataclass(frozen=True)
class _Plan:
    years: tuple[int, ...]  # birth years with at least one ID area
    year_cum: tuple[float, ...]  # cumulative weights of ``years``
    by_year: dict[int, tuple[str, ...]]  # ID areas valid in a birth year
    homes: dict[str, tuple[_Place, ...]]  # ID area → where its holders live today


def _age_weight(age: int) -> float:
    """A rough population pyramid of China in the 2020s, per year of age."""
    if age < 5:
        return 0.7
    if age < 15:
        return 1.0
    if age < 30:
        return 1.1
    if age < 60:
        return 1.4
    if age < 70:
        return 1.1
    if age < 80:
        return 0.6
    if age < 90:
        return 0.2
    return 0.04


def _plan(areas: Sequence[str], today: dt.date) -> _Plan:
    found: dict[str, Area] = {}
    for code in areas:
        known = area(code)
        if known is None:
            raise InvalidValue("areas", f"{code} is not a GB/T 2260 county code")
        found[code] = known
    if not found:
        raise InvalidValue("areas", "no areas given")
    current = [a for a in found.values() if a.valid_in(today.year)]
    if not current:
        raise InvalidValue("areas", "none of the areas is in use today: nobody could live there")
    places = {a.code: _place(a, today) for a in current}

    def homes(a: Area) -> tuple[_Place, ...]:
        if a.code in places:
            return (places[a.code],)
        for same in (
            [c for c in current if c.province == a.province and _base(c.name) == _base(a.name)],
            [c for c in current if c.code[:4] == a.code[:4]],
            [c for c in current if c.code[:2] == a.code[:2]],
            current,
        ):
            if same:
                return tuple(places[c.code] for c in same)
        raise AssertionError("unreachable: current is not empty")

    by_year: dict[int, tuple[str, ...]] = {}
    for year in range(FIRST_BIRTH_YEAR, today.year + 1):
        valid = tuple(code for code, a in found.items() if a.valid_in(year))
        if valid:
            by_year[year] = valid
    if not by_year:
        raise InvalidValue("areas", f"none of the areas was in use in any year from {FIRST_BIRTH_YEAR}")
    years = tuple(sorted(by_year))
    cum: list[float] = []
    total = 0.0
    for year in years:
        total += _age_weight(today.year - year)
        cum.append(total)
    return _Plan(years, tuple(cum), by_year, {code: homes(a) for code, a in found.items()})


def _cumulative(weights: Sequence[tuple[str, float]]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    values, cum, total = [], [], 0.0
    for value, weight in weights:
        total += weight
        values.append(value)
        cum.append(total)
    return tuple(values), tuple(cum)


_SURNAME_PICK = _cumulative(_SURNAMES)
_ETHNICITY_PICK = _cumulative(_ETHNICITIES)


def _pick(rng: Random, table: tuple[tuple[str, ...], tuple[float, ...]]) -> str:
    values, cum = table
    return values[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _add_months(date: dt.date, months: int) -> dt.date:
    year, month = divmod(date.month - 1 + months, 12)
    year += date.year
    for day in (date.day, 30, 29, 28):
        try:
            return dt.date(year, month + 1, day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


# --- portraits ---------------------------------------------------------------------------------

_SKIN = ((241, 204, 170), (226, 185, 143), (204, 160, 120), (235, 195, 160), (214, 172, 132))
_HAIR = ((25, 20, 18), (40, 30, 25), (60, 45, 35), (110, 110, 110), (200, 200, 200))
_CLOTHES = ((30, 50, 110), (20, 20, 25), (120, 30, 40), (230, 230, 235), (60, 90, 60), (90, 60, 40))


@cache
def portraits(count: int = 8) -> tuple[bytes, ...]:
    """``count`` JPEG portraits of the 1-inch size, drawn once per process (each at most
    :data:`~healthcard.issuance.photo.PHOTO_LIMIT` bytes, unchanged by ``normalise_photo``)."""
    out = []
    width, height = PORTRAIT_SIZE
    for n in range(count):
        image = Image.new("RGB", PORTRAIT_SIZE, (250, 250, 250) if n % 3 else (225, 235, 250))
        draw = ImageDraw.Draw(image)
        skin, hair, clothes = (
            _SKIN[n % len(_SKIN)],
            _HAIR[n * 3 % len(_HAIR)],
            _CLOTHES[n * 5 % len(_CLOTHES)],
        )
        face_w = 46 + n % 3 * 4
        cx = width // 2
        draw.ellipse((cx - 48, 96, cx + 48, height + 40), fill=clothes)  # shoulders
        draw.rectangle((cx - 9, 78, cx + 9, 100), fill=skin)  # neck
        draw.ellipse((cx - face_w // 2 - 3, 14, cx + face_w // 2 + 3, 60 + n % 2 * 12), fill=hair)
        draw.ellipse((cx - face_w // 2, 24, cx + face_w // 2, 88), fill=skin)  # face
        for eye in (cx - 10, cx + 10):
            draw.ellipse((eye - 3, 48, eye + 3, 52), fill=(30, 25, 25))
        draw.line((cx - 7, 72, cx + 7, 72), fill=(170, 80, 80), width=2)  # mouth
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=80, optimize=True)
        jpeg = normalise_photo(buffer.getvalue())
        assert len(jpeg) <= PHOTO_LIMIT
        out.append(jpeg)
    return tuple(out)


# --- residents ---------------------------------------------------------------------------------


def generate_applications(
    count: int,
    *,
    rng: Random,
    today: dt.date,
    areas: Sequence[str] = DEFAULT_AREAS,
    photo_fraction: float = 1.0,
) -> Iterator[Application]:
    """``count`` plausible applications, one at a time (module docstring); raises
    :class:`~healthcard.errors.InvalidValue` (field ``areas``, ``count`` or ``photo_fraction``)
    at once, before the first one, when they cannot be made."""
    if count < 0:
        raise InvalidValue("count", f"{count}: a number of applications is not negative")
    if not 0.0 <= photo_fraction <= 1.0:
        raise InvalidValue("photo_fraction", f"{photo_fraction}: a fraction between 0 and 1")
    plan = _plan(areas, today)
    blocks = max(1, math.ceil(count / _SLOTS))
    first, last = dt.date(FIRST_BIRTH_YEAR, 1, 1).toordinal(), today.toordinal()
    if last - first + 1 < blocks:
        raise InvalidValue(
            "count", f"{count} unique citizen ID numbers do not fit the birth dates to {today}"
        )
    return _Generator(rng, today, plan, blocks, photo_fraction).run(count)


class _Generator:
    """The state of one :func:`generate_applications` call (no per-resident memory)."""

    def __init__(self, rng: Random, today: dt.date, plan: _Plan, blocks: int, photo_fraction: float) -> None:
        self.rng = rng
        self.today = today
        self.plan = plan
        self.blocks = blocks
        self.photo_fraction = photo_fraction
        self.photos = portraits() if photo_fraction > 0 else ()
        self.first = dt.date(FIRST_BIRTH_YEAR, 1, 1).toordinal()
        self.last = today.toordinal()
        self.year_start = {y: dt.date(y, 1, 1).toordinal() for y in range(FIRST_BIRTH_YEAR, today.year + 2)}
        self.a = rng.randrange(1, _SLOTS)
        self.c = rng.randrange(_SLOTS)
        self.d = rng.randrange(1, _SLOTS)

    def run(self, count: int) -> Iterator[Application]:
        for i in range(count):
            yield self.application(i)

    # -- identity ------------------------------------------------------------------------------
    def birth(self, block: int) -> tuple[dt.date, tuple[str, ...]]:
        """A birth date on a day ≡ ``block`` (mod blocks) and the ID areas valid that year."""
        rng, plan = self.rng, self.plan
        for _attempt in range(1000):
            year = plan.years[bisect.bisect_right(plan.year_cum, rng.random() * plan.year_cum[-1])]
            start = self.year_start[year]
            span = min(self.year_start[year + 1], self.last + 1) - start
            day = start + rng.randrange(span)
            day -= (day - block) % self.blocks
            if day < self.first:
                day += self.blocks
            born = dt.date.fromordinal(day)
            codes = plan.by_year.get(born.year)
            if codes:
                return born, codes
        raise InvalidValue("areas", "too few birth years have an area code for this many residents")

    def application(self, i: int) -> Application:
        rng, today = self.rng, self.today
        block, k = i % self.blocks, i // self.blocks
        born, codes = self.birth(block)
        id_area = codes[rng.randrange(len(codes))]
        homes = self.plan.homes[id_area]
        home = homes[rng.randrange(len(homes))] if len(homes) > 1 else homes[0]
        sex = 1 if rng.random() < 0.5 else 2
        slot = (self.a * k + self.c + self.d * block) % _SLOTS
        first17 = f"{id_area}{born.year:04d}{born.month:02d}{born.day:02d}{2 * slot + sex:03d}"
        number = first17 + check_digit(first17)
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        surname = _pick(rng, _SURNAME_PICK)
        adult = age >= 18
        rural = home.rural

        # -- contacts, phones, addresses --------------------------------------------------------
        phones = []
        if age >= 12 and (age < 80 or rng.random() < 0.5):
            phones.append(self.mobile())
            if adult and rng.random() < 0.15:
                phones.append(self.mobile())
        contacts = []
        if not adult:
            contacts.append(Contact(surname + self.given(1, born.year - 28), "5", self.mobile()))
            if rng.random() < 0.6:
                contacts.append(
                    Contact(_pick(rng, _SURNAME_PICK) + self.given(2, born.year - 27), "5", self.mobile())
                )
        elif rng.random() < 0.7:
            if age >= 65:
                child_sex = 1 if rng.random() < 0.5 else 2
                relation = "2" if child_sex == 1 else "3"
                contacts.append(
                    Contact(surname + self.given(child_sex, born.year + 28), relation, self.mobile())
                )
            elif age >= 25 and rng.random() < 0.7:
                partner = 3 - sex
                contacts.append(Contact(self.name(partner, born.year), "1", self.mobile()))
            else:
                contacts.append(Contact(surname + self.given(1, born.year - 28), "5", self.mobile()))
            if rng.random() < 0.15:
                contacts.append(
                    Contact(self.name(1 if rng.random() < 0.5 else 2, born.year), "7", self.mobile())
                )
        addresses = [("1", self.address(home))]
        if adult and rng.random() < 0.3:
            addresses.append(("2", self.address(home)))

        # -- social -----------------------------------------------------------------------------
        occupation = marital = education = ""
        if adult:
            occupation = (
                "8" if age >= 65 else ("5" if rural and rng.random() < 0.6 else str(rng.choice("12344668")))
            )
            marital = self.marital(age)
            education = self.education(born.year, rural)
        payments = self.payments(age, rural)
        ncms = f"{home.code}{rng.randrange(10**10):010d}" if "03" in payments else ""
        record = ""
        if rng.random() < 0.6:
            record = f"{home.code}{rng.randrange(1, 20):03d}{rng.randrange(1, 30):03d}{rng.randrange(1, 100000):05d}"

        # -- health -----------------------------------------------------------------------------
        abo = rh = None
        if rng.random() < 0.5:
            abo = (3, 1, 2, 4, 5)[bisect.bisect_right((0.34, 0.62, 0.86, 0.95), rng.random())]
            roll = rng.random()
            rh = "1" if roll < 0.99 else ("2" if roll < 0.995 else "3")
        flags: dict[str, bool | None] = {}
        psychiatric = None
        other_alert = ""
        if rng.random() < 0.35:
            flags = self.flags(age)
            psychiatric = rng.random() < 0.01
        if age >= 40 and rng.random() < 0.12:
            other_alert = rng.choice(_OTHER_ALERTS)
        allergies: list[tuple[str, str]] = []
        if rng.random() < 0.1:
            for allergen in rng.sample(_ALLERGENS, 2 if rng.random() < 0.2 else 1):
                allergies.append((allergen, rng.choice(_REACTIONS)))
        photo = b""
        if self.photos and (self.photo_fraction >= 1.0 or rng.random() < self.photo_fraction):
            photo = self.photos[rng.randrange(len(self.photos))]

        return Application(
            name=surname + self.given(sex, born.year),
            sex=sex,
            ethnicity=_pick(rng, _ETHNICITY_PICK),
            birth_date=born,
            id_type=IdType.CITIZEN_ID,
            id_number=number,
            city_code=home.city_code,
            photo=photo,
            addresses=addresses,
            phones=phones,
            contacts=contacts,
            occupation=occupation,
            marital_status=marital,
            education=education,
            ncms_number=ncms,
            health_record_number=record,
            abo=abo,
            rh=rh,
            other_alert=other_alert,
            psychiatric=psychiatric,
            allergies=allergies,
            immunizations=self.immunizations(born, age),
            payment_methods=payments,
            **flags,
        )

    # -- parts -----------------------------------------------------------------------------------
    def given(self, sex: int, year: int) -> str:
        rng = self.rng
        pool = _GIVEN[2 if sex == 2 else 1]
        two = rng.random() < (0.5 if year < 1960 else 0.7 if year < 1990 else 0.85)
        first = pool[rng.randrange(len(pool))]
        return first + pool[rng.randrange(len(pool))] if two else first

    def name(self, sex: int, year: int) -> str:
        return _pick(self.rng, _SURNAME_PICK) + self.given(sex, year)

    def mobile(self) -> str:
        rng = self.rng
        return f"{_MOBILE[rng.randrange(len(_MOBILE))]}{rng.randrange(10**8):08d}"

    def address(self, home: _Place) -> str:
        rng = self.rng
        if home.rural and rng.random() < 0.7:
            return f"{home.prefix}{rng.choice(_TOWNS)}{rng.choice(_VILLAGES)}{rng.randrange(1, 300)}号"
        street = f"{home.prefix}{rng.choice(_STREETS)}{rng.randrange(1, 400)}号"
        if rng.random() < 0.6:
            street += f"{rng.choice(_COMMUNITIES)}{rng.randrange(1, 30)}号楼{rng.randrange(1, 6)}单元{rng.randrange(1, 33)}0{rng.randrange(1, 5)}室"
        return street

    def marital(self, age: int) -> str:
        roll = self.rng.random()
        if age < 22:
            return "10"
        if age < 30:
            return "10" if roll < 0.45 else "20"
        if age < 65:
            return "20" if roll < 0.88 else ("40" if roll < 0.95 else "10")
        return "20" if roll < 0.7 else ("30" if roll < 0.95 else "40")

    def education(self, year: int, rural: bool) -> str:
        roll = self.rng.random() + (0.25 if rural else 0.0) + (0.3 if year < 1960 else 0.0)
        for limit, code in ((0.05, "10"), (0.2, "20"), (0.32, "30"), (0.4, "40"), (0.6, "60"), (0.85, "70")):
            if roll < limit:
                return code
        return "80" if roll < 1.2 else "90"

    def payments(self, age: int, rural: bool) -> list[str]:
        rng = self.rng
        roll = rng.random()
        if rural:
            methods = ["03"] if roll < 0.9 else ["07"]
        elif 18 <= age < 60:
            methods = ["01"] if roll < 0.7 else (["02"] if roll < 0.9 else ["07"])
        else:
            methods = ["02"] if roll < 0.8 else ["07"]
        if methods[0] != "07" and rng.random() < 0.05:
            methods.append("05")
        return methods

    def flags(self, age: int) -> dict[str, bool | None]:
        rng = self.rng
        old = age >= 60
        chance = {
            "asthma": 0.03,
            "heart_disease": 0.06 if old else 0.01,
            "cerebrovascular": 0.08 if old else 0.01,
            "epilepsy": 0.005,
            "coagulation_disorder": 0.003,
            "diabetes": 0.12 if age >= 40 else 0.01,
            "glaucoma": 0.02 if old else 0.002,
            "dialysis": 0.003,
            "organ_transplant": 0.001,
            "organ_loss": 0.005,
            "prosthesis": 0.004,
            "pacemaker": 0.01 if old else 0.0,
        }
        return {name: rng.random() < p for name, p in chance.items()}

    def immunizations(self, born: dt.date, age: int) -> list[tuple[str, dt.date]]:
        rng, today = self.rng, self.today
        out: list[tuple[str, dt.date]] = []
        if age < 15:
            for vaccine, months in SCHEDULE:
                due = _add_months(born, months)
                if due > today:
                    break
                given = min(today, due + dt.timedelta(days=rng.randrange(15)))
                out.append((vaccine, given))
            out = out[-10:]  # the card keeps the latest ten (DF02/EF08)
        else:
            if rng.random() < 0.2:
                out.append(("流感疫苗", today - dt.timedelta(days=rng.randrange(min(730, age * 365)))))
            if age >= 60 and rng.random() < 0.1:
                out.append(("肺炎疫苗", today - dt.timedelta(days=rng.randrange(1, 1500))))
        return sorted(out, key=lambda entry: entry[1])


# --- files -------------------------------------------------------------------------------------


def write_csv(applications: Iterable[Application], path: Path) -> int:
    """Write a batch-issuance CSV (UTF-8, header :data:`CSV_COLUMNS`) one row at a time; the
    number of applications written."""
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for app in applications:
            writer.writerow(application_to_row(app))
            written += 1
    return written


__all__ = ["DEFAULT_AREAS", "SCHEDULE", "generate_applications", "portraits", "write_csv"]
