"""The key hierarchy end to end, in process: ceremony → province K2 → card, SAMs holding only the
national K1, key versions and rollover, 3DES, the city level, visit-record signatures."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator

import pytest

from healthcard import errors
from healthcard.card.cos import CardOS, CardState
from healthcard.card.filesystem import KeyUse
from healthcard.card.personalise import CardContents
from healthcard.card.sam import SamOS
from healthcard.clock import FixedClock
from healthcard.demo import demo_contents
from healthcard.issuance.cards import issue_simulated_card
from healthcard.issuance.keycentre import KeyCentre, SamRequest, terminal_number
from healthcard.keys import ceremony, sm2
from healthcard.keys.certificates import parse_certificate, visit_digest
from healthcard.keys.kek import PassphraseKek
from healthcard.keys.keyset import KeySet, derive_province
from healthcard.keys.keystore import KeyStore
from healthcard.keys.primitives import Algorithm
from healthcard.keys.table import Holder
from healthcard.terminal.compat import IRV, NationalSdk
from healthcard.terminal.records import OutpatientRecord
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

CLOCK = FixedClock(dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC))
TODAY = dt.date(2026, 11, 24)
HENAN = bytes.fromhex("0081866B00001015")
GUANGDONG = bytes.fromhex("008586530002E8E4")


def contents(city: str, card_number: str = "410102199003070019") -> CardContents:
    c = demo_contents()
    c.items["DDF1/EF05"]["city_code"] = city
    c.items["DDF1/EF05"]["card_number"] = card_number
    return c


class World:
    """A key centre with national v1 and provinces 41 and 44, and a Foshan terminal SAM."""

    def __init__(self, centre: KeyCentre) -> None:
        self.centre = centre
        self.p41 = centre.derive_province("41")
        self.p44 = centre.derive_province("44")
        self.sam = centre.sam(SamRequest(bytes.fromhex("4406000000000001"), terminal_number("440600000001")))
        self.henan = issue_simulated_card(centre, self.p41, HENAN, contents("410100"))
        self.guangdong = issue_simulated_card(
            centre,
            self.p44,
            GUANGDONG,
            contents("440600", "440604198805120027"),
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    store = KeyStore.create(tmp_path_factory.mktemp("keys") / "keystore.json", PassphraseKek("pw"), CLOCK)
    centre = KeyCentre(store, CLOCK)
    centre.ceremony(ceremony.combine(ceremony.generate(3)[1], 3))
    return World(centre)


def terminal(
    card: CardState, sam: CardState, centre: KeyCentre | None = None, **kw: object
) -> HealthCardTerminal:
    t = HealthCardTerminal(
        SimulatorTransport(CardOS(copy.deepcopy(card))),
        SimulatorTransport(SamOS(copy.deepcopy(sam))),
        trust=centre.trust_store() if centre else None,
        **kw,
    )
    t.open()
    return t


# --- acceptance: two provinces, one terminal, national keys only -----------------------------


def test_the_terminal_sam_holds_only_national_terminal_keys(world: World) -> None:
    app = world.sam.mf.children[0xDF01]
    indexes = {kid & 0xFF for (use, kid) in app.keys if use == KeyUse.MASTER}
    assert 0x31 in indexes and 0x2F in indexes
    assert not {0x06, 0x07} & indexes  # card lock and PIN unblock stay with issuers
    national = world.centre.national()
    p41 = world.p41
    held = {k.value for (use, _), k in app.keys.items() if use == KeyUse.MASTER}
    assert national["RK1DDF1"] in held
    assert p41["RK1DDF1"] not in held  # no province key in a terminal's SAM


def test_cards_of_two_provinces_authenticate_at_one_terminal(world: World) -> None:
    for card, name, city in ((world.henan, "张三", "410100"), (world.guangdong, "张三", "440600")):
        t = terminal(card, world.sam)
        assert t.city_code == city
        summary = t.swipe()
        assert summary.holder.name == name
        assert summary.alerts.other == "高血压"
        slot = t.write_outpatient_record(OutpatientRecord(institution_name="佛山市第一人民医院"))
        assert t.read_outpatient(slot).institution_name == "佛山市第一人民医院"


def test_a_card_with_the_wrong_province_factor_fails_6982_irv_irk_verr(world: World) -> None:
    # keys of Henan (41) but the card says it belongs to Guangdong: the SAM derives K2 of 44
    wrong = issue_simulated_card(
        world.centre, world.p41, bytes.fromhex("0081866B000010AA"), contents("440600")
    )
    t = terminal(wrong, world.sam)
    with pytest.raises(errors.AuthenticationFailed) as failed:
        t.authenticate("RK1DDF1")
    assert failed.value.sw & 0xFFF0 == 0x63C0
    # the card refuses the protected read: 6982, and the national SDK says IRV_IRK_VERR
    t._select_ef(0xEF06)
    with pytest.raises(errors.SecurityNotSatisfied) as refused:
        t._cmd(0x00, 0xB2, 0x01, 0x04, le=256)
    assert refused.value.sw == 0x6982
    rc, values = NationalSdk(terminal(wrong, world.sam)).iR_DDF1EF06Info()
    assert rc == IRV.IRV_IRK_VERR and values[0] == ""


# --- rollover --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rolled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KeyCentre, CardState, CardState]]:
    """national v1 → v2; a v1 card and a v2 card of province 41."""
    store = KeyStore.create(tmp_path_factory.mktemp("roll") / "keystore.json", PassphraseKek("pw"), CLOCK)
    centre = KeyCentre(store, CLOCK)
    centre.ceremony(ceremony.generate(2)[0])
    v1 = issue_simulated_card(centre, centre.derive_province("41"), HENAN, contents("410100"))
    old_sam = centre.sam(SamRequest(bytes.fromhex("4101000000000001"), terminal_number("410100000001")))
    centre.ceremony(ceremony.generate(2)[0])
    v2 = issue_simulated_card(
        centre,
        centre.derive_province("41"),
        bytes.fromhex("0081866B00002020"),
        contents("410100"),
    )
    yield centre, v1, v2
    del old_sam


def test_after_a_rollover_old_and_new_cards_authenticate(
    rolled: tuple[KeyCentre, CardState, CardState],
) -> None:
    centre, v1, v2 = rolled
    assert (v1.key_info().version, v2.key_info().version) == (1, 2)
    sam = centre.sam(SamRequest(bytes.fromhex("4101000000000002"), terminal_number("410100000002")))
    assert (sam.key_info().version, sam.key_info().previous) == (2, 1)
    old = terminal(v1, sam)
    old.sam.trace.clear()
    assert old.read_holder().name == "张三"
    loads = [e.command for e in old.sam.trace.exchanges if e.command[1] == 0xDE]
    assert loads and all(c[4] == 0x19 and c[-1] == 0x01 for c in loads)  # version byte appended
    new = terminal(v2, sam)
    new.sam.trace.clear()
    assert new.read_holder().name == "张三"
    loads = [e.command for e in new.sam.trace.exchanges if e.command[1] == 0xDE]
    assert loads and all(c[4] == 0x18 for c in loads)  # the current version: the real SDK's shape


def test_a_card_of_a_version_the_sam_lacks_is_refused_before_authenticating(
    rolled: tuple[KeyCentre, CardState, CardState],
) -> None:
    centre, _, v2 = rolled
    old_sam = centre.sam(SamRequest(bytes.fromhex("4101000000000003"), terminal_number("410100000003")))
    # a SAM holding only v1 (as before the rollover): strip its v2 keys
    app = old_sam.mf.children[0xDF01]
    for key in [k for k in app.keys if k[0] == KeyUse.MASTER and k[1] >> 8 == 2]:
        del app.keys[key]
    t = terminal(v2, old_sam)
    t.card.trace.clear()
    with pytest.raises(errors.KeyVersionError, match=r"version 2; this SAM holds version 1.*replace the SAM"):
        t.read_holder()
    assert not [e for e in t.card.trace.exchanges if e.command[1] == 0x82]


def test_the_sam_refuses_an_unknown_version_byte(world: World) -> None:
    sam = SamOS(copy.deepcopy(world.sam))
    sam.power_on()
    for apdu in ("00A40000023F00", "00A4000002DF01", "0020000003123456"):
        sam.process(bytes.fromhex(apdu))
    data = HENAN + b"41000000" + bytes(8)
    assert sam.process(bytes.fromhex("80DE473118") + data)[-2:] == b"\x90\x00"
    assert sam.process(bytes.fromhex("80DE473119") + data + b"\x07")[-2:] == b"\x6a\x88"
    assert sam.process(bytes.fromhex("80DE473106") + data[:6])[-2:] == b"\x67\x00"


# --- 3DES and the city level ---------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [Algorithm.SM4, Algorithm.TDES])
def test_cards_work_end_to_end_in_each_algorithm(
    tmp_path_factory: pytest.TempPathFactory, algorithm: Algorithm
) -> None:
    store = KeyStore.create(tmp_path_factory.mktemp("alg") / "keystore.json", PassphraseKek("pw"), CLOCK)
    centre = KeyCentre(store, CLOCK)
    centre.ceremony(ceremony.generate(2)[0], algorithm)
    card = issue_simulated_card(centre, centre.derive_province("41"), HENAN, contents("410100"))
    assert card.key_info().algorithm == algorithm
    sam = centre.sam(SamRequest(bytes.fromhex("4101000000000001"), terminal_number("410100000001")))
    t = terminal(card, sam, centre)
    assert t.swipe().holder.name == "张三"
    t.write_medical_alerts(other="青霉素过敏史")  # enc + MAC secure messaging
    t.add_allergy("花粉", "哮喘")
    slot = t.write_outpatient_record(OutpatientRecord(institution_name="郑州大学第一附属医院"))
    assert t.read_medical_alerts().other == "青霉素过敏史"
    assert t.read_allergies()[0].allergen == "花粉"
    assert t.verify_visit("ED", slot, TODAY).terminal_number == bytes.fromhex("410100000001")


def test_the_optional_city_level(world: World) -> None:
    city = world.centre.derive_city("4101")
    card = issue_simulated_card(world.centre, city, bytes.fromhex("0081866B00003030"), contents("410100"))
    assert card.key_info().city_level
    t = terminal(card, world.sam)
    t.sam.trace.clear()
    t.write_medical_alerts(other="冠心病")
    assert t.read_medical_alerts().other == "冠心病"
    p1s = {e.command[2] for e in t.sam.trace.exchanges if e.command[1] == 0xDE}
    assert {0x67, 0x68} <= p1s  # three levels (province, city, card) for UK1DF02 and STKDF02
    assert not {0x47, 0x48} & p1s


def test_a_province_set_of_another_province_does_not_open_the_card(world: World) -> None:
    wrong_k2: KeySet = derive_province(world.centre.national(), "44")
    assert wrong_k2["RK1DDF1"] != world.p41["RK1DDF1"]
    assert wrong_k2["UK1DDF1"] == world.p41["UK1DDF1"]  # card-only keys are national


# --- visit-record signatures ----------------------------------------------------------------


def test_visit_records_are_signed_by_the_sam_and_verified_against_the_root(world: World) -> None:
    t = terminal(world.henan, world.sam, world.centre)
    slot = t.write_outpatient_record(OutpatientRecord(institution_name="佛山市第一人民医院"))
    signer = t.verify_visit("ED", slot, TODAY)
    assert signer.kind == "sam" and signer.terminal_number == bytes.fromhex("440600000001")
    data, tail = t.read_visit_bytes("ED", slot, 0, 3013), t.read_visit_bytes("ED", slot, 3013, 254)
    cert = parse_certificate(tail[64:])  # the SAM certificate at 3077
    assert cert.subject_id == bytes.fromhex("4406000000000001")
    assert sm2.verify(cert.public_key, visit_digest("ED", data), tail[:64])  # signature at 3013
    # a byte changed in the data part: forged
    t.write_visit_bytes("ED", slot, 10, b"X")
    with pytest.raises(errors.CertificateError) as bad:
        t.verify_visit("ED", slot, TODAY)
    assert bad.value.reason == "forged"


def test_an_unsigned_record_says_so(world: World) -> None:
    t = terminal(world.henan, world.sam, world.centre, sign_visits=False)
    slot = t.write_inpatient_record({"ZYJGMC": "河南省人民医院"})
    with pytest.raises(errors.CertificateError) as unsigned:
        t.verify_visit("EE", slot, TODAY)
    assert unsigned.value.reason == "unsigned"


def test_the_sam_signs_only_after_its_pin(world: World) -> None:
    sam = SamOS(copy.deepcopy(world.sam))
    sam.power_on()
    sam.process(bytes.fromhex("00A4000002DF01"))
    assert sam.process(bytes.fromhex("80F8000020") + bytes(32))[-2:] == b"\x69\x82"
    sam.process(bytes.fromhex("0020000003123456"))
    assert sam.process(bytes.fromhex("80F8000010") + bytes(16))[-2:] == b"\x67\x00"
    assert sam.process(bytes.fromhex("80F8000020") + bytes(32))[-2:] == b"\x61\x40"
    signature = sam.process(bytes.fromhex("00C0000040"))[:-2]
    cert = parse_certificate(bytes(world.sam.mf.children[0xDF01].children[0x001C].data))
    assert sm2.verify(cert.public_key, bytes(32), signature)


def test_a_sam_of_issuer_role_holds_lock_and_unblock_masters(world: World) -> None:
    sam = world.centre.sam(
        SamRequest(bytes.fromhex("4100000000000009"), terminal_number("410000000009"), role=Holder.ISSUER_SAM)
    )
    indexes = {kid & 0xFF for (use, kid) in sam.mf.children[0xDF01].keys if use == KeyUse.MASTER}
    assert {0x06, 0x07} <= indexes
