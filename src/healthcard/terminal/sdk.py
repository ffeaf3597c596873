"""The terminal SDK: typed reads and writes of every file of the health card, talking to the
resident's card and the terminal's SAM over any :class:`~healthcard.terminal.transport.Transport`.

Authentication and secure messaging follow CARD-SPEC.md §5.4 and §6.3–6.4 to the byte: the
SAM derives the card's session key from its level-1 key, the card's chip serial (from the ATR)
and, for two-level keys, the province factor (from DDF1/EF05 tag 39), and the card checks
the cryptogram.  Every write is encoded completely before the first APDU is sent, so a bad
value fails with a field-named error and nothing reaches the card.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from healthcard.card import codecs
from healthcard.card.apdu import CommandAPDU, ResponseAPDU
from healthcard.card.atr import KeyInfo, chip_serial, key_info
from healthcard.card.filesystem import SMLevel
from healthcard.card.personalise import Value, cyclic_record, encode_item, photo_file
from healthcard.card.profile import (
    ALERT_FLAGS,
    DF_FIDS,
    ED_DATA_LENGTH,
    EE_DATA_LENGTH,
    PROFILE_32K,
    Item,
    Profile,
    item,
    visit_item,
    visit_items,
)
from healthcard.card.sw import describe, exception_for, is_refusal, is_success
from healthcard.codes import meaning
from healthcard.errors import (
    CardError,
    CardRemoved,
    CertificateError,
    HotListed,
    InvalidValue,
    KeyVersionError,
    RecordInvalid,
    RecordNotFound,
    SamError,
    SamRemoved,
    TransportError,
)
from healthcard.keys import recipes
from healthcard.keys.certificates import (
    ED_RECORD_LENGTH,
    EE_RECORD_LENGTH,
    SAM_CERTIFICATE_LENGTH,
    Certificate,
    TrustStore,
    verify_visit_record,
    visit_digest,
    visit_tail,
)
from healthcard.keys.primitives import Algorithm, sm3
from healthcard.keys.table import KEY_TABLE, Depth, KeySpec, KeyUse, maintenance_key
from healthcard.terminal.hotlist import HotListHit, TerminalHotList
from healthcard.terminal.pcsc import PcscError
from healthcard.terminal.records import (
    Address,
    Allergy,
    CardValidity,
    Code,
    Contact,
    Diagnosis,
    Documents,
    Fee,
    Holder,
    Immunization,
    InpatientRecord,
    IssuerInfo,
    MedicalAlerts,
    Medication,
    Occupation,
    OutpatientRecord,
    Summary,
)
from healthcard.terminal.transport import Transport

#: the commands' names in :class:`~healthcard.errors.CardRemoved` / ``SamRemoved`` messages
_CARD_STEPS = {
    0xA4: "SELECT",
    0xB0: "READ BINARY",
    0xD6: "UPDATE BINARY",
    0xB2: "READ RECORD",
    0xDC: "UPDATE RECORD",
    0x84: "GET CHALLENGE",
    0x82: "EXTERNAL AUTHENTICATE",
    0xD2: "WRITE RECORD (index flag 00)",
    0x0C: "ERASE RECORD (index flag FF)",
}
_SAM_STEPS = {
    0xA4: "SELECT",
    0xB0: "READ BINARY (certificate)",
    0x20: "VERIFY (PIN)",
    0xDE: "LOAD KEY (diversify)",
    0xFA: "CIPHER",
    0xF8: "SIGN",
    0xC0: "GET RESPONSE",
}

logger = logging.getLogger(__name__)


def _bare(error: TransportError) -> bool:
    """A transport's bare failure (``TransportError``, ``PcscError``), which the SDK turns into
    :class:`CardRemoved` / :class:`SamRemoved` naming the step; a transport that raises a named
    error of its own (the agent's readers: ``NoCard``, ``CardRemoved``, ``SamMissing``) keeps it."""
    return type(error) in (TransportError, PcscError)


def _key_for(df: str, kid: int) -> KeySpec:
    return next(s for s in KEY_TABLE if s.df == df and s.kid == kid and s.use is KeyUse.AUTH)


def _flag(text: str) -> bool | None:
    return {"01": True, "00": False}.get(text)


def _flag_byte(value: bool | None) -> int:
    return 0xFF if value is None else int(value)


#: told of each refusal by the card: (chip serial, the command's header CLA INS P1 P2, SW)
RefusalHook = Callable[[bytes, bytes, int], None]


class HealthCardTerminal:
    """A reader with a user-card slot and a SAM slot.  ``on_refusal`` is told of every refusal
    by the card that may be an attack (a failed authentication or PIN, a bad MAC, a missing
    challenge: :func:`~healthcard.card.sw.is_refusal`) — logged as warnings with the chip serial,
    the command's header and the SW, and reported by the reader agent to the platform's audit
    (docs/card.md §13); never with the command's data, which may carry a cryptogram or a PIN."""

    def __init__(
        self,
        card: Transport,
        sam: Transport,
        sam_pin: str = "123456",
        profile: Profile = PROFILE_32K,
        extended: bool = True,
        trust: TrustStore | None = None,
        sign_visits: bool = True,
        hotlist: TerminalHotList | None = None,
        on_refusal: RefusalHook | None = None,
    ) -> None:
        self.card = card
        self.sam = sam
        self.on_refusal = on_refusal
        self.sam_pin = sam_pin
        self.profile = profile
        self.extended = extended  # the card and reader take extended-length APDUs
        self.trust = trust  # national roots, to verify visit-record signatures
        self.sign_visits = sign_visits and profile.tail  # the 8K profile has no signature tail
        self.hotlist = hotlist  # the province hot lists this terminal loaded (terminal.hotlist)
        self.serial = b""
        self.province = b""
        self.city = b""
        self.city_code = ""
        self.card_keys = KeyInfo(Algorithm.SM4, 0)
        self.sam_keys = KeyInfo(Algorithm.SM4, 0)
        self._sam_certificate: bytes | None = None
        self._df = "MF"
        self._auth: set[str] = set()
        self._file = "MF"  # the file the last SELECT aimed at, to name a step that got no answer

    # --- session -----------------------------------------------------------------------
    def open(self) -> None:
        """Power both cards, unlock the SAM, learn the card's diversification factors and key
        version (from the two ATRs, DECISIONS.md §17).

        A card whose chip serial is on :attr:`hotlist` is refused with :class:`HotListed`
        before the SAM is touched; only its card number is read (DDF1/EF05 tag 08, free read)."""
        atr = self.card.connect()
        self.serial, self.card_keys = chip_serial(atr), key_info(atr)
        self._df, self._auth = "MF", set()
        self._sam_certificate = None
        hit = self.hotlist.find(self.serial) if self.hotlist is not None else None
        if hit is not None:
            self._refuse(hit)
        self.sam_keys = key_info(self.sam.connect())
        self._sam(CommandAPDU(0x00, 0xA4, 0, 0, bytes.fromhex("3F00")))
        self._sam(CommandAPDU(0x00, 0xA4, 0, 0, bytes.fromhex("DF01")))
        self._sam(CommandAPDU(0x00, 0x20, 0, 0, bytes.fromhex(self.sam_pin)))
        self.select_df("DDF1")
        self._select_ef(0xEF05)
        city = self._cmd(0x00, 0xB2, 0x39, 0x00, le=5)
        self.city_code = codecs.decode_cn(city[2:])
        self.province = recipes.province_factor(self.city_code)
        self.city = (self.city_code[:4] + "0000").encode("ascii")

    def _refuse(self, hit: HotListHit) -> NoReturn:
        """Raise :class:`HotListed` for a card on the hot list, having read its card number (and
        nothing else: DDF1/EF05 is the file anyone may read)."""
        entry = hit.entry
        number = entry.card_number
        try:  # the number printed on the card, for the clerk; a locked card may refuse even this
            self.select_df("DDF1")
            self._select_ef(0xEF05)
            tlv = self._cmd(0x00, 0xB2, 0x08, 0x00, le=256)  # READ RECORD by tag 08 (卡号)
            if len(tlv) >= 2 and tlv[0] == 0x08:
                number = codecs.decode_ans(tlv[2 : 2 + tlv[1]]) or number
        except CardError:
            pass
        raise HotListed(
            f"card {number} (chip {self.serial.hex().upper()}) is on the hot list of province "
            f"{hit.province} v{hit.version}: {entry.reason.value}",
            card_number=number,
            reason=entry.reason.value,
        )

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm of the card's keys, from its ATR."""
        try:
            return Algorithm(self.card_keys.algorithm)
        except ValueError:
            raise KeyVersionError(
                f"the card's keys use algorithm {self.card_keys.algorithm:02X}, unknown"
            ) from None

    def _version_suffix(self) -> bytes:
        """Empty when the card's keys are the SAM's current version, the version byte when they
        are the previous one the SAM still holds; otherwise the card cannot be authenticated."""
        card, sam = self.card_keys.version, self.sam_keys
        if card == sam.version and card:
            return b""
        if sam.previous is not None and card == sam.previous:
            return bytes([card])
        held = " and ".join(str(v) for v in (sam.version, sam.previous) if v)
        if not card:
            raise KeyVersionError("the card carries no key version in its ATR: it is not personalised")
        if card > sam.version:
            hint = "this SAM predates the national key rollover: replace the SAM"
        else:
            hint = "the card predates the keys this SAM holds: the card must be replaced"
        raise KeyVersionError(f"the card's keys are version {card}; this SAM holds version {held} ({hint})")

    def close(self) -> None:
        self.card.disconnect()
        self.sam.disconnect()

    def __enter__(self) -> HealthCardTerminal:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- APDU plumbing -------------------------------------------------------------------
    def _cmd(self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
        try:
            response = self.card.transmit(CommandAPDU(cla, ins, p1, p2, data, le))
        except TransportError as error:
            step = f"{_CARD_STEPS.get(ins, f'INS {ins:02X}')} {self._file}"
            self._lost()
            if not _bare(error):
                raise
            raise CardRemoved(step, str(error)) from error
        if not is_success(response.sw):
            if is_refusal(response.sw):
                logger.warning(
                    "card %s refused %02X %02X %02X %02X: %04X %s",
                    self.serial.hex().upper() or "-",
                    cla,
                    ins,
                    p1,
                    p2,
                    response.sw,
                    describe(response.sw),
                )
                if self.on_refusal is not None:
                    self.on_refusal(self.serial, bytes((cla, ins, p1, p2)), response.sw)
            raise exception_for(response.sw)
        return response.data

    def _lost(self) -> None:
        """The card or the SAM is gone: what this side knew of the session is void."""
        self._df, self._auth, self._file = "MF", set(), "MF"

    def _sam_transmit(self, cmd: CommandAPDU) -> ResponseAPDU:
        try:
            return self.sam.transmit(cmd)
        except TransportError as error:
            step = f"SAM {_SAM_STEPS.get(cmd.ins, f'INS {cmd.ins:02X}')}"
            self._lost()
            if not _bare(error):
                raise
            raise SamRemoved(step, str(error)) from error

    def _sam(self, cmd: CommandAPDU) -> bytes:
        response = self._sam_transmit(cmd)
        if response.sw1 == 0x61:
            response = self._sam_transmit(CommandAPDU(0x00, 0xC0, 0, 0, le=response.sw2 or 256))
        if not is_success(response.sw):
            raise SamError(response.sw, exception_for(response.sw).args[0])
        return response.data

    def select_df(self, df: str) -> None:
        if self._df == df:
            return
        if df != "DDF1" and self._df == "MF":
            self.select_df("DDF1")
        self._file = df
        self._cmd(0x00, 0xA4, 0, 0, DF_FIDS[df].to_bytes(2, "big"))
        self._df, self._auth = df, set()

    def _select_ef(self, fid: int) -> None:
        self._file = f"{self._df}/{self._ef_name(fid)}"
        self._cmd(0x00, 0xA4, 0, 0, fid.to_bytes(2, "big"))

    @staticmethod
    def _ef_name(fid: int) -> str:
        return f"{fid:04X}" if fid >> 8 in (0xED, 0xEE) else f"EF{fid & 0xFF:02X}"

    def _factors(self, spec: KeySpec) -> bytes:
        if spec.depth is not Depth.PROVINCE_CARD:
            return self.serial
        return self.serial + self.province + (self.city if self.card_keys.city_level else b"")

    def _challenge(self) -> bytes:
        return self._cmd(0x00, 0x84, 0, 0, le=8)

    def _load(self, spec: KeySpec, challenge: bytes) -> None:
        assert spec.sam_p1 is not None and spec.sam_index is not None
        p1 = spec.sam_p1
        if self.card_keys.city_level and spec.depth is Depth.PROVINCE_CARD:
            p1 = 0x60 | (p1 & 0x0F)  # three levels: province, city, card
        data = self._factors(spec) + challenge + self._version_suffix()
        self._sam(CommandAPDU(0x80, 0xDE, p1, spec.sam_index, data))

    def authenticate(self, key_name: str) -> None:
        """Read-key (RK) or update-key (UK) authentication, CARD-SPEC.md §6.4."""
        spec = next(s for s in KEY_TABLE if s.name == key_name)
        self._version_suffix()  # refuse a card of a key version the SAM lacks, before any APDU
        self.select_df(spec.df)
        if key_name in self._auth:
            return
        if key_name.startswith("RK"):
            challenge = self._challenge()
            plain = recipes.READ_AUTH_PLAINTEXT
        else:
            plain = self._challenge()  # R1 travels in clear
            challenge = self._challenge()  # R2 goes to the SAM; the card keeps it
        self._load(spec, challenge)
        c = self._sam(CommandAPDU(0x80, 0xFA, 0, 0, plain + bytes(8)))
        self._cmd(0x00, 0x82, 0x00, spec.kid, recipes.fold(c) + plain + bytes([self.algorithm]))
        self._auth.add(key_name)

    def _sm_body(self, df: str, header: bytes, payload: bytes | None) -> bytes:
        """Secure-messaging body for a write in ``df``: ciphertext+MAC, or MAC only when
        ``payload`` is None (CARD-SPEC.md §5.4)."""
        stk = maintenance_key(df)
        challenge = self._challenge()
        self._load(stk, challenge)
        block = self.algorithm.block_size
        ciphertext = b""
        if payload is not None:
            ciphertext = self._sam(
                CommandAPDU(0x80, 0xFA, 0, 0, recipes.pad(bytes([len(payload)]) + payload, block))
            )
            self._load(stk, challenge)  # the SDK loads the key again before the MAC
        lc = len(ciphertext) + 4
        mac = self._sam(
            CommandAPDU(
                0x80, 0xFA, 0x05, 0x00, bytes(16) + recipes.pad(header + bytes([lc]) + ciphertext, block)
            )
        )
        return ciphertext + mac[:4]

    # --- generic file access ---------------------------------------------------------------
    def _open_file(self, df: str, ef: str, write: bool = False) -> None:
        spec = self.profile.file(df, ef)
        condition = spec.update if write else spec.read
        if condition not in (0x00, 0xFE, 0xFF):
            self.authenticate(_key_for(df, condition).name)
        self.select_df(df)
        self._select_ef(spec.fid)

    def _read_all_records(self, df: str, ef: str, expected: int) -> bytes:
        self._open_file(df, ef)
        if expected > 256 and not self.extended:
            # short APDUs only: one READ RECORD per record, as the national SDK does
            out = bytearray()
            for number in range(1, 255):
                try:
                    out += self._cmd(0x00, 0xB2, number, 0x04, le=256)
                except RecordNotFound:
                    break
            return bytes(out)
        try:
            return self._cmd(0x00, 0xB2, 0x01, 0x05, le=256 if expected <= 256 else 65536)
        except RecordNotFound:  # an empty cyclic file
            return b""

    def read_items(self, df: str, ef: str) -> dict[str, str]:
        """Every item of a TLV record file, decoded to text, by English item name."""
        items = self.profile.items(df, ef)
        raw = self._read_all_records(df, ef, sum(i.length + 2 for i in items))
        by_tag = {i.tag: i for i in items}
        out: dict[str, str] = {}
        pos = 0
        while pos + 2 <= len(raw):
            tag, length = raw[pos], raw[pos + 1]
            value = raw[pos + 2 : pos + 2 + length]
            pos += 2 + length
            if tag in by_tag:
                it = by_tag[tag]
                out[it.name] = codecs.decode(it.coding, value)
        return out

    def write_items(self, df: str, ef: str, values: Mapping[str, Value]) -> None:
        """Update TLV items by English name, each record with the SM the file demands."""
        items = {i.name: i for i in self.profile.items(df, ef)}
        encoded: list[tuple[Item, bytes]] = []
        for name, value in values.items():
            if name not in items:
                raise InvalidValue(f"{df}/{ef}/{name}", "no such data item in this file")
            it = items[name]
            assert it.tag is not None
            encoded.append((it, bytes([it.tag, it.length]) + encode_item(it, value)))
        spec = self.profile.file(df, ef)
        self._open_file(df, ef, write=True)
        for it, record in encoded:
            assert it.record is not None
            if spec.sm & SMLevel.ENC:
                header = bytes((0x04, 0xDC, it.record, 0x04))
                self._cmd(0x04, 0xDC, it.record, 0x04, self._sm_body(df, header, record))
            else:
                self._cmd(0x00, 0xDC, it.record, 0x04, record)

    def _read_binary(self, offset: int, length: int) -> bytes:
        chunk = 65535 if self.extended else 0x80
        out = bytearray()
        while len(out) < length:
            n = min(chunk, length - len(out))
            pos = offset + len(out)
            out += self._cmd(0x00, 0xB0, pos >> 8, pos & 0xFF, le=n)
        return bytes(out)

    def _update_binary(self, offset: int, data: bytes) -> None:
        chunk = 4096 if self.extended else 0x80
        for i in range(0, len(data), chunk):
            pos = offset + i
            self._cmd(0x00, 0xD6, pos >> 8, pos & 0xFF, data[i : i + chunk])

    def _read_cyclic(self, df: str, ef: str) -> list[dict[str, str]]:
        spec = self.profile.file(df, ef)
        raw = self._read_all_records(df, ef, spec.record_length * spec.record_count)
        rows = []
        for i in range(0, len(raw), spec.record_length):
            rec = raw[i : i + spec.record_length]
            if not any(rec) or set(rec) == {0xFF}:
                continue
            rows.append(
                {
                    it.name: codecs.decode(it.coding, rec[it.offset or 0 : (it.offset or 0) + it.length])
                    for it in self.profile.items(df, ef)
                }
            )
        return rows

    def _write_cyclic(self, df: str, ef: str, values: Sequence[Value]) -> None:
        spec = self.profile.file(df, ef)
        record = cyclic_record(self.profile.items(df, ef), values, spec.record_length)
        self._open_file(df, ef, write=True)
        header = bytes((0x04, 0xDC, 0x00, 0x03))
        self._cmd(0x04, 0xDC, 0x00, 0x03, self._sm_body(df, header, record))

    # --- typed reads ------------------------------------------------------------------------
    def read_issuer(self) -> IssuerInfo:
        v = self.read_items("DDF1", "EF05")
        return IssuerInfo(
            card_category=Code.of("card_category", v.get("card_category", "")),
            spec_version=v.get("spec_version", ""),
            issuer_name=v.get("issuer_name", ""),
            issuer_code=v.get("issuer_code", ""),
            issuer_certificate=bytes.fromhex(v.get("issuer_certificate", "")),
            issue_date=codecs.parse_date("issue_date", v.get("issue_date", "")),
            card_number=v.get("card_number", ""),
            security_code=v.get("security_code", ""),
            issue_serial=v.get("issue_serial", ""),
            city_code=v.get("city_code", ""),
        )

    def read_holder(self) -> Holder:
        v = self.read_items("DDF1", "EF06")
        return Holder(
            name=v.get("name", ""),
            sex=Code.of("sex", v.get("sex", "")),
            ethnicity=Code.of("ethnicity", v.get("ethnicity", "")),
            birth_date=codecs.parse_date("birth_date", v.get("birth_date", "")),
            citizen_id=v.get("citizen_id", ""),
        )

    def read_photo(self) -> bytes:
        self._open_file("DDF1", "EF07")
        length = int.from_bytes(self._read_binary(0, 2), "big")
        if length == 0:
            return b""
        if length + 2 > 3072:  # the national SDK refuses len + 2 > 3072 (IRV_DDF1EF07_DATAERR)
            raise InvalidValue(
                "DDF1/EF07/photo", f"length field says {length} bytes, more than the file holds"
            )
        return self._read_binary(2, length)

    def read_validity(self) -> CardValidity:
        v = self.read_items("DDF1", "EF08")
        return CardValidity(
            expiry_date=codecs.parse_date("expiry_date", v.get("expiry_date", "")),
            phones=[p for p in (v.get("phone1", ""), v.get("phone2", "")) if p],
            payment_methods=[
                c for n in (1, 2, 3) if (c := Code.of("payment_method", v.get(f"payment_method{n}", "")))
            ],
        )

    def read_addresses(self) -> list[Address]:
        v = self.read_items("DF01", "EF05")
        return [
            Address(Code.of("address_type", v.get(f"address_type{n}", "")), v.get(f"address{n}", ""))
            for n in (1, 2)
            if v.get(f"address{n}")
        ]

    def read_contacts(self) -> list[Contact]:
        v = self.read_items("DF01", "EF06")
        return [
            Contact(
                v.get(f"contact_name{n}", ""),
                Code.of("relation", v.get(f"contact_relation{n}", "")),
                v.get(f"contact_phone{n}", ""),
            )
            for n in (1, 2, 3)
            if v.get(f"contact_name{n}")
        ]

    def read_occupation(self) -> Occupation:
        v = self.read_items("DF01", "EF07")
        return Occupation(
            Code.of("education", v.get("education", "")),
            Code.of("marital_status", v.get("marital_status", "")),
            v.get("occupation", ""),
        )

    def read_documents(self) -> Documents:
        v = self.read_items("DF01", "EF08")
        return Documents(
            Code.of("id_type", v.get("id_type", "")),
            v.get("id_number", ""),
            v.get("health_record_number", ""),
            v.get("ncms_number", ""),
        )

    def read_medical_alerts(self) -> MedicalAlerts:
        v = self.read_items("DF02", "EF05")
        return MedicalAlerts(
            abo=Code.of("abo", "" if v.get("abo") == "FF" else v.get("abo", "")),
            rh=Code.of("rh", v.get("rh", "")),
            flags={name: _flag(v.get(name, "FF")) for name in ALERT_FLAGS},
            other=v.get("other_alert", ""),
        )

    def read_special(self) -> bool | None:
        """DF02/EF06 精神病标志 (the psychiatric flag; its own update key UK2DF02)."""
        return _flag(self.read_items("DF02", "EF06").get("psychiatric", "FF"))

    def read_allergies(self) -> list[Allergy]:
        return [Allergy(r["allergen"], r["reaction"]) for r in self._read_cyclic("DF02", "EF07")]

    def read_immunizations(self) -> list[Immunization]:
        return [
            Immunization(r["vaccine"], codecs.parse_date("vaccination_date", r["vaccination_date"]))
            for r in self._read_cyclic("DF02", "EF08")
        ]

    def read_visit_index(self, kind: str) -> list[bool]:
        """DF03/EF05 (``kind="EE"``) or EF06 (``"ED"``): True where the record is valid (00)."""
        ef = "EF05" if kind == "EE" else "EF06"
        spec = self.profile.file("DF03", ef)
        raw = self._read_all_records("DF03", ef, spec.record_count)
        return [b == 0x00 for b in raw]

    def _visit_raw(self, kind: str, slot: int, offset: int = 0, length: int | None = None) -> bytes:
        slots = self.profile.visits_in if kind == "EE" else self.profile.visits_out
        if not 1 <= slot <= slots:
            raise InvalidValue(f"DF03/{kind}/slot", f"{slot} is not a record number 1..{slots}")
        index = self.read_visit_index(kind) if length is None else None
        if index is not None and (slot > len(index) or not index[slot - 1]):
            raise RecordInvalid(f"{kind}{slot:02d} is marked invalid (FF)")
        self._open_file("DF03", f"{kind}{slot:02d}")
        total = EE_DATA_LENGTH if kind == "EE" else ED_DATA_LENGTH
        return self._read_binary(offset, total if length is None else length)

    def read_outpatient(self, slot: int) -> OutpatientRecord:
        """ED0n, honouring the index (a record marked FF raises :class:`RecordInvalid`)."""
        return outpatient_from_bytes(self._visit_raw("ED", slot), slot)

    def read_inpatient(self, slot: int) -> InpatientRecord:
        return inpatient_from_bytes(self._visit_raw("EE", slot), slot)

    def _visit_dates(self, kind: str) -> dict[int, str]:
        """Slot → visit date digits of every valid record (ED offset 80, 7 B; EE 80, 4 B)."""
        index = self.read_visit_index(kind)
        length = 7 if kind == "ED" else 4
        out = {}
        for slot, valid in enumerate(index, start=1):
            if valid:
                out[slot] = codecs.decode_cn(self._visit_raw(kind, slot, 80, length))
        return out

    def recent_outpatient(self, count: int = 3) -> list[OutpatientRecord]:
        """The newest ``count`` outpatient records, newest first."""
        dates = self._visit_dates("ED")
        newest = sorted(dates, key=lambda s: dates[s], reverse=True)[:count]
        return [outpatient_from_bytes(self._visit_raw("ED", s, 0, ED_DATA_LENGTH), s) for s in newest]

    def swipe(self, outpatient: int = 3) -> Summary:
        """What a clinician sees: issuer, holder, alerts, allergies, vaccinations, recent visits."""
        return Summary(
            issuer=self.read_issuer(),
            holder=self.read_holder(),
            alerts=self.read_medical_alerts(),
            psychiatric=self.read_special(),
            allergies=self.read_allergies(),
            immunizations=self.read_immunizations(),
            outpatient=self.recent_outpatient(outpatient),
        )

    # --- typed writes ------------------------------------------------------------------------
    def write_validity(
        self, expiry: dt.date | None = None, phones: Sequence[str] = (), payment_methods: Sequence[str] = ()
    ) -> None:
        values: dict[str, Value] = {}
        if expiry is not None:
            values["expiry_date"] = expiry.strftime("%Y%m%d")
        for n, phone in enumerate(phones[:2], start=1):
            values[f"phone{n}"] = phone
        for n, code in enumerate(payment_methods[:3], start=1):
            values[f"payment_method{n}"] = code
        self.write_items("DDF1", "EF08", values)

    def write_addresses(self, addresses: Sequence[tuple[str, str]]) -> None:
        """Up to two (type code, address) pairs."""
        values: dict[str, Value] = {}
        for n, (kind, text) in enumerate(addresses[:2], start=1):
            values[f"address_type{n}"], values[f"address{n}"] = kind, text
        self.write_items("DF01", "EF05", values)

    def write_contacts(self, contacts: Sequence[tuple[str, str, str]]) -> None:
        """Up to three (name, relation code, phone)."""
        values: dict[str, Value] = {}
        for n, (name, relation, phone) in enumerate(contacts[:3], start=1):
            values[f"contact_name{n}"], values[f"contact_relation{n}"], values[f"contact_phone{n}"] = (
                name,
                relation,
                phone,
            )
        self.write_items("DF01", "EF06", values)

    def write_medical_alerts(
        self,
        abo: str | None = None,
        rh: str | None = None,
        flags: Mapping[str, bool | None] | None = None,
        other: str | None = None,
    ) -> None:
        values: dict[str, Value] = {}
        if abo is not None:
            code = abo.zfill(2).upper()
            if meaning("abo", code) is None:
                raise InvalidValue(
                    "DF02/EF05/abo", f"{abo!r} is not an ABO code (1 A, 2 B, 3 O, 4 AB, 5 不详)"
                )
            values["abo"] = int(code, 16)
        if rh is not None:
            values["rh"] = rh
        for name, on in (flags or {}).items():
            if name not in ALERT_FLAGS:
                raise InvalidValue(f"DF02/EF05/{name}", "no such medical-alert flag")
            values[name] = _flag_byte(on)
        if other is not None:
            values["other_alert"] = other
        self.write_items("DF02", "EF05", values)

    def write_special(self, psychiatric: bool | None) -> None:
        self.write_items("DF02", "EF06", {"psychiatric": _flag_byte(psychiatric)})

    def add_allergy(self, allergen: str, reaction: str) -> None:
        """A new allergy becomes record 1; the oldest of three falls off."""
        self._write_cyclic("DF02", "EF07", (allergen, reaction))

    def add_immunization(self, vaccine: str, date: dt.date) -> None:
        self._write_cyclic("DF02", "EF08", (vaccine, date.strftime("%Y%m%d")))

    def write_photo(self, jpeg: bytes) -> None:
        """One UPDATE BINARY with extended APDUs (the card keeps it whole or not at all).  In
        short APDUs the file takes many: the length field is zeroed first and written last, so
        a card pulled in between shows no photo, never a torn one (docs/card.md "Faults")."""
        content = photo_file(jpeg, self.profile.file("DDF1", "EF07").size)
        self._open_file("DDF1", "EF07", write=True)
        if self.extended:
            self._update_binary(0, content)
            return
        self._update_binary(0, bytes(2))  # no photo while its bytes change
        self._update_binary(2, content[2:])
        self._update_binary(0, content[:2])  # the length last: the photo appears whole

    def _write_visit(self, kind: str, data: bytes) -> int:
        """Write a visit record into a free slot, or over the oldest: erase the index (FF),
        write, sign the index (00) — a torn write leaves the slot marked invalid."""
        index = self.read_visit_index(kind)
        free = [n for n, valid in enumerate(index, start=1) if not valid]
        if free:
            slot = free[0]
        else:
            dates = self._visit_dates(kind)
            slot = min(dates, key=lambda s: dates[s])
        if self.sign_visits:
            data = data + self.visit_signature(kind, data)
        self.erase_visit(kind, slot)
        self.write_visit_bytes(kind, slot, 0, data)
        self.sign_visit(kind, slot)
        return slot

    # --- visit-record signatures (DECISIONS.md §19) ------------------------------------------
    def sam_certificate(self) -> bytes:
        """The SAM's certificate (SAM file DF01/001C, 190 bytes), read once per session."""
        if self._sam_certificate is None:
            self._sam(CommandAPDU(0x00, 0xA4, 0, 0, bytes.fromhex("001C")))
            self._sam_certificate = self._sam(CommandAPDU(0x00, 0xB0, 0, 0, le=SAM_CERTIFICATE_LENGTH))
        return self._sam_certificate

    def visit_signature(self, kind: str, data: bytes) -> bytes:
        """The 254-byte tail of a visit record: the SAM's SM2 signature over SM3 of the data
        part, then the SAM's certificate."""
        digest = visit_digest(kind, data)
        signature = self._sam(CommandAPDU(0x80, 0xF8, 0, 0, digest))
        return visit_tail(signature, self.sam_certificate())

    def sign_challenge(self, nonce: bytes) -> tuple[bytes, bytes]:
        """Log the terminal in to the platform: ``(SAM certificate, signature)`` where the
        signature is the SAM's SM2 signature (default user id) of the 32-byte message
        ``SM3(b"HEALTHCARD-TERMINAL-LOGIN" ‖ nonce)``, made by the SAM's sign command
        ``80 F8 00 00 20 <digest>`` exactly as a visit record's (DECISIONS.md §19).

        The context prefix keeps a login signature from ever being taken for a visit-record
        signature (whose message is the SM3 of a record).  A terminal logs in at the start of
        the day, often with no card in the slot, so when :meth:`open` has not run the SAM alone
        is powered and unlocked with its PIN; the user card is not touched."""
        if not isinstance(nonce, bytes) or not 8 <= len(nonce) <= 256:
            raise InvalidValue("nonce", "the platform's challenge is 8 to 256 bytes")
        if not self.sam.atr:  # no session: power the SAM only and unlock it, as open() does
            self.sam_keys = key_info(self.sam.connect())
            self._sam(CommandAPDU(0x00, 0xA4, 0, 0, bytes.fromhex("3F00")))
            self._sam(CommandAPDU(0x00, 0xA4, 0, 0, bytes.fromhex("DF01")))
            self._sam(CommandAPDU(0x00, 0x20, 0, 0, bytes.fromhex(self.sam_pin)))
            self._sam_certificate = None
        digest = sm3(b"HEALTHCARD-TERMINAL-LOGIN" + nonce)
        signature = self._sam(CommandAPDU(0x80, 0xF8, 0, 0, digest))
        return self.sam_certificate(), signature

    def verify_visit(self, kind: str, slot: int, today: dt.date) -> Certificate:
        """Check a visit record's signature against the national roots of ``self.trust``;
        returns the signing SAM's certificate, raises :class:`CertificateError` saying why not."""
        if self.trust is None:
            raise CertificateError("unknown-root", "this terminal has no trust store of national roots")
        total = EE_RECORD_LENGTH if kind == "EE" else ED_RECORD_LENGTH
        return verify_visit_record(kind, self._visit_raw(kind, slot, 0, total), self.trust, today)

    def write_outpatient_record(self, record: OutpatientRecord | Mapping[str, Value]) -> int:
        """Write an outpatient record (keeps the newest five); returns the ED slot used."""
        values = outpatient_values(record) if isinstance(record, OutpatientRecord) else record
        return self._write_visit("ED", encode_visit("ED", values))

    def write_inpatient_record(self, values: Mapping[str, Value]) -> int:
        return self._write_visit("EE", encode_visit("EE", values))

    def _index_flag(self, kind: str, slot: int, ins: int, key: str) -> None:
        self.authenticate(key)
        self._select_ef(self.profile.file("DF03", "EF05" if kind == "EE" else "EF06").fid)
        header = bytes((0x84, ins, slot, 0x04))
        self._cmd(0x84, ins, slot, 0x04, self._sm_body("DF03", header, None))

    def erase_visit(self, kind: str, slot: int) -> None:
        """``84 0C slot 04`` + MAC: mark a visit record invalid (FF); needs UK2DF03."""
        self._index_flag(kind, slot, 0x0C, "UK2DF03")

    def sign_visit(self, kind: str, slot: int) -> None:
        """``84 D2 slot 04`` + MAC: mark a visit record valid (00); needs UK1DF03."""
        self._index_flag(kind, slot, 0xD2, "UK1DF03")

    def read_visit_bytes(self, kind: str, slot: int, offset: int, length: int) -> bytes:
        """Raw bytes of EE0n/ED0n, without looking at the index (the caller did)."""
        return self._visit_raw(kind, slot, offset, length)

    def write_visit_bytes(self, kind: str, slot: int, offset: int, data: bytes) -> None:
        """Raw UPDATE BINARY into EE0n/ED0n after UK1DF03; the index is the caller's business."""
        self._open_file("DF03", f"{kind}{slot:02d}", write=True)
        self._update_binary(offset, data)

    def read_cyclic(self, df: str, ef: str) -> list[dict[str, str]]:
        """The non-empty records of a cyclic file, newest first, items decoded by name."""
        return self._read_cyclic(df, ef)

    def add_cyclic(self, df: str, ef: str, values: Sequence[Value]) -> None:
        """Write a new newest record into a cyclic file (SM, the file's update key)."""
        self._write_cyclic(df, ef, values)


# --- visit records <-> bytes ------------------------------------------------------------------
def encode_visit(kind: str, values: Mapping[str, Value]) -> bytes:
    """The data part of an EE/ED file from item values by SDK tag (e.g. ``"JZJGMC"``)."""
    items = {i.param: i for i in visit_items(kind)}
    out = bytearray(EE_DATA_LENGTH if kind == "EE" else ED_DATA_LENGTH)
    for it in items.values():
        if it.param in ("JYXXQM", "SAMKZS"):
            continue
        assert it.offset is not None
        out[it.offset : it.offset + it.length] = (
            b"\xff" * it.length if it.coding == "cn" else bytes(it.length)
        )
    for param, value in values.items():
        if param not in items:
            raise InvalidValue(f"DF03/{kind}/{param}", "no such item in the visit record")
        it = items[param]
        assert it.offset is not None
        if it.offset >= len(out):
            raise InvalidValue(
                f"DF03/{kind}/{param}", "the signature tail is written by the SAM, not by the caller"
            )
        out[it.offset : it.offset + it.length] = codecs.encode(
            f"DF03/{kind}/{param}", it.coding, value, it.length
        )
    return bytes(out)


def decode_visit(kind: str, data: bytes) -> dict[str, str]:
    return {
        i.param: codecs.decode(i.coding, data[i.offset or 0 : (i.offset or 0) + i.length])
        for i in visit_items(kind)
        if (i.offset or 0) < len(data)
    }


def outpatient_values(record: OutpatientRecord) -> dict[str, Value]:
    values: dict[str, Value] = dict(record.values)
    values.update(
        {
            "JZJGMC": record.institution_name,
            "JZJGZZJGDM": record.institution_code,
            "MZH": record.outpatient_no,
            "JYKSMC": record.department,
        }
    )
    if record.visit_time is not None:
        values["JZRQSJ"] = record.visit_time.strftime("%Y%m%d%H%M%S")
    if record.payment_method is not None:
        values["YLFKFS"] = record.payment_method.code
    for n, d in enumerate(record.diagnoses[:5], start=1):
        values.update(
            {f"ZZMC{n}": d.symptom, f"ZZDM{n}": d.symptom_code, f"MZZDMC{n}": d.name, f"MZZDDM{n}": d.code}
        )
        if d.date is not None:
            values[f"ZDRQ{n}"] = d.date.strftime("%Y%m%d")
    for n, m in enumerate(record.medications[:5], start=1):
        values.update(
            {
                f"YWMC{n}": m.drug,
                f"YYTS{n}": m.days,
                f"YWSYPL{n}": m.frequency,
                f"YWSYJLDW{n}": m.dose_unit,
                f"YWSYCJL{n}": m.dose,
                f"YWSYTJDM{n}": m.route_code,
            }
        )
    if len(record.fees) > 10:
        raise InvalidValue("DF03/ED/fees", f"{len(record.fees)} fee lines, the card holds 10")
    for n, f in enumerate(record.fees, start=1):
        if f.amount_fen < 0:
            raise InvalidValue(f"DF03/ED/MZFYJE{n}", "a fee cannot be negative")
        values.update({f"MZFYFLMC{n}": f.category, f"MZFYFLDM{n}": f.code, f"MZFYJE{n}": str(f.amount_fen)})
    return values


def outpatient_from_bytes(data: bytes, slot: int = 0) -> OutpatientRecord:
    v = decode_visit("ED", data)
    diagnoses = [
        Diagnosis(
            v[f"ZZMC{n}"],
            v[f"ZZDM{n}"],
            codecs.parse_date(f"ZDRQ{n}", v[f"ZDRQ{n}"]),
            v[f"MZZDMC{n}"],
            v[f"MZZDDM{n}"],
        )
        for n in range(1, 6)
        if v[f"MZZDMC{n}"] or v[f"ZZMC{n}"]
    ]
    meds = [
        Medication(
            v[f"YWMC{n}"],
            v[f"YYTS{n}"],
            v[f"YWSYPL{n}"],
            v[f"YWSYJLDW{n}"],
            v[f"YWSYCJL{n}"],
            v[f"YWSYTJDM{n}"],
        )
        for n in range(1, 6)
        if v[f"YWMC{n}"]
    ]
    fees = [
        Fee(v[f"MZFYFLMC{n}"], v[f"MZFYFLDM{n}"], int(v[f"MZFYJE{n}"] or 0))
        for n in range(1, 11)
        if v[f"MZFYFLMC{n}"] or v[f"MZFYJE{n}"]
    ]
    return OutpatientRecord(
        institution_name=v["JZJGMC"],
        institution_code=v["JZJGZZJGDM"],
        visit_time=codecs.parse_datetime("JZRQSJ", v["JZRQSJ"]),
        outpatient_no=v["MZH"],
        department=v["JYKSMC"],
        payment_method=Code.of("payment_method", v["YLFKFS"]),
        diagnoses=diagnoses,
        medications=meds,
        fees=fees,
        values=v,
        slot=slot,
    )


def inpatient_from_bytes(data: bytes, slot: int = 0) -> InpatientRecord:
    v = decode_visit("EE", data)
    return InpatientRecord(
        institution_name=v["ZYJGMC"],
        admission_date=codecs.parse_date("RYRQ", v["RYRQ"]),
        discharge_date=codecs.parse_date("CYRQ", v["CYRQ"]),
        case_no=v["BAH"],
        department=v["ZYHZRYKSMC"],
        diagnoses=[(v[f"JBZDMC{n}"], v[f"JBZDDM{n}"]) for n in (1, 2, 3) if v[f"JBZDMC{n}"]],
        total_fen=int(v["ZYZFY"] or 0),
        values=v,
        slot=slot,
    )


__all__ = ["HealthCardTerminal", "RefusalHook", "decode_visit", "encode_visit", "item", "visit_item"]
