"""A card pulled, or the SAM removed, at every APDU of every multi-APDU operation of the SDK
(HealthCard issue 9, "Faults").

For each operation — open (SAM PIN verify, card selects), the swipe summary, an external
authenticate, a visit record with its fees (the settlement write), a multi-item write, a
cyclic write and a photo in short APDUs — a clean run counts its card and SAM APDUs; then the
operation is run again once per APDU index with :class:`~healthcard.terminal.faults.PulledTransport`
removing the card (or the SAM) there.  Each time:

* the SDK raises :class:`CardRemoved` (or :class:`SamRemoved`) naming the step, with the PC/SC
  error as its cause;
* every EF of the card holds its content before the operation or after it — or, for a write of
  several records in one file, every *record* is the old or the new one (the card is atomic per
  APDU; docs/card.md "Faults");
* a visit record is never valid in its index unless its file holds the whole new record;
* the card, re-inserted, takes the same operation again and ends exactly as the clean run.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from healthcard.card.cos import CardOS, CardState
from healthcard.card.filesystem import EF, FileKind
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam
from healthcard.errors import CardRemoved, SamRemoved
from healthcard.keys.certificates import ED_SIGNED_LENGTH, EE_SIGNED_LENGTH, SIGNATURE_LENGTH
from healthcard.terminal.faults import SCARD_E_READER_UNAVAILABLE, SCARD_W_REMOVED_CARD, PulledTransport
from healthcard.terminal.pcsc import PcscError
from healthcard.terminal.records import Code, Diagnosis, Fee, Medication, OutpatientRecord
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

VISIT = OutpatientRecord(
    institution_name="郑州大学第一附属医院",
    institution_code="41000000-1",
    visit_time=dt.datetime(2027, 3, 4, 9, 30, 15),
    outpatient_no="MZ000001",
    department="内科",
    payment_method=Code("03", "新型农村合作医疗"),
    diagnoses=[Diagnosis("头痛", "R51", dt.date(2027, 3, 4), "偏头痛", "G43.9")],
    medications=[Medication("布洛芬缓释胶囊", "3", "每日2次", "mg", "300", "01")],
    fees=[Fee("西药费", "1", 2351), Fee("诊查费", "2", 1000)],
)

PHOTO = "3F00/DDF1/EF07"
STEPS_NAMED: set[str] = set()
#: a card step names the command and the file: "UPDATE BINARY DF03/ED01", "SELECT DF02"
CARD_STEP = re.compile(r"[A-Z][A-Za-z0-9 ()]* (MF|DDF1|DF0[1-3])(/(EF0[5-8]|E[DE]0[1-5]))?")
Operation = Callable[[HealthCardTerminal], object]
OPERATIONS: dict[str, tuple[Operation, bool]] = {  # name -> (operation, extended APDUs)
    "open": (lambda t: t.open(), True),
    "read the summary (swipe)": (lambda t: t.swipe(), True),
    "external authenticate UK1DF03": (lambda t: t.authenticate("UK1DF03"), True),
    "write a visit record (settlement)": (lambda t: t.write_outpatient_record(VISIT), True),
    "write three items of DDF1/EF08": (
        lambda t: t.write_validity(dt.date(2031, 12, 31), phones=["13800000001", "13900000002"]),
        True,
    ),
    "add an allergy (cyclic, SM)": (lambda t: t.add_allergy("青霉素", "皮疹"), True),
    "write the photo in short APDUs": (
        lambda t: t.write_photo(b"\xff\xd8" + bytes(range(256)) * 8 + b"\xff\xd9"),
        False,
    ),
}


def files_of(state: CardState) -> dict[str, EF]:
    return {
        f"{df.path()}/{fid:04X}": copy.deepcopy(node)
        for df in state.mf.walk()
        for fid, node in df.children.items()
        if isinstance(node, EF)
    }


def body(ef: EF) -> bytes | list[bytes]:
    """The file's content; in a visit file the SM2 signature (random per signing) reads as zeros,
    so two signings of the same record compare equal — everything else counts."""
    if ef.kind is not FileKind.TRANSPARENT:
        return [bytes(r) for r in ef.records]
    data = bytearray(ef.data)
    signed = {0xED: ED_SIGNED_LENGTH, 0xEE: EE_SIGNED_LENGTH}.get(ef.fid >> 8)
    if signed is not None and any(data[signed : signed + SIGNATURE_LENGTH]):
        data[signed : signed + SIGNATURE_LENGTH] = bytes(SIGNATURE_LENGTH)
    return bytes(data)


@dataclass
class Rig:
    card_os: CardOS
    card: PulledTransport
    sam: PulledTransport
    terminal: HealthCardTerminal


def rig(state: CardState, extended: bool) -> Rig:
    card_os = CardOS(state)
    card = PulledTransport(SimulatorTransport(card_os), after=1 << 30)
    sam = PulledTransport(SimulatorTransport(SamOS(demo_sam())), after=1 << 30, sam=True)
    return Rig(card_os, card, sam, HealthCardTerminal(card, sam, extended=extended))


@pytest.fixture(scope="module")
def figures() -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    yield counts
    counts["distinct steps named in the errors"] = len(STEPS_NAMED)
    print(
        "\nterminal removal figures:\n"
        + json.dumps(dict(sorted(counts.items())), indent=1, ensure_ascii=False)
    )


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_removal_at_every_apdu(name: str, issued_state: CardState, figures: Counter[str]) -> None:
    operation, extended = OPERATIONS[name]
    opens = name != "open"

    def fresh() -> Rig:
        r = rig(copy.deepcopy(issued_state), extended)
        if opens:
            r.terminal.open()
        return r

    clean = fresh()
    card_before, sam_before = clean.card.exchanges, clean.sam.exchanges
    before = files_of(clean.card_os.state)
    operation(clean.terminal)
    after = files_of(clean.card_os.state)
    card_apdus, sam_apdus = clean.card.exchanges - card_before, clean.sam.exchanges - sam_before
    assert card_apdus > 1 or sam_apdus > 1, "not a multi-APDU operation"
    changed = {path for path in before if body(before[path]) != body(after[path])}

    for slot, count in (("card", card_apdus), ("SAM", sam_apdus)):
        for index in range(count):
            where = f"({name}: {slot} removed at its APDU {index + 1} of {count})"
            r = fresh()
            pulled = r.card if slot == "card" else r.sam
            pulled.after = pulled.exchanges + index
            with pytest.raises(CardRemoved if slot == "card" else SamRemoved) as caught:
                operation(r.terminal)
            error = caught.value
            assert isinstance(error, CardRemoved | SamRemoved), where
            assert isinstance(error.__cause__, PcscError), where
            expected_code = SCARD_W_REMOVED_CARD if slot == "card" else SCARD_E_READER_UNAVAILABLE
            assert error.__cause__.hresult == expected_code, where
            assert error.step and error.step in str(error), where
            assert f"the {slot} was removed during" in str(error), where
            if slot == "card":
                assert CARD_STEP.fullmatch(error.step), f"{error.step} {where}"
            else:
                assert error.step.startswith("SAM "), where
            STEPS_NAMED.add(error.step)

            # the card holds, file by file (record by record), the old or the new content
            now = files_of(r.card_os.state)
            for path, ef in now.items():
                old, new = body(before[path]), body(after[path])
                got = body(ef)
                if got in (old, new):
                    figures["files old" if got == old else "files new"] += 1
                    continue
                if path == PHOTO:  # short APDUs: the photo reads as absent until written whole
                    assert isinstance(got, bytes) and got[:2] == bytes(2), f"the photo is torn {where}"
                    figures["photo absent mid-write (length 0), never torn"] += 1
                    continue
                assert isinstance(got, list) and isinstance(old, list) and isinstance(new, list), (
                    f"{path} is torn {where}"
                )
                for n, record in enumerate(got):
                    assert record in (old[n], new[n]), f"{path} record {n + 1} is torn {where}"
                figures["files with some records new, each whole"] += 1
            index_path, visit_path = "3F00/DDF1/DF03/EF06", "3F00/DDF1/DF03/ED01"
            if body(now[index_path]) != body(before[index_path]):  # the slot went valid: whole record
                assert body(now[visit_path]) == body(after[visit_path]), where

            # re-inserted, the same operation completes and ends as the clean run
            again = rig(r.card_os.state, extended)
            if opens:
                again.terminal.open()
            operation(again.terminal)
            assert {p: body(e) for p, e in files_of(again.card_os.state).items()} == {
                p: body(e) for p, e in after.items()
            }, f"the retry did not end as the clean run {where}"
            figures["removals"] += 1
            figures[f"removals of the {slot}"] += 1
    figures["operations"] += 1
    figures["files changed by the operations"] += len(changed)
