"""The signed hot list (``healthcard.terminal.hotlist``): the document, its signature by the
province card centre, and the terminal's copy (full lists, deltas, its file).

SM2 costs ~20 ms per operation in pure Python: the key centre and the signed lists are made
once per module; the terminal-side tests load them into fresh :class:`TerminalHotList` values."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthcard.clock import FixedClock
from healthcard.errors import CertificateError, HotListError, InvalidValue, KeyStoreError
from healthcard.issuance.keycentre import KeyCentre
from healthcard.keys import ceremony, sm2
from healthcard.keys.certificates import TrustStore, parse_certificate
from healthcard.keys.kek import PassphraseKek
from healthcard.keys.keystore import KeyStore
from healthcard.keys.primitives import sm3
from healthcard.terminal import hotlist as hl
from healthcard.terminal.hotlist import (
    FORMAT,
    HotList,
    HotListEntry,
    HotListReason,
    TerminalHotList,
    decode,
    decode_verified,
    delta_list,
    encode,
    full_list,
    sign_hotlist,
    signed_message,
    verify,
)

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 24)
A = bytes.fromhex("0081866B00001015")
B = bytes.fromhex("0081866B00001016")
C = bytes.fromhex("0081866B00001017")
D = bytes.fromhex("0081866B00001018")
G = bytes.fromhex("008586530002E8E4")  # a Guangdong card


def entry(
    serial: bytes, number: str = "410102199003070019", reason: str = "lost", days: int = 0
) -> HotListEntry:
    return HotListEntry(serial, number, HotListReason(reason), NOW - dt.timedelta(days=days, microseconds=7))


@dataclass
class World:
    centre: KeyCentre
    trust: TrustStore
    v1: bytes  # full list of 41, v1: A lost, B replaced
    d12: bytes  # delta 1→2: C cancelled, A off (found again)
    d23: bytes  # delta 2→3: D lost, B listed again as cancelled
    full3: bytes  # full list of 41 at v3: what v1 + d12 + d23 make
    g1: bytes  # full list of 44, v1: G lost

    def sign(self, unsigned: HotList, province: str | None = None) -> HotList:
        return sign_hotlist(unsigned, lambda m: self.centre.sign_as_issuer(province or unsigned.province, m))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    clock = FixedClock(NOW)
    store = KeyStore.create(tmp_path_factory.mktemp("hotlist") / "keystore.json", PassphraseKek("pw"), clock)
    centre = KeyCentre(store, clock)
    centre.ceremony(ceremony.combine(ceremony.generate(3)[1], 3))
    centre.derive_province("41")
    centre.derive_province("44")
    w = World(centre, centre.trust_store(), b"", b"", b"", b"", b"")
    w.v1 = encode(w.sign(full_list("41", 1, [entry(B, "410102199003070027", "replaced"), entry(A)], NOW)))
    w.d12 = encode(w.sign(delta_list("41", 1, 2, [entry(C, "410102199003070035", "cancelled")], [A], NOW)))
    w.d23 = encode(
        w.sign(
            delta_list(
                "41",
                2,
                3,
                [entry(D, "410102199003070043"), entry(B, "410102199003070027", "cancelled")],
                [],
                NOW,
            )
        )
    )
    w.full3 = encode(
        w.sign(
            full_list(
                "41",
                3,
                [
                    entry(B, "410102199003070027", "cancelled"),
                    entry(C, "410102199003070035", "cancelled"),
                    entry(D, "410102199003070043"),
                ],
                NOW,
            )
        )
    )
    w.g1 = encode(w.sign(full_list("44", 1, [entry(G, "440604198805120027")], NOW)))
    return w


def load(world: World, *documents: bytes, today: dt.date = TODAY) -> TerminalHotList:
    held = TerminalHotList()
    for data in documents:
        held.load(data, trust=world.trust, today=today)
    return held


def snapshot(held: TerminalHotList) -> dict[str, tuple[int | None, dict[bytes, HotListEntry | None]]]:
    return {p: (held.version(p), {s: held.lookup(s) for s in (A, B, C, D, G)}) for p in held.provinces()}


# --- the document ---------------------------------------------------------------------------------


def test_round_trip(world: World) -> None:
    hotlist = decode(world.v1)
    assert hotlist.province == "41" and hotlist.version == 1 and hotlist.base is None and hotlist.full
    assert [e.chip_serial for e in hotlist.added] == [A, B]  # chip-serial order, whatever the input order
    assert hotlist.added[0] == entry(A)
    assert hotlist.added[1].reason is HotListReason.REPLACED
    assert hotlist.issued_at == NOW
    assert encode(hotlist) == world.v1
    delta = decode(world.d12)
    assert (delta.base, delta.version, delta.removed) == (1, 2, (A,))
    assert encode(delta) == world.d12


def test_the_document_is_canonical_json(world: World) -> None:
    document = json.loads(world.d12)
    again = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert again == world.d12
    assert set(document) == {"body", "certificate", "signature"}
    body = document["body"]
    assert body["format"] == FORMAT == "healthcard-hotlist/1"
    assert body["added"] == [
        ["0081866B00001017", "410102199003070035", "cancelled", "2026-11-24T01:59:59.999993Z"]
    ]
    assert body["removed"] == ["0081866B00001015"]
    assert (body["province"], body["base"], body["version"], body["issued_at"]) == (
        "41",
        1,
        2,
        "2026-11-24T02:00:00Z",
    )
    assert bytes.fromhex(document["certificate"]) == world.centre.issuer_certificate("41")
    assert len(bytes.fromhex(document["signature"])) == 64


def test_the_signature_verifies(world: World) -> None:
    hotlist = decode(world.v1)
    verify(hotlist, world.trust, TODAY)
    assert decode_verified(world.v1, trust=world.trust, today=TODAY) == hotlist
    # the message is SM3 of the body as it stands in the document, signed by the issuer key
    body = json.dumps(json.loads(world.v1)["body"], sort_keys=True, separators=(",", ":")).encode()
    message = signed_message(hotlist)
    assert len(message) == 32
    cert = parse_certificate(hotlist.certificate)
    assert cert.kind == "issuer" and cert.issuer_code == "41000000001"
    assert sm2.verify(cert.public_key, message, hotlist.signature)
    assert message == sm3(body)


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def test_one_flipped_byte_anywhere_changes_what_is_checked(world: World) -> None:
    """Every position: a flipped byte makes the document malformed, or changes the signed
    message, the certificate or the signature (the next test shows each of those is refused)."""
    original = hl._split(world.d12)
    for position in range(len(world.d12)):
        try:
            tampered = hl._split(_flip(world.d12, position))
        except HotListError:
            continue
        assert (tampered.message, tampered.header.certificate, tampered.header.signature) != (
            original.message,
            original.header.certificate,
            original.header.signature,
        ), position


@pytest.mark.parametrize(
    ("where", "after"),
    [
        ('"added":[["0081866B0000101', 0),  # the added serial
        ('"41010219900307003', 0),  # its card number
        ('"cancelle', 0),  # its reason
        ('"2026-11-24T01:59:5', 0),  # its listed-at
        ('"removed":["0081866B0000101', 0),  # the removed serial
        ('"base":1', 0),
        ('"version":2', 0),
        ('"province":"4', 0),
        ('"issued_at":"2026', 0),
        ('"certificate":"23', 0),  # the certificate's format byte
        ('"certificate":"', 2 * 40),  # its public key
        ('"certificate":"', 2 * 150),  # its signature by the root
        ('"signature":"', 2 * 10),
        ('"signature":"', 2 * 60),
    ],
)
def test_a_flipped_byte_is_refused(world: World, where: str, after: int) -> None:
    position = world.d12.index(where.encode()) + len(where) - 1 + after
    held = load(world, world.v1)
    before = snapshot(held)
    with pytest.raises((CertificateError, HotListError)) as refused:
        held.load(_flip(world.d12, position), trust=world.trust, today=TODAY)
    if isinstance(refused.value, CertificateError):
        assert refused.value.reason in ("forged", "malformed")
    assert snapshot(held) == before  # nothing changed


def test_a_list_signed_by_another_province_is_refused(world: World) -> None:
    unsigned = full_list("41", 9, [], NOW)  # an empty list would clear Henan's
    with pytest.raises(
        InvalidValue, match="issuer certificate 44000000001 cannot sign the hot list of province 41"
    ):
        world.sign(unsigned, province="44")
    signature, certificate = world.centre.sign_as_issuer("44", signed_message(unsigned))
    forged = HotList("41", 9, None, NOW, (), (), certificate, signature)
    held = load(world, world.v1)
    with pytest.raises(CertificateError, match="signed by the issuer certificate 44000000001") as refused:
        held.load(encode(forged), trust=world.trust, today=TODAY)
    assert refused.value.reason == "forged"
    assert held.version("41") == 1 and held.lookup(A) is not None
    with pytest.raises(CertificateError):
        verify(forged, world.trust, TODAY)


def test_an_expired_issuer_certificate_is_refused(world: World) -> None:
    cert = parse_certificate(world.centre.issuer_certificate("41"))
    held = load(world, world.v1, today=cert.valid_until)  # the last day is still valid
    assert held.version("41") == 1
    later = cert.valid_until + dt.timedelta(days=1)
    with pytest.raises(CertificateError, match="expired") as refused:
        load(world, world.v1, today=later)
    assert refused.value.reason == "expired"
    with pytest.raises(CertificateError) as early:
        verify(decode(world.v1), world.trust, cert.valid_from - dt.timedelta(days=1))
    assert early.value.reason == "not-yet-valid"


def test_an_untrusted_root_is_refused(world: World) -> None:
    with pytest.raises(CertificateError) as refused:
        TerminalHotList().load(world.v1, trust=TrustStore(), today=TODAY)
    assert refused.value.reason == "unknown-root"


def test_an_unsigned_list_is_neither_encoded_nor_verified() -> None:
    unsigned = full_list("41", 1, [entry(A)], NOW)
    assert not unsigned.signed
    with pytest.raises(InvalidValue, match="not signed"):
        encode(unsigned)
    with pytest.raises(CertificateError) as refused:
        verify(unsigned, TrustStore(), TODAY)
    assert refused.value.reason == "unsigned"


def _document(body: dict[str, object], world: World) -> bytes:
    """A document around ``body``, with the certificate and signature of v1 (decode does not
    verify)."""
    original = json.loads(world.v1)
    return json.dumps(
        {"body": body, "certificate": original["certificate"], "signature": original["signature"]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "healthcard-hotlist/2"}, "format 'healthcard-hotlist/2'"),
        ({"extra": 1}, "fields unknown extra"),
        ({"version": "2"}, "version '2' is not an integer"),
        ({"version": True}, "version True is not an integer"),
        ({"base": "1"}, "base '1' is not an integer or null"),
        ({"version": -1}, "version: a hot-list version is an integer from 0"),
        ({"base": 2}, "base: a delta's base is a version from 0 up to its version 1"),
        ({"province": "99"}, "province"),
        (
            {"issued_at": "2026-11-24T02:00:00+08:00"},
            "issued_at '2026-11-24T02:00:00.08:00' is not an ISO 8601 UTC",
        ),
        (
            {"added": [["0081866B000010", "4101", "lost", "2026-11-24T02:00:00Z"]]},
            r"added\[0\] chip serial is not 16",
        ),
        (
            {"added": [["0081866B00001015", "4101", "stolen", "2026-11-24T02:00:00Z"]]},
            r"added\[0\] reason: 'stolen'",
        ),
        ({"added": [["0081866B00001015", "", "lost", "2026-11-24T02:00:00Z"]]}, r"added\[0\] card_number"),
        (
            {"added": [["0081866B00001015", "4101\n", "lost", "2026-11-24T02:00:00Z"]]},
            r"added\[0\] card_number",
        ),
        ({"added": [["0081866B00001015", "4101", "lost"]]}, r"added\[0\] is not \[chip serial"),
        ({"added": [["0081866B00001015", "4101", "lost", "2026-11-24"]]}, r"added\[0\] listed at"),
        ({"added": {}}, "added and removed are lists"),
        (
            {"added": [["0081866B00001015", "4101", "lost", "2026-11-24T02:00:00Z"]] * 2},
            "a chip serial is listed twice",
        ),
        ({"removed": ["0081866B00001015"]}, "a full list removes nothing"),
        ({"removed": ["0081866B00001015 "]}, r"removed\[0\] is not 16 hex digits"),
        ({"removed": ["0081866B0000101G"]}, r"removed\[0\] is not 16 hex digits"),
    ],
)
def test_malformed_documents(world: World, change: dict[str, object], message: str) -> None:
    body = json.loads(world.v1)["body"] | change
    with pytest.raises(HotListError, match=message):
        decode(_document(body, world))


def _signed_document(body: dict[str, object], world: World) -> bytes:
    """A document around ``body`` that the card centre of 41 really signed (a centre's bug)."""
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    signature, certificate = world.centre.sign_as_issuer("41", sm3(raw))
    return b'{"body":%s,"certificate":"%s","signature":"%s"}' % (
        raw,
        certificate.hex().upper().encode(),
        signature.hex().upper().encode(),
    )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["0081866B00001015", "4101", "lost", "2026-11-24T02:00:00Z"]] * 2, "a chip serial is listed twice"),
        ([["0081866B00001015", "4101", "stolen", "2026-11-24T02:00:00Z"]], r"added\[0\] reason: 'stolen'"),
    ],
)
def test_a_signed_but_malformed_full_list_is_refused(
    world: World, rows: list[list[str]], message: str
) -> None:
    body = json.loads(world.v1)["body"] | {"added": rows, "version": 5}
    data = _signed_document(body, world)
    held = load(world, world.v1)
    with pytest.raises(HotListError, match=message):
        held.load(data, trust=world.trust, today=TODAY)
    assert held.version("41") == 1 and held.lookup(A) is not None


def test_a_missing_field(world: World) -> None:
    body = json.loads(world.v1)["body"]
    del body["base"], body["removed"]
    with pytest.raises(HotListError, match="fields missing base, removed"):
        decode(_document(body, world))


def test_a_delta_that_adds_and_removes_one_serial_is_malformed(world: World) -> None:
    body = json.loads(world.d12)["body"]
    body["removed"].append(body["added"][0][0])
    with pytest.raises(HotListError, match="0081866B00001017 is both added and removed"):
        decode(_document(body, world))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a signed healthcard-hotlist/1 document"),
        (b"\xff" * 600, "not a signed"),
        (b'{"body":{}}', "not a signed"),
    ],
)
def test_what_is_not_a_document(data: bytes, message: str) -> None:
    with pytest.raises(HotListError, match=message):
        decode(data)


def test_the_body_must_be_a_utf8_json_object(world: World) -> None:
    tail = world.v1[world.v1.index(b',"certificate":') :]
    with pytest.raises(HotListError, match="not UTF-8"):
        decode(b'{"body":"\xff"' + tail)
    with pytest.raises(HotListError, match="not a JSON object"):
        decode(b'{"body":[]' + tail)


def test_the_wrapper_must_be_exact(world: World) -> None:
    assert decode(world.v1 + b"\n") == decode(world.v1)  # a trailing newline from an editor is fine
    lower = world.v1.replace(b'"signature":"', b'"signature": "')
    with pytest.raises(HotListError, match="not a signed"):
        decode(lower)
    with pytest.raises(HotListError, match="not JSON"):
        decode(world.v1.replace(b'"format"', b'"format', 1))


def test_entries_and_lists_check_their_values() -> None:
    with pytest.raises(InvalidValue, match="chip_serial"):
        HotListEntry(b"\x00" * 7, "4101", HotListReason.LOST, NOW)
    with pytest.raises(InvalidValue, match="card_number"):
        HotListEntry(A, "4" * 19, HotListReason.LOST, NOW)
    with pytest.raises(InvalidValue, match="card_number"):
        HotListEntry(A, "河南", HotListReason.LOST, NOW)
    with pytest.raises(InvalidValue, match="listed_at"):
        HotListEntry(A, "4101", HotListReason.LOST, dt.datetime(2026, 1, 1))  # naive
    with pytest.raises(InvalidValue, match="reason"):
        HotListEntry(A, "4101", "stolen", NOW)  # type: ignore[arg-type]
    shanghai = dt.timezone(dt.timedelta(hours=8))
    e = HotListEntry(A, "4101", "lost", NOW.astimezone(shanghai))  # type: ignore[arg-type]
    assert e.reason is HotListReason.LOST and e.listed_at == NOW and e.listed_at.tzinfo is dt.UTC
    with pytest.raises(InvalidValue, match="province"):
        full_list("4", 1, [], NOW)
    with pytest.raises(InvalidValue, match="base"):
        delta_list("41", 4, 3, [], [], NOW)
    with pytest.raises(InvalidValue, match="changes nothing"):
        delta_list("41", 3, 3, [], [A], NOW)
    assert delta_list("41", 3, 3, [], [], NOW).title == "hot list 41 delta 3→3"  # "nothing new"
    assert full_list("41", 0, [], NOW).full  # a province that never listed a chip
    with pytest.raises(InvalidValue, match="removed"):
        delta_list("41", 1, 2, [], [A, A], NOW)
    with pytest.raises(InvalidValue, match="listed twice"):
        full_list("41", 1, [entry(A), entry(A, reason="cancelled")], NOW)
    with pytest.raises(InvalidValue, match="signature"):
        HotList("41", 1, None, NOW, (), (), b"\x23" * 180, b"")
    with pytest.raises(InvalidValue, match="HotListEntry"):
        HotList("41", 1, None, NOW, (A,))  # type: ignore[arg-type]


def test_a_list_repr_stays_short() -> None:
    big = full_list("41", 7, [entry((0x0081866B00000000 + i).to_bytes(8, "big")) for i in range(1000)], NOW)
    assert (
        repr(big) == "HotList(hot list 41 v7, issued 2026-11-24T02:00:00Z, 1000 added, 0 removed, unsigned)"
    )
    assert delta_list("41", 5, 7, [], [A], NOW).title == "hot list 41 delta 5→7"


# --- the key centre signs as a province's card centre --------------------------------------------


def test_sign_as_issuer(world: World) -> None:
    signature, certificate = world.centre.sign_as_issuer("41", b"message")
    assert certificate == world.centre.issuer_certificate("41")
    assert sm2.verify(parse_certificate(certificate).public_key, b"message", signature)
    again, _ = world.centre.sign_as_issuer("41", b"message")
    assert again != signature  # a fresh k every time


def test_sign_as_issuer_needs_the_province_key(world: World) -> None:
    with pytest.raises(KeyStoreError, match="no issuer key of province 11") as missing:
        world.centre.sign_as_issuer("11", b"message")
    assert not world.centre.store.has("sm2/issuer/11")  # signing made no key
    secret = world.centre.store.secret("sm2/issuer/41").hex()
    assert secret.upper() not in str(missing.value).upper()
    with pytest.raises(InvalidValue, match="province"):
        world.centre.sign_as_issuer("99", b"message")


# --- the terminal's copy -----------------------------------------------------------------------------


def test_a_full_list_then_deltas_in_order(world: World) -> None:
    held = load(world, world.v1)
    assert held.version("41") == 1 and held.version("44") is None
    assert held.lookup(A) == entry(A)
    assert held.lookup(C) is None
    held.load(world.d12, trust=world.trust, today=TODAY)
    assert held.version("41") == 2
    assert held.lookup(A) is None  # found again (解挂): no longer refused
    assert held.lookup(C) == entry(C, "410102199003070035", "cancelled")
    held.load(world.d23, trust=world.trust, today=TODAY)
    assert held.version("41") == 3
    b = held.lookup(B)
    assert b is not None and b.reason is HotListReason.CANCELLED  # listed again, another reason
    assert len(held) == held.count("41") == 3
    hit = held.find(D)
    assert hit is not None and (hit.province, hit.version, hit.entry) == (
        "41",
        3,
        entry(D, "410102199003070043"),
    )
    assert D in held and A not in held
    assert snapshot(held) == snapshot(load(world, world.full3))  # the same as the full list v3


def test_a_delta_on_the_wrong_base_is_refused(world: World) -> None:
    held = load(world, world.v1)
    with pytest.raises(
        HotListError, match="delta 2→3 needs version 2; this terminal holds 1: load the full list"
    ):
        held.load(world.d23, trust=world.trust, today=TODAY)
    assert held.version("41") == 1 and held.lookup(D) is None
    held.load(world.d12, trust=world.trust, today=TODAY)
    with pytest.raises(HotListError, match="delta 1→2 needs version 1; this terminal holds 2"):
        held.load(world.d12, trust=world.trust, today=TODAY)  # the same delta twice


def test_a_delta_of_a_province_never_loaded_is_refused(world: World) -> None:
    with pytest.raises(HotListError, match="holds no list of province 41: load the full list"):
        load(world, world.d12)


def test_full_lists_replace_and_an_older_one_is_refused(world: World) -> None:
    held = load(world, world.v1, world.g1)
    assert held.provinces() == ("41", "44")
    held.load(world.full3, trust=world.trust, today=TODAY)
    assert held.version("41") == 3
    assert held.lookup(A) is None  # not in v3: gone, not merged
    assert held.lookup(G) is not None  # another province's list is untouched
    with pytest.raises(HotListError, match="hot list 41 v1 is older than the version 3"):
        held.load(world.v1, trust=world.trust, today=TODAY)
    held.load(world.full3, trust=world.trust, today=TODAY)  # the same version again: harmless
    assert held.version("41") == 3


def test_save_and_open(world: World, tmp_path: Path) -> None:
    held = load(world, world.v1, world.d12, world.g1)
    path = tmp_path / "hotlist.state"
    held.save(path)
    again = TerminalHotList.open(path)
    assert snapshot(again) == snapshot(held)
    assert again.issued_at("41") == NOW and again.version("44") == 1
    again.load(world.d23, trust=world.trust, today=TODAY)  # deltas go on from the saved version
    assert again.version("41") == 3
    header, body, end = path.read_bytes().split(b"\n")
    assert json.loads(header) == {"format": "healthcard-hotlist-terminal/1", "sm3": sm3(body).hex().upper()}
    assert end == b""
    assert repr(again) == "TerminalHotList(41 v3 (3), 44 v1 (1))"


def test_a_damaged_terminal_file_is_refused(world: World, tmp_path: Path) -> None:
    path = tmp_path / "hotlist.state"
    load(world, world.v1).save(path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"0081866B00001015", b"0081866B00001019"))
    with pytest.raises(HotListError, match="damaged"):
        TerminalHotList.open(path)
    path.write_bytes(data.split(b"\n")[0])
    with pytest.raises(HotListError, match="damaged"):
        TerminalHotList.open(path)
    path.write_bytes(b'{"format":"something else"}\n{}\n')
    with pytest.raises(HotListError, match="format 'something else'"):
        TerminalHotList.open(path)
    with pytest.raises(HotListError, match="cannot read it"):
        TerminalHotList.open(tmp_path / "missing")
    for body, message in [
        (b'{"41":{"entries":[],"issued_at":"2026-11-24T02:00:00Z","version":-1}}', "version"),
        (b'{"41":[]}', "province '41' is not"),
        (b'{"41":{"entries":{},"issued_at":"2026-11-24T02:00:00Z","version":1}}', "entries is not a list"),
        (b'{"41":{"entries":[["00"]],"issued_at":"2026-11-24T02:00:00Z","version":1}}', r"41 entries\[0\]"),
    ]:
        header = b'{"format":"healthcard-hotlist-terminal/1","sm3":"%s"}\n' % sm3(body).hex().upper().encode()
        path.write_bytes(header + body)
        with pytest.raises(HotListError, match=message):
            TerminalHotList.open(path)


def test_an_empty_terminal_file(tmp_path: Path) -> None:
    path = tmp_path / "hotlist.state"
    TerminalHotList().save(path)
    held = TerminalHotList.open(path)
    assert len(held) == 0 and held.provinces() == () and repr(held) == "TerminalHotList(empty)"
    assert held.find(A) is None and held.version("41") is None and held.issued_at("41") is None
