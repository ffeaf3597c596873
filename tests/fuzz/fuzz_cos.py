"""libFuzzer (atheris) harness for the card OS's command processor, issue 9.

The fuzz input is a starting state and a sequence of C-APDUs::

    state(1)  [ len(1)  apdu(len) ] ...

``state`` picks where the sequence starts (powered on; DDF1/EF05 selected; DF01 with its read and
update keys and a challenge pending; the PIN verified; a blocked card).  Each input gets a fresh
copy of the issued demo card; every answer must be a well-formed R-APDU: at least SW1 SW2, a status
word of the card's table (or a counted 61xx / 63Cx / 6Cxx), data only with a success status,
never 6F00 (the answer to an exception inside the card).  An assertion failure is a crash.

Run (bounded, as ``make test`` does through tests/unit/test_fuzz_atheris.py)::

    .venv/bin/python tests/fuzz/fuzz_cos.py -max_total_time=20 CORPUS_DIR SEED_DIR

``--write-seeds DIR`` writes the seed inputs made from tests/vectors/apdu-shapes.txt into DIR.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["healthcard"]):
    from healthcard.card import cos, filesystem
    from healthcard.card.cos import CardOS
    from healthcard.card.sw import SW, is_success

from healthcard.demo import DEMO_SERIAL, demo_contents, issue_demo_card
from healthcard.keys import recipes
from healthcard.keys.cardkeys import demo_master_keys, derive_card_keys
from healthcard.keys.recipes import province_factor
from healthcard.keys.table import BY_NAME

SHAPES = Path(__file__).parents[1] / "vectors" / "apdu-shapes.txt"
KNOWN_SW = {int(sw) for sw in SW}
_ = (cos, filesystem)  # instrumented


def _issued() -> cos.CardState:
    contents = demo_contents()
    contents.pin = "123456"
    return issue_demo_card(contents=contents)


ISSUED = _issued()
KEYS = derive_card_keys(demo_master_keys(), DEMO_SERIAL, province_factor("410100"))


def _send(card: CardOS, hexa: str) -> bytes:
    response = card.process(bytes.fromhex(hexa))
    assert response[-2:] == b"\x90\x00", (hexa, response.hex())
    return response[:-2]


def _auth(card: CardOS, name: str) -> None:
    challenge = _send(card, "0084000008")
    plain = bytes(range(8))
    cryptogram = recipes.cryptogram(recipes.session_key(KEYS[name], challenge), plain)
    _send(card, f"008200{BY_NAME[name].kid:02X}11" + (cryptogram + plain + b"\x01").hex())


def _start(state: int) -> CardOS:
    card = CardOS(copy.deepcopy(ISSUED))
    card.power_on()
    which = state % 5
    if which == 1:
        _send(card, "00A4000002DDF1")
        _send(card, "00A4000002EF05")
    elif which == 2:
        _send(card, "00A4000002DDF1")
        _send(card, "00A4000002DF01")
        _auth(card, "RK1DF01")
        _auth(card, "UK1DF01")
        _send(card, "00A4000002EF05")
        _send(card, "0084000008")
    elif which == 3:
        _send(card, "0020000103123456")
    elif which == 4:
        challenge = _send(card, "0084000008")
        ks = recipes.session_key(KEYS["BKMF"], challenge)
        _send(card, "8416000004" + recipes.sm_mac_body(ks, bytes.fromhex("84160000")).hex())
        _send(card, "00A4000002DDF1")
    return card


def _plausible(sw: int) -> bool:
    sw1, sw2 = sw >> 8, sw & 0xFF
    return sw in KNOWN_SW or sw1 in (0x61, 0x6C) or (sw1 == 0x63 and sw2 & 0xF0 == 0xC0)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    card = _start(data[0])
    pos = 1
    while pos < len(data):
        length = data[pos]
        raw = data[pos + 1 : pos + 1 + length]
        pos += 1 + length
        response = card.process(raw)
        if not isinstance(response, bytes) or len(response) < 2:
            raise AssertionError(f"no status word for {raw.hex()}")
        sw = int.from_bytes(response[-2:], "big")
        if sw == SW.NO_PRECISE_DIAGNOSIS:
            raise AssertionError(f"6F00 (an exception inside the card) for {raw.hex()}")
        if not _plausible(sw):
            raise AssertionError(f"status word {sw:04X} for {raw.hex()}")
        if len(response) > 2 and not is_success(sw):
            raise AssertionError(f"data with {sw:04X} for {raw.hex()}")


def seeds() -> list[bytes]:
    """Fuzz inputs made of the real C-APDUs of tests/vectors/apdu-shapes.txt, in every state."""
    apdus = []
    for line in SHAPES.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "->" not in line:
            continue
        command = line.split(":", 1)[1].split("->")[0].strip()
        if "<" not in command:
            apdus.append(bytes.fromhex(command))
    chained = b"".join(bytes([len(a)]) + a for a in apdus)
    out = [bytes([state]) + bytes([len(a)]) + a for state in range(5) for a in apdus]
    out += [bytes([state]) + chained for state in range(5)]
    return out


def write_seeds(where: Path) -> int:
    where.mkdir(parents=True, exist_ok=True)
    made = seeds()
    for n, seed in enumerate(made):
        (where / f"seed-{n:03d}").write_bytes(seed)
    return len(made)


def main(argv: list[str]) -> None:
    if len(argv) > 2 and argv[1] == "--write-seeds":
        print(write_seeds(Path(argv[2])))
        return
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
