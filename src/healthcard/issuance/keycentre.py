"""The key centre: the operations of the national and provincial key custodians over a key store.

::

    ceremony ──▶ national/v1 (K1 set) + sm2/root/1 (national root CA)
        │  derive_province("41")
        ▼
    province/41/v1 (K2 set) + sm2/issuer/41 (issuer key, 180-byte certificate)
        │  card_keys("41", chip serial)          │  sam(...)
        ▼                                        ▼
    the card's own keys (WRITE KEY)          SAM image: K1 (current + previous version),
                                             SM2 key, 190-byte SAM certificate

Every secret stays in the :class:`~healthcard.keys.keystore.KeyStore` (sealed) or inside the
images it personalises (sealed by :mod:`healthcard.card.image`); what leaves in clear is only
public: check values, public keys, certificates, the trust store.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from healthcard.card.cos import CardState
from healthcard.card.sam import SamKeys, build_sam
from healthcard.clock import Clock, local_date
from healthcard.errors import InvalidValue, KeyStoreError
from healthcard.keys import ceremony, certificates, sm2
from healthcard.keys.keyset import (
    CardKeyDeriver,
    CardKeySet,
    KeySet,
    KeySetId,
    Level,
    derive_city,
    derive_province,
    national_set,
    province_code,
)
from healthcard.keys.keystore import KeyStore
from healthcard.keys.primitives import Algorithm
from healthcard.keys.recipes import key_check_value
from healthcard.keys.table import KEY_TABLE, Holder

ROOT_INDEX = 1
#: the issuer code of a province's card centre in its certificate: province code + "000000001"
ISSUER_SUFFIX = "000000001"


def issuer_code(province: str) -> str:
    return province_code(province) + ISSUER_SUFFIX


def sam_masters(national: KeySet, role: Holder) -> dict[int, bytes]:
    """The level-1 keys a SAM of ``role`` holds, by SAM key index (CARD-SPEC.md §6.3): a
    terminal SAM the read, update and maintenance keys; an issuer SAM also card lock and PIN
    unblock (DECISIONS.md §12)."""
    if role is Holder.ISSUER_HSM:
        raise InvalidValue("role", "an HSM is not a SAM")
    return {s.sam_index: national[s.name] for s in KEY_TABLE if s.sam_index is not None and s.held_by(role)}


@dataclass(frozen=True)
class SamRequest:
    """What a terminal's SAM is made for."""

    serial: bytes  # the SAM chip's 8-byte serial
    terminal_number: bytes  # province, city, issuer, 3-byte serial (SAM file 0016)
    role: Holder = Holder.TERMINAL_SAM
    pin: str = "123456"
    years: int = 10


def terminal_number(text: str) -> bytes:
    """A 12-digit terminal number ``PPCCIISSSSSS`` (province, city, issuer, serial) as 6 bytes."""
    digits = text.strip()
    if len(digits) != 12 or not digits.isdigit():
        raise InvalidValue(
            "terminal", f"{text!r}: a terminal number is 12 digits PPCCIISSSSSS (e.g. 410100000001)"
        )
    province_code(digits[:2])
    return bytes.fromhex(digits)


class KeyCentre:
    """Key-centre operations; every secret it makes goes into ``store`` before anything else."""

    def __init__(
        self, store: KeyStore, clock: Clock, rng: Callable[[int], bytes] = secrets.token_bytes
    ) -> None:
        self.store = store
        self.clock = clock
        self.rng = rng
        self._derivers: dict[KeySetId, CardKeyDeriver] = {}

    # --- national level -------------------------------------------------------------------
    def ceremony(self, root: bytes, algorithm: Algorithm = Algorithm.SM4) -> KeySet:
        """Store the national set of the next version made from the ceremony's ``root`` (the
        secret the custodians' components rebuild), and the national SM2 root CA key if there
        is none yet.  The first ceremony makes version 1; later ones are rollovers."""
        version = (self.store.current_version() or 0) + 1
        national = national_set(root, version, algorithm)
        stored = {e.id: e.kcv for e in self.store.entries() if e.kind == "keyset"}  # check values are public
        for held in self.store.versions():  # the same components twice would repeat a national set
            again = national_set(root, held, algorithm).kcvs()
            if stored[f"national/v{held}"] == again:
                raise InvalidValue("components", f"these components made national/v{held} already")
        if not self.store.has(f"sm2/root/{ROOT_INDEX}"):
            private, public = sm2.generate_keypair(self.rng)
            self.store.put_secret(
                f"sm2/root/{ROOT_INDEX}",
                "sm2",
                private,
                algorithm="SM2",
                public={"public": public.hex().upper(), "certifier": certificates.ROOT_CERTIFIER_ID},
            )
        if not self.store.has("ehc/security-root"):
            # the e-health-card system's security key (CARD-SPEC.md §9.1): the root of EHC IDs
            security = self.rng(16)
            kcv = key_check_value(security).hex().upper()
            self.store.put_secret("ehc/security-root", "secret", security, algorithm="SM4", kcv=kcv)
        self.store.put_keyset(national)
        return national

    def ensure_demo_keys(self, provinces: Iterable[str]) -> bool:
        """The demo's keys, made on first use: national keys from a throw-away three-component
        ceremony (only when the store holds none), and each province's set of the current
        version.  True when this call held the ceremony."""
        made = self.store.current_version() is None
        if made:
            _, parts = ceremony.generate(3)
            self.ceremony(ceremony.combine(parts, 3))
        for province in provinces:
            if not self.store.has(f"province/{province}/v{self.store.current_version()}"):
                self.derive_province(province)
        return made

    def national(self, version: int | None = None) -> KeySet:
        version = version or self._current(Level.NATIONAL, "")
        return self.store.keyset(KeySetId(Level.NATIONAL, "", version))

    def _current(self, level: Level, region: str) -> int:
        version = self.store.current_version(level, region)
        if version is None:
            what = "national" if level is Level.NATIONAL else f"{level.name.lower()} {region}"
            raise KeyStoreError(f"the key store holds no {what} key set")
        return version

    def trust_store(self) -> certificates.TrustStore:
        """The national root public keys, for every terminal and verifier."""
        trust = certificates.TrustStore()
        for entry in self.store.entries():
            if entry.id.startswith("sm2/root/"):
                trust.add(int(entry.id.rsplit("/", 1)[1]), bytes.fromhex(entry.public["public"]))
        return trust

    def _root_private(self) -> bytes:
        return self.store.secret(f"sm2/root/{ROOT_INDEX}")

    def _validity(self, years: int) -> tuple[dt.date, dt.date]:
        today = local_date(self.clock)
        try:
            until = today.replace(year=today.year + years)
        except ValueError:  # 29 February into a common year
            until = today.replace(year=today.year + years, day=28)
        return today, until - dt.timedelta(days=1)

    def _serial(self) -> int:
        return int.from_bytes(self.rng(3), "big") or 1

    # --- province level ---------------------------------------------------------------------
    def derive_province(self, province: str, version: int | None = None) -> KeySet:
        """Store province ``province``'s level-2 set of the national ``version`` (default: the
        current one), and its issuer SM2 key with a certificate from the national root."""
        national = self.national(version)
        keyset = derive_province(national, province)
        self.store.put_keyset(keyset)
        self.issuer_certificate(keyset.id.region)
        return keyset

    def derive_city(self, city: str, version: int | None = None) -> KeySet:
        """Store the optional level-3 set of ``city`` (``PPCC``)."""
        province = self.province(city[:2], version)
        keyset = derive_city(province, city)
        self.store.put_keyset(keyset)
        return keyset

    def province(self, province: str, version: int | None = None) -> KeySet:
        code = province_code(province)
        version = version or self._current(Level.PROVINCE, code)
        return self.store.keyset(KeySetId(Level.PROVINCE, code, version))

    def issuer_certificate(self, province: str) -> bytes:
        """The province card centre's 180-byte issuer certificate (made on first use)."""
        code = province_code(province)
        entry = f"sm2/issuer/{code}"
        if not self.store.has(entry):
            private, public = sm2.generate_keypair(self.rng)
            valid_from, valid_until = self._validity(20)
            cert = certificates.issue_issuer_certificate(
                self._root_private(),
                ROOT_INDEX,
                issuer_code(code),
                public,
                valid_from,
                valid_until,
                self._serial(),
            )
            self.store.put_secret(
                entry,
                "sm2",
                private,
                algorithm="SM2",
                public={"public": public.hex().upper(), "certificate": cert.hex().upper()},
            )
        return bytes.fromhex(self.store.public(entry)["certificate"])

    def sign_as_issuer(self, province: str, message: bytes) -> tuple[bytes, bytes]:
        """``(SM2 signature, 180-byte issuer certificate)`` of ``message`` by the card centre of
        ``province`` (default user id), e.g. for its hot list.  The province's issuer key must
        exist already (:meth:`derive_province` makes it): signing never makes a key on the side."""
        code = province_code(province)
        entry = f"sm2/issuer/{code}"
        if not self.store.has(entry):
            raise KeyStoreError(
                f"the key store holds no issuer key of province {code}: derive the province first"
            )
        # k from the operating system, not self.rng: a seeded test rng would repeat k across
        # signatures, and two signatures with one k give the private key away
        signature = sm2.sign(self.store.secret(entry), bytes(message))
        return signature, bytes.fromhex(self.store.public(entry)["certificate"])

    def card_keys(self, issuing: KeySet, serial: bytes) -> CardKeySet:
        """The card's own key set: what personalisation loads with WRITE KEY (one reusable
        deriver per issuing set: a batch of cards costs one block encryption per key)."""
        deriver = self._derivers.get(issuing.id)
        if deriver is None or deriver.issuing != issuing:  # the same id in another store: rebuild
            deriver = self._derivers[issuing.id] = CardKeyDeriver(issuing)
        return deriver.derive(serial)

    def deriver(self, province: str, version: int | None = None) -> CardKeyDeriver:
        return CardKeyDeriver(self.province(province, version))

    # --- SAMs ---------------------------------------------------------------------------------
    def sam(self, request: SamRequest) -> CardState:
        """A personalised SAM image: the current national key version and the previous one (if
        any), an SM2 key pair made here and certified by the national root, the issuer
        certificate of the terminal's province, the terminal number."""
        if len(request.serial) != 8:
            raise InvalidValue("serial", "a SAM chip serial is 8 bytes (16 hex digits)")
        province = f"{request.terminal_number[0]:02X}"
        current = self._current(Level.NATIONAL, "")
        versions = [v for v in (current, current - 1) if v in self.store.versions()]
        keys = []
        for v in versions:
            national = self.national(v)
            keys.append(SamKeys(v, national.algorithm, sam_masters(national, request.role)))
        private, public = sm2.generate_keypair(self.rng)
        valid_from, valid_until = self._validity(request.years)
        sam_cert = certificates.issue_sam_certificate(
            self._root_private(),
            ROOT_INDEX,
            request.serial,
            request.terminal_number,
            public,
            valid_from,
            valid_until,
            self._serial(),
        )
        return build_sam(
            request.serial,
            keys,
            request.terminal_number,
            pin=request.pin,
            issuer_certificate=self.issuer_certificate(province),
            sam_certificate=sam_cert,
            sign_key=private,
            issuer_id=bytes.fromhex(issuer_code(province).ljust(16, "F")),
            valid_from=bytes.fromhex(valid_from.strftime("%Y%m%d")),
            valid_until=bytes.fromhex(valid_until.strftime("%Y%m%d")),
        )
