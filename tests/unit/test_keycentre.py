"""The key centre (``healthcard.issuance.keycentre``): ceremonies, province sets, issuer and SAM
certificates, SAM images (DECISIONS.md §11–12, §17–18; CARD-SPEC.md §6.3, §6.7).

SM2 costs ~16 ms per operation in pure Python, so one key centre is set up per module and the
tests only read it; the few tests that must write get their own small store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import CardState
from healthcard.card.filesystem import DF, EF, KeyUse
from healthcard.card.sam import SAM_DF01, SamOS
from healthcard.clock import FixedClock, local_date
from healthcard.errors import InvalidValue, KeyStoreError
from healthcard.issuance.keycentre import KeyCentre, SamRequest, issuer_code, sam_masters, terminal_number
from healthcard.keys import ceremony, recipes, sm2
from healthcard.keys.certificates import verify_certificate
from healthcard.keys.kek import PassphraseKek
from healthcard.keys.keyset import CardKeyDeriver, KeySet, KeySetId, Level, derive_province, national_set
from healthcard.keys.keystore import KeyStore
from healthcard.keys.primitives import Algorithm, ecb_encrypt
from healthcard.keys.table import KEY_TABLE, Depth, Holder

NOW = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)  # 2026-03-01 10:00 in Shanghai
TODAY = dt.date(2026, 3, 1)
PASSPHRASE = "key centre test passphrase"
SAM_SERIAL = bytes.fromhex("5341304100000001")
TERMINAL = "410100000001"
CARD_SERIAL = bytes.fromhex("0081866B00001015")
CHALLENGE = bytes.fromhex("0102030405060708")
TERMINAL_INDEXES = {
    s.sam_index for s in KEY_TABLE if s.sam_index is not None and s.held_by(Holder.TERMINAL_SAM)
}


@dataclass
class World:
    centre: KeyCentre
    store: KeyStore
    path: Path
    roots: list[bytes]
    v1: KeySet
    v2: KeySet
    province: KeySet
    root_public: bytes
    sam: CardState


@pytest.fixture(scope="module")
def kek() -> PassphraseKek:
    return PassphraseKek(PASSPHRASE)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, kek: PassphraseKek) -> World:
    """Two ceremonies (v1, v2) from custodians' components, province 41 derived from v1, the SM2
    root, and one terminal SAM issued after the rollover."""
    path = tmp_path_factory.mktemp("keycentre") / "keystore.json"
    clock = FixedClock(NOW)
    store = KeyStore.create(path, kek, clock)
    centre = KeyCentre(store, clock)
    roots = []
    for _ in range(2):
        secret, parts = ceremony.generate(3, 2)
        typed = [ceremony.parse_component(c.text(), c.kcv, i) for i, c in enumerate(parts[1:], 1)]
        roots.append(ceremony.combine(typed, 3, 2))
        assert roots[-1] == secret
    v1 = centre.ceremony(roots[0])
    root_public = bytes.fromhex(store.public("sm2/root/1")["public"])
    province = centre.derive_province("41")
    v2 = centre.ceremony(roots[1])
    sam = centre.sam(SamRequest(SAM_SERIAL, terminal_number(TERMINAL), role=Holder.TERMINAL_SAM))
    return World(centre, store, path, roots, v1, v2, province, root_public, sam)


def _same(a: KeySet, b: KeySet) -> bool:
    return (a.id, a.algorithm, dict(a.keys)) == (b.id, b.algorithm, dict(b.keys))


def _sam_df01(state: CardState) -> DF:
    app = state.mf.children[SAM_DF01]
    assert isinstance(app, DF)
    return app


def _ef(df: DF, fid: int) -> bytes:
    ef = df.children[fid]
    assert isinstance(ef, EF)
    return bytes(ef.data)


# --- ceremonies ---------------------------------------------------------------------------------


def test_ceremony_makes_national_v1_and_the_sm2_root(world: World) -> None:
    assert world.v1.id == KeySetId(Level.NATIONAL, "", 1)
    assert _same(world.v1, national_set(world.roots[0], 1))
    assert _same(world.store.keyset("national/v1"), world.v1)
    assert world.store.has("sm2/root/1")
    root_private = world.store.secret("sm2/root/1")
    assert sm2.public_key(root_private) == world.root_public
    assert world.store.public("sm2/root/1")["certifier"] == "00000001"
    info = {e.id: e for e in world.store.entries()}["national/v1"]
    assert info.created == NOW.isoformat(timespec="seconds")


def test_second_ceremony_makes_v2_and_keeps_the_root(world: World) -> None:
    assert world.v2.id == KeySetId(Level.NATIONAL, "", 2)
    assert _same(world.v2, national_set(world.roots[1], 2))
    assert world.store.versions() == [1, 2]
    assert world.store.current_version() == 2
    assert _same(world.centre.national(), world.v2)
    assert _same(world.centre.national(1), world.v1)
    roots = [e.id for e in world.store.entries() if e.id.startswith("sm2/root/")]
    assert roots == ["sm2/root/1"]
    assert bytes.fromhex(world.store.public("sm2/root/1")["public"]) == world.root_public


def test_trust_store_holds_the_root(world: World) -> None:
    trust = world.centre.trust_store()
    assert list(trust) == [1]
    assert trust.get(1) == world.root_public
    assert len(trust) == 1


def test_reopened_store_gives_the_same_centre_state(world: World, kek: PassphraseKek) -> None:
    centre = KeyCentre(KeyStore.open(world.path, kek), FixedClock(NOW))
    assert _same(centre.national(), world.v2)
    assert _same(centre.province("41", 1), world.province)
    assert centre.trust_store() == world.centre.trust_store()


@pytest.fixture
def small_centre(tmp_path: Path, kek: PassphraseKek) -> KeyCentre:
    clock = FixedClock(NOW)
    return KeyCentre(KeyStore.create(tmp_path / "ks.json", kek, clock), clock)


def test_the_same_root_twice_is_refused(small_centre: KeyCentre) -> None:
    root = bytes(range(16))
    small_centre.ceremony(root)
    with pytest.raises(InvalidValue) as caught:
        small_centre.ceremony(root)
    assert caught.value.field == "components"
    assert small_centre.store.versions() == [1]


def test_centre_without_a_ceremony_says_so(small_centre: KeyCentre) -> None:
    with pytest.raises(KeyStoreError, match="no national key set"):
        small_centre.national()
    with pytest.raises(KeyStoreError, match="no national key set"):
        small_centre.derive_province("41")
    with pytest.raises(KeyStoreError, match="no province 41 key set"):
        small_centre.province("41")
    assert len(small_centre.trust_store()) == 0


# --- province level -----------------------------------------------------------------------------


def test_derive_province_stores_the_province_set(world: World) -> None:
    assert world.province.id == KeySetId(Level.PROVINCE, "41", 1)
    assert _same(world.province, derive_province(world.v1, "41"))
    assert _same(world.store.keyset("province/41/v1"), world.province)
    assert _same(world.centre.province("41"), world.province)
    assert _same(world.centre.province("410100"), world.province)
    assert world.store.versions(Level.PROVINCE, "41") == [1]
    assert world.centre.deriver("41").issuing.id == world.province.id


def test_issuer_certificate_verifies_against_the_trust_store(world: World) -> None:
    cert_bytes = world.centre.issuer_certificate("41")
    assert len(cert_bytes) == 180
    cert = verify_certificate(cert_bytes, world.centre.trust_store(), TODAY, kind="issuer")
    assert cert.kind == "issuer"
    assert cert.issuer_code == issuer_code("41") == "41000000001"
    assert cert.root_index == 1
    assert cert.valid_from == TODAY
    assert cert.valid_until == dt.date(2046, 2, 28)  # 20 years less a day
    entry = world.store.public("sm2/issuer/41")
    assert cert.public_key == bytes.fromhex(entry["public"])
    assert bytes.fromhex(entry["certificate"]) == cert_bytes
    assert sm2.public_key(world.store.secret("sm2/issuer/41")) == cert.public_key
    # made once: asking again gives the same certificate
    assert world.centre.issuer_certificate("41") == cert_bytes
    assert world.centre.issuer_certificate("410100") == cert_bytes


def test_card_keys_from_the_province_set_are_what_the_sam_computes(world: World) -> None:
    card = world.centre.card_keys(world.province, CARD_SERIAL)
    assert card.version == 1 and card.algorithm is Algorithm.SM4
    for spec in KEY_TABLE:
        pf = b"41000000" if spec.depth is Depth.PROVINCE_CARD else None
        assert card[spec.name] == recipes.card_key(world.v1[spec.name], CARD_SERIAL, pf), spec.name
    assert world.centre.deriver("41").derive(CARD_SERIAL).keys == card.keys


# --- SAMs -----------------------------------------------------------------------------------------


def test_sam_masters_by_role(world: World) -> None:
    terminal = sam_masters(world.v1, Holder.TERMINAL_SAM)
    assert set(terminal) == TERMINAL_INDEXES
    assert len(terminal) == 15
    assert not {0x01, 0x06, 0x07} & set(terminal)
    issuer = sam_masters(world.v1, Holder.ISSUER_SAM)
    assert set(issuer) == TERMINAL_INDEXES | {0x01, 0x06, 0x07}
    for index, value in issuer.items():
        spec = next(s for s in KEY_TABLE if s.sam_index == index)
        assert value == world.v1[spec.name]
    with pytest.raises(InvalidValue) as caught:
        sam_masters(world.v1, Holder.ISSUER_HSM)
    assert caught.value.field == "role"


def test_terminal_sam_holds_exactly_its_masters_of_both_versions(world: World) -> None:
    app = _sam_df01(world.sam)
    masters = {kid: key for (use, kid), key in app.keys.items() if use == KeyUse.MASTER}
    expected = {
        (version << 8) | index: value
        for version, national in ((1, world.v1), (2, world.v2))
        for index, value in sam_masters(national, Holder.TERMINAL_SAM).items()
    }
    assert {kid: key.value for kid, key in masters.items()} == expected
    assert len(masters) == 30
    assert {kid & 0xFF for kid in masters}.isdisjoint({0x06, 0x07, 0x01})
    for kid, key in masters.items():
        assert key.version == kid >> 8 and key.algorithm is Algorithm.SM4
    # no MASTER anywhere else in the SAM
    others = [
        k for df in world.sam.mf.walk() if df is not app for (use, k) in df.keys if use == KeyUse.MASTER
    ]
    assert others == []


def test_sam_files(world: World) -> None:
    app = _sam_df01(world.sam)
    assert world.sam.application == "sam"
    assert _ef(world.sam.mf, 0x0016) == bytes.fromhex(TERMINAL)
    info = _ef(app, 0x001A)
    assert info[0] == 2  # the current national key version
    assert info[9:17] == SAM_SERIAL
    assert info[1:9] == bytes.fromhex("41000000001FFFFF")
    assert _ef(app, 0x001B) == world.centre.issuer_certificate("41")
    assert world.sam.key_info().version == 2


def test_sam_certificate_verifies_and_names_the_terminal(world: World) -> None:
    app = _sam_df01(world.sam)
    raw = _ef(app, 0x001C)
    assert len(raw) == 190
    cert = verify_certificate(raw, world.centre.trust_store(), TODAY, kind="sam")
    assert cert.terminal_number == bytes.fromhex(TERMINAL)
    assert cert.subject_id == SAM_SERIAL
    assert cert.valid_from == TODAY and cert.valid_until == dt.date(2036, 2, 29)
    sign_key = app.keys[(KeyUse.SIGN, 0)]
    assert sm2.public_key(sign_key.value) == cert.public_key
    # the issuer certificate in 001B is of the issuer kind, not usable as a SAM certificate
    verify_certificate(_ef(app, 0x001B), world.centre.trust_store(), TODAY, kind="issuer")


def _session_cipher(sam: SamOS, p1: int, index: int, factors: bytes, block: bytes) -> bytes:
    def ok(apdu: CommandAPDU) -> bytes:
        response = sam.process(apdu.to_bytes())
        sw = int.from_bytes(response[-2:], "big")
        if sw >> 8 == 0x61:
            response = sam.process(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
            sw = int.from_bytes(response[-2:], "big")
        assert sw == 0x9000, f"{apdu.to_bytes().hex().upper()} -> {sw:04X}"
        return response[:-2]

    ok(CommandAPDU(0x80, 0xDE, p1, index, factors))
    return ok(CommandAPDU(0x80, 0xFA, 0x00, 0x00, block))


@pytest.mark.parametrize("version", [1, 2])
def test_the_sam_reaches_the_keys_the_issuer_loads(world: World, version: int) -> None:
    """For every terminal key: the SAM, from the card's factors and the key version, computes the
    session key of the card key that the province's deriver gives (previous and current version)."""
    sam = SamOS(world.sam)
    sam.power_on()
    assert sam.process(bytes.fromhex("0020000003123456"))[-2:] == b"\x90\x00"
    national = world.v1 if version == 1 else world.v2
    card = CardKeyDeriver(derive_province(national, "41")).derive(CARD_SERIAL)
    block = bytes.fromhex("1122334455667788") + bytes(8)
    for spec in KEY_TABLE:
        if spec.sam_index is None or not spec.held_by(Holder.TERMINAL_SAM):
            continue
        assert spec.sam_p1 is not None
        province = b"41000000" if spec.depth is Depth.PROVINCE_CARD else b""
        factors = CARD_SERIAL + province + CHALLENGE + bytes([version])
        got = _session_cipher(sam, spec.sam_p1, spec.sam_index, factors, block)
        ks = recipes.session_key(card[spec.name], CHALLENGE)
        assert got == ecb_encrypt(Algorithm.SM4, ks, block), spec.name


def test_sam_refuses_a_bad_serial(world: World) -> None:
    with pytest.raises(InvalidValue) as caught:
        world.centre.sam(SamRequest(bytes(7), terminal_number(TERMINAL)))
    assert caught.value.field == "serial"


def test_a_sam_can_be_issued_on_a_leap_day(world: World) -> None:
    leap = dt.datetime(2028, 2, 29, 2, 0, tzinfo=dt.UTC)
    centre = KeyCentre(world.store, FixedClock(leap))  # same store: no new ceremony
    state = centre.sam(SamRequest(SAM_SERIAL, terminal_number(TERMINAL)))
    cert = verify_certificate(
        _ef(_sam_df01(state), 0x001C), centre.trust_store(), dt.date(2028, 2, 29), kind="sam"
    )
    assert cert.valid_from == dt.date(2028, 2, 29)
    assert dt.date(2038, 2, 27) <= cert.valid_until <= dt.date(2038, 2, 28)


# --- terminal numbers -------------------------------------------------------------------------


def test_terminal_number() -> None:
    assert terminal_number("410100000001") == bytes.fromhex("410100000001")
    assert terminal_number(" 440300123456 ") == bytes([0x44, 0x03, 0x00, 0x12, 0x34, 0x56])
    assert len(terminal_number("110100000001")) == 6


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("41010000001", "terminal"),
        ("4101000000012", "terminal"),
        ("41010000000A", "terminal"),
        ("4101-0000001", "terminal"),
        ("", "terminal"),
        ("990100000001", "province"),
        ("000100000001", "province"),
    ],
)
def test_terminal_number_errors_are_field_named(text: str, field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        terminal_number(text)
    assert caught.value.field == field
    if field == "terminal":
        assert "12 digits" in caught.value.message


def test_local_date_of_the_clock_is_shanghai() -> None:
    """The validity dates above are local dates: 2026-02-28 18:00 UTC is already 1 March there."""
    assert local_date(FixedClock(dt.datetime(2026, 2, 28, 18, 0, tzinfo=dt.UTC))) == dt.date(2026, 3, 1)
