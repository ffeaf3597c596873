"""Key sets: one level of the key hierarchy, one version, one algorithm (DECISIONS.md §11–12, §17).

::

    national K1 set (level 1, from the key ceremony)      national/v1
      └─ D(K1, "PP000000")  province K2 set (level 2)      province/41/v1
           └─ D(K2, "PPCC0000")  optional city set (3)     city/4101/v1
                └─ D(K, chip serial)  the card's own keys  (one set per card, never stored)

Every row of the key table (:mod:`healthcard.keys.table`) is in every set.  Rows diversified
"by card only" (``depth = card``: the DDF1/DF01 update and maintenance keys, card lock, PIN
unblock, master, transport) carry the national ``K1`` unchanged down to the province and city
sets, because a card's value of them is ``D(K1, serial)``; the others take one step per level.
So the issuer derives every card key the same way, ``D(K, serial)`` from its own set, and a SAM
holding the national ``K1`` reaches the same value from the card's factors.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from healthcard.codes import meaning
from healthcard.errors import InvalidValue
from healthcard.keys.primitives import Algorithm, EcbEncryptor, ecb_encryptor, sm3
from healthcard.keys.recipes import diversify, key_check_value
from healthcard.keys.table import KEY_TABLE, Depth


class Level(enum.IntEnum):
    NATIONAL = 1
    PROVINCE = 2
    CITY = 3


@dataclass(frozen=True, order=True)
class KeySetId:
    """Names a key set: ``national/v1``, ``province/41/v1``, ``city/4101/v1``."""

    level: Level
    region: str  # "" (national), 2-digit province, 4-digit city (GB/T 2260 prefix)
    version: int

    def __str__(self) -> str:
        if self.level is Level.NATIONAL:
            return f"national/v{self.version}"
        kind = "province" if self.level is Level.PROVINCE else "city"
        return f"{kind}/{self.region}/v{self.version}"

    @classmethod
    def parse(cls, text: str) -> KeySetId:
        parts = text.strip().split("/")
        try:
            digits = parts[-1].removeprefix("v")
            if not parts[-1].startswith("v") or not digits.isdigit() or not 1 <= int(digits) <= 255:
                raise ValueError
            version = int(digits)
            region = parts[1] if len(parts) == 3 else ""
            if parts[0] == "national" and len(parts) == 2:
                return cls(Level.NATIONAL, "", version)
            if parts[0] == "province" and len(parts) == 3:
                if province_code(region) != region:  # "4101" is not the name of province 41's set
                    raise InvalidValue("province", f"{region!r}: a province set is named by 2 digits")
                return cls(Level.PROVINCE, region, version)
            if parts[0] == "city" and len(parts) == 3:
                if city_code(region) != region:
                    raise InvalidValue("city", f"{region!r}: a city set is named by 4 digits")
                return cls(Level.CITY, region, version)
        except ValueError:
            pass
        raise InvalidValue(
            "key_set", f"{text!r} is not a key set name (national/vN, province/PP/vN or city/PPCC/vN)"
        )


def province_code(text: str) -> str:
    """A 2-digit GB/T 2260 province code (``41`` Henan); the first two digits of a longer code."""
    code = text.strip()[:2]
    if len(code) != 2 or not code.isdigit() or meaning("province", code) is None:
        raise InvalidValue("province", f"{text!r} is not a GB/T 2260 province code (e.g. 41 河南, 44 广东)")
    return code


def city_code(text: str) -> str:
    """A 4-digit city prefix (``4101`` Zhengzhou) of a GB/T 2260 code."""
    code = text.strip()[:4]
    if len(code) != 4 or not code.isdigit() or code[2:] == "00":
        raise InvalidValue("city", f"{text!r} is not a GB/T 2260 city code (e.g. 4101 郑州)")
    province_code(code)
    return code


def province_factor(province: str) -> bytes:
    """``"PP000000"`` in ASCII (DECISIONS.md §11)."""
    return (province_code(province) + "000000").encode("ascii")


def city_factor(city: str) -> bytes:
    """``"PPCC0000"`` in ASCII: the optional level 3 (DECISIONS.md §11)."""
    return (city_code(city) + "0000").encode("ascii")


def national_label(name: str, version: int) -> bytes:
    """The 8-byte factor that makes key ``name`` of national version ``version`` from the
    ceremony's root: the first 8 bytes of ``SM3("healthcard/K1/<name>/v<version>")``."""
    return sm3(f"healthcard/K1/{name}/v{version}".encode("ascii"))[:8]


@dataclass(frozen=True)
class KeySet:
    """The keys of one set by key-table name.  ``repr`` never shows a key."""

    id: KeySetId
    algorithm: Algorithm
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        missing = [s.name for s in KEY_TABLE if s.name not in self.keys]
        if missing:
            raise InvalidValue("key_set", f"{self.id} lacks {', '.join(missing)}")
        if any(len(v) != 16 for v in self.keys.values()):
            raise InvalidValue("key_set", f"{self.id}: every key is 16 bytes")

    def __getitem__(self, name: str) -> bytes:
        return self.keys[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    @property
    def version(self) -> int:
        return self.id.version

    def kcv(self, name: str) -> bytes:
        """Key check value of one key: the first 3 bytes of ``E_K(0…0)``."""
        return key_check_value(self.keys[name], self.algorithm)

    def kcvs(self) -> dict[str, str]:
        return {name: self.kcv(name).hex().upper() for name in self.keys}


def national_set(root: bytes, version: int = 1, algorithm: Algorithm = Algorithm.SM4) -> KeySet:
    """The level-1 set a key ceremony makes from its root secret: ``K1 = D(root, label)``."""
    if len(root) != 16:
        raise InvalidValue("root", "the ceremony's root secret is 16 bytes")
    if not 1 <= version <= 255:
        raise InvalidValue("version", f"{version} is not a key version 1..255")
    keys = {s.name: diversify(root, national_label(s.name, version), algorithm) for s in KEY_TABLE}
    return KeySet(KeySetId(Level.NATIONAL, "", version), algorithm, keys)


def derive_province(national: KeySet, province: str) -> KeySet:
    """A province's level-2 set: ``K2 = D(K1, "PP000000")`` for two-level keys, ``K1`` for the
    keys diversified by card only (DECISIONS.md §11–12)."""
    if national.id.level is not Level.NATIONAL:
        raise InvalidValue("key_set", f"{national.id} is not a national set")
    code = province_code(province)
    return _step_down(national, province_factor(code), KeySetId(Level.PROVINCE, code, national.version))


def _step_down(parent: KeySet, factor: bytes, child: KeySetId) -> KeySet:
    """One level down: the two-level keys diversified by ``factor``, the card-only keys as they are."""
    keys = {
        s.name: diversify(parent[s.name], factor, parent.algorithm)
        if s.depth is Depth.PROVINCE_CARD
        else parent[s.name]
        for s in KEY_TABLE
    }
    return KeySet(child, parent.algorithm, keys)


def derive_city(province: KeySet, city: str) -> KeySet:
    """The optional level 3: ``K3 = D(K2, "PPCC0000")`` for two-level keys (DECISIONS.md §11)."""
    if province.id.level is not Level.PROVINCE:
        raise InvalidValue("key_set", f"{province.id} is not a province set")
    code = city_code(city)
    if code[:2] != province.id.region:
        raise InvalidValue("city", f"city {code} is not in province {province.id.region}")
    return _step_down(province, city_factor(code), KeySetId(Level.CITY, code, province.version))


@dataclass(frozen=True)
class CardKeySet:
    """One card's own keys (``D(K, serial)`` for every row), with the version and algorithm the
    card will announce in its ATR."""

    serial: bytes
    version: int
    algorithm: Algorithm
    city_level: bool
    keys: Mapping[str, bytes] = field(repr=False)

    def __getitem__(self, name: str) -> bytes:
        return self.keys[name]


def _check_serial(serial: bytes) -> bytes:
    if len(serial) != 8:
        raise InvalidValue("chip_serial", f"{len(serial)} bytes, a chip serial is 8")
    return serial


class CardKeyDeriver:
    """Derives card key sets from an issuing set (province or city), fast: one reusable ECB
    context per key, so a card costs one block encryption per key (``make bench``)."""

    def __init__(self, issuing: KeySet) -> None:
        if issuing.id.level is Level.NATIONAL:
            raise InvalidValue(
                "key_set", "cards are issued from a province (or city) set, not the national one"
            )
        self.issuing = issuing
        self._names = tuple(issuing.keys)
        self._contexts: tuple[EcbEncryptor, ...] = tuple(
            ecb_encryptor(issuing.algorithm, issuing[n]) for n in self._names
        )
        self._block = issuing.algorithm.block_size

    def __repr__(self) -> str:
        return f"CardKeyDeriver({self.issuing.id})"

    @staticmethod
    def _input(serial: bytes) -> bytes:
        return serial + bytes(b ^ 0xFF for b in serial)

    def derive(self, serial: bytes) -> CardKeySet:
        block = self._input(_check_serial(serial))
        keys = {n: ctx.update(block) for n, ctx in zip(self._names, self._contexts, strict=True)}
        return self._card_set(serial, keys)

    def derive_many(self, serials: Iterable[bytes]) -> list[CardKeySet]:
        """Many cards at once: one ``update`` per key over all the cards' factors."""
        serial_list = [_check_serial(s) for s in serials]
        data = b"".join(self._input(s) for s in serial_list)
        columns = [ctx.update(data) for ctx in self._contexts]
        return [
            self._card_set(
                s, {n: col[16 * i : 16 * i + 16] for n, col in zip(self._names, columns, strict=True)}
            )
            for i, s in enumerate(serial_list)
        ]

    def _card_set(self, serial: bytes, keys: dict[str, bytes]) -> CardKeySet:
        return CardKeySet(
            serial,
            self.issuing.version,
            self.issuing.algorithm,
            self.issuing.id.level is Level.CITY,
            keys,
        )


def card_key_set(issuing: KeySet, serial: bytes) -> CardKeySet:
    """The card's key set for chip ``serial`` from a province (or city) set: what the issuer
    loads with WRITE KEY at personalisation (see :mod:`healthcard.card.personalise`)."""
    return CardKeyDeriver(issuing).derive(serial)
