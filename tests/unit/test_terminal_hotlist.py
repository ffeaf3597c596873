"""The terminal refuses a hot-listed card (ARCHITECTURE.md §6 flows 2 and 5), end to end in
process: a key centre with provinces 41 and 44, cards issued from their keys, a Henan terminal
SAM, hot lists signed by the provinces' card centres.

A listed card is refused in :meth:`HealthCardTerminal.open` after reading only its card number
from DDF1/EF05 (free read), before the SAM is powered; a card not on the list opens exactly as
it did without a hot list."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass

import pytest

from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import CardOS, CardState
from healthcard.card.filesystem import LifeCycle
from healthcard.card.personalise import CardContents
from healthcard.card.sam import SamOS
from healthcard.clock import FixedClock
from healthcard.demo import demo_contents
from healthcard.errors import HotListed
from healthcard.issuance.cards import issue_simulated_card
from healthcard.issuance.keycentre import KeyCentre, SamRequest, terminal_number
from healthcard.keys import ceremony
from healthcard.keys.certificates import TrustStore
from healthcard.keys.kek import PassphraseKek
from healthcard.keys.keystore import KeyStore
from healthcard.terminal.compat import IRV, Op, irv_for
from healthcard.terminal.hotlist import (
    HotList,
    HotListEntry,
    HotListReason,
    TerminalHotList,
    delta_list,
    encode,
    full_list,
    sign_hotlist,
)
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 24)
HENAN = bytes.fromhex("0081866B00001015")
HENAN_2 = bytes.fromhex("0081866B00001016")
GUANGDONG = bytes.fromhex("008586530002E8E4")

#: every APDU the card may see before the refusal: SELECT DDF1, SELECT EF05, READ RECORD tag 08
REFUSAL_APDUS = [
    bytes.fromhex("00A4000002DDF1"),
    bytes.fromhex("00A4000002EF05"),
    bytes.fromhex("00B2080000"),
]


def contents(city: str, card_number: str) -> CardContents:
    c = demo_contents()
    c.items["DDF1/EF05"]["city_code"] = city
    c.items["DDF1/EF05"]["card_number"] = card_number
    return c


@dataclass
class World:
    centre: KeyCentre
    trust: TrustStore
    sam: CardState
    henan: CardState
    henan_2: CardState
    guangdong: CardState

    def signed(self, unsigned: HotList) -> bytes:
        return encode(sign_hotlist(unsigned, lambda m: self.centre.sign_as_issuer(unsigned.province, m)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    clock = FixedClock(NOW)
    store = KeyStore.create(tmp_path_factory.mktemp("hotlist") / "keystore.json", PassphraseKek("pw"), clock)
    centre = KeyCentre(store, clock)
    centre.ceremony(ceremony.combine(ceremony.generate(3)[1], 3))
    p41, p44 = centre.derive_province("41"), centre.derive_province("44")
    return World(
        centre,
        centre.trust_store(),
        centre.sam(SamRequest(bytes.fromhex("4101000000000001"), terminal_number("410100000001"))),
        issue_simulated_card(centre, p41, HENAN, contents("410100", "410102199003070019")),
        issue_simulated_card(centre, p41, HENAN_2, contents("410100", "410102198001010011")),
        issue_simulated_card(centre, p44, GUANGDONG, contents("440600", "440604198805120027")),
    )


@pytest.fixture(scope="module")
def lists(world: World) -> dict[str, bytes]:
    """Henan v1 lists the first Henan card as lost; the delta 1→2 takes it off (found again);
    Guangdong v4 lists its card as replaced."""
    lost = HotListEntry(HENAN, "410102199003070019", HotListReason.LOST, NOW)
    other = HotListEntry(
        bytes.fromhex("0081866B000010FF"), "410102197001010015", HotListReason.CANCELLED, NOW
    )
    replaced = HotListEntry(GUANGDONG, "440604198805120027", HotListReason.REPLACED, NOW)
    return {
        "41v1": world.signed(full_list("41", 1, [lost, other], NOW)),
        "41d12": world.signed(delta_list("41", 1, 2, [], [HENAN], NOW)),
        "44v4": world.signed(full_list("44", 4, [replaced], NOW)),
    }


def hot(world: World, *documents: bytes) -> TerminalHotList:
    held = TerminalHotList()
    for data in documents:
        held.load(data, trust=world.trust, today=TODAY)
    return held


def terminal(world: World, card: CardState, hotlist: TerminalHotList | None) -> HealthCardTerminal:
    return HealthCardTerminal(
        SimulatorTransport(CardOS(copy.deepcopy(card))),
        SimulatorTransport(SamOS(copy.deepcopy(world.sam))),
        hotlist=hotlist,
    )


def commands(transport: object) -> list[bytes]:
    assert isinstance(transport, SimulatorTransport)
    return [e.command for e in transport.trace.exchanges]


def test_a_hot_listed_card_is_refused_having_read_only_its_card_number(
    world: World, lists: dict[str, bytes]
) -> None:
    t = terminal(world, world.henan, hot(world, lists["41v1"], lists["44v4"]))
    with pytest.raises(HotListed) as refused:
        t.open()
    assert str(refused.value) == (
        "card 410102199003070019 (chip 0081866B00001015) is on the hot list of province 41 v1: lost"
    )
    assert refused.value.card_number == "410102199003070019"
    assert refused.value.reason == "lost"
    assert commands(t.card) == REFUSAL_APDUS  # SELECT DDF1, SELECT EF05, READ RECORD tag 08: nothing else
    assert commands(t.sam) == []  # the SAM was never used for this card
    assert t.sam_keys.version == 0  # not even its ATR was read


def test_the_card_number_comes_from_the_card(world: World) -> None:
    # the list knows the chip by another number (a centre's mistake): the clerk sees the card's
    listed = HotListEntry(HENAN, "410102190001010000", HotListReason.CANCELLED, NOW)
    t = terminal(world, world.henan, hot(world, world.signed(full_list("41", 3, [listed], NOW))))
    with pytest.raises(HotListed, match=r"card 410102199003070019 .* province 41 v3: cancelled"):
        t.open()


def test_a_locked_card_on_the_list_is_refused_with_the_list_s_card_number(
    world: World, lists: dict[str, bytes]
) -> None:
    locked = copy.deepcopy(world.henan)
    locked.lifecycle = LifeCycle.BLOCKED  # a cancelled card the issuer locked: READ RECORD gives 6A81
    t = terminal(world, locked, hot(world, lists["41v1"]))
    with pytest.raises(HotListed) as refused:
        t.open()
    assert refused.value.card_number == "410102199003070019"
    assert commands(t.card) == REFUSAL_APDUS
    assert commands(t.sam) == []


def test_a_card_of_another_province_is_refused_by_its_province_s_list(
    world: World, lists: dict[str, bytes]
) -> None:
    t = terminal(world, world.guangdong, hot(world, lists["41v1"], lists["44v4"]))
    with pytest.raises(
        HotListed, match=r"card 440604198805120027 \(chip 008586530002E8E4\) .* province 44 v4: replaced"
    ):
        t.open()
    assert commands(t.sam) == []


def test_a_card_not_on_the_list_opens_exactly_as_before(world: World, lists: dict[str, bytes]) -> None:
    plain = terminal(world, world.henan_2, None)
    plain.open()
    listed = terminal(world, world.henan_2, hot(world, lists["41v1"], lists["44v4"]))
    listed.open()
    assert commands(listed.card) == commands(plain.card)
    assert commands(listed.sam) == commands(plain.sam)
    summary = listed.swipe()
    assert summary.issuer.card_number == "410102198001010011"
    assert summary.holder.name == "张三"


def test_a_card_taken_off_the_list_swipes_again(world: World, lists: dict[str, bytes]) -> None:
    held = hot(world, lists["41v1"])
    with pytest.raises(HotListed):
        terminal(world, world.henan, held).open()
    held.load(lists["41d12"], trust=world.trust, today=TODAY)  # 解挂: the lost card was found
    t = terminal(world, world.henan, held)
    t.open()
    assert t.read_issuer().card_number == "410102199003070019"
    assert t.read_holder().name == "张三"


def test_the_national_sdk_code_of_a_refused_card() -> None:
    error = HotListed("card … is on the hot list", card_number="410102199003070019", reason="lost")
    assert irv_for(error, Op.READ_RECORD) is IRV.IRV_CARD_ERR


def test_the_read_record_of_the_refusal_is_the_card_number_by_tag() -> None:
    # 00 B2 08 00 00: READ RECORD, P1 = tag 08 (卡号), P2 = 00 (by identifier), Le = 256
    assert CommandAPDU(0x00, 0xB2, 0x08, 0x00, le=256).to_bytes() == REFUSAL_APDUS[2]
