"""``healthcard agent``'s set-up: card and SAM images become slots and the SAM, a simulated
card's writes go back to its image file, and contradictory options are refused."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from healthcard.agent.cli import build_agent, slot_name
from healthcard.card import image
from healthcard.card.cos import CardOS, CardState
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam
from healthcard.errors import InvalidValue
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

SEALER = image.Sealer(image.DEMO_PASSPHRASE)


def options(**given: object) -> dict[str, object]:
    base: dict[str, object] = {
        "cards": [],
        "sam": None,
        "sam_reader": None,
        "sam_pin": "123456",
        "platform": None,
        "terminal_id": None,
        "trust": None,
        "hotlist": None,
        "pcsc": False,
        "passphrase": "",
    }
    base.update(given)
    return base


def test_a_simulated_cards_write_is_saved_to_its_image(
    issued_state: CardState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTHCARD_DATA_DIR", str(tmp_path))  # no trust.json there
    card, sam = tmp_path / "410102199003070019.card", tmp_path / "41010001.sam"
    image.save(copy.deepcopy(issued_state), card, SEALER)
    image.save(demo_sam(), sam, SEALER)
    agent = build_agent(**options(cards=[card, card], sam=sam))  # type: ignore[arg-type]
    assert [r.name for r in agent.readers()] == ["sim-410102199003070019", "sim-410102199003070019-2"]
    answer = agent.write("outpatient", {"MZH": "MZ9", "JZRQSJ": "20261123100000"})
    assert answer["slot"] == 1 and answer["verification"]["verified"] is False  # no trust store given
    saved = image.load(card, SEALER)
    with HealthCardTerminal(SimulatorTransport(CardOS(saved)), SimulatorTransport(SamOS(demo_sam()))) as t:
        assert [r.outpatient_no for r in t.recent_outpatient()] == ["MZ9"]


def test_sam_image_and_sam_reader_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue) as refused:
        build_agent(**options(sam=tmp_path / "x.sam", sam_reader="Virtual PCD 00 01"))  # type: ignore[arg-type]
    assert refused.value.field == "sam"


def test_slot_names_are_safe_and_unique() -> None:
    taken: set[str] = set()
    assert slot_name(Path("a b/张三 1.card"), taken) == "sim-___1"
    assert slot_name(Path("c/张三 1.card"), taken) == "sim-___1-2"
