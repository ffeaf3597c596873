"""The demo card answers every exchange of ``tests/vectors/apdu-shapes.txt`` (real terminals and
real health cards, vendor logs 2015) in the same shape: byte for byte where the log is literal,
``<n bytes>`` where it differs per card.

The authentication cryptogram is computed here independently of ``healthcard.keys``, straight
from DECISIONS.md §10–14 with the ``cryptography`` package's SM4, so the card and the decisions
are pinned together, not the card against itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from healthcard.card.profile import PROFILE_32K, tlv_items
from healthcard.demo import DEMO_SERIAL
from healthcard.keys.cardkeys import demo_master_keys
from healthcard.keys.table import BY_NAME

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "apdu-shapes.txt"
READ_PLAIN = bytes.fromhex("1122334455667788")


def shape_lines() -> list[tuple[str, str, str]]:
    """(label, C-APDU template, R-APDU template) of every exchange in the vectors file."""
    out = []
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.match(r"^(?P<label>[^:]+):\s+(?P<cmd>.+?)\s+->\s+(?P<resp>.+?)\s*$", line)
        assert match, f"unparsable line in {VECTORS.name}: {line!r}"
        out.append((match["label"].strip(), match["cmd"], match["resp"]))
    return out


def template_regex(template: str) -> re.Pattern[str]:
    """``0812<18 bytes> 9000`` → a regex over upper-case hex without spaces."""
    parts = []
    for literal, placeholder in re.findall(r"([0-9A-Fa-f ]+)|<([^>]*)>", template):
        if literal:
            parts.append(re.escape(literal.replace(" ", "").upper()))
        else:
            size = re.search(r"(\d+) bytes", placeholder)
            parts.append(f"(?:[0-9A-F]{{{2 * int(size[1])}}})" if size else "(?:[0-9A-F]{2})+")
    return re.compile("".join(parts))


def _sm4(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _diversify(key: bytes, factor: bytes) -> bytes:
    """DECISIONS.md §10: ``D(K, f) = SM4_K(f ‖ NOT f)``."""
    return _sm4(key, factor + bytes(b ^ 0xFF for b in factor))


def independent_cryptogram(key_name: str, challenge: bytes, plain: bytes) -> bytes:
    """DECISIONS.md §11–14 from the demo level-1 key: Kc, Ks, then ``A = C[0:8] XOR C[8:16]``."""
    spec = BY_NAME[key_name]
    assert spec.sam_index is not None
    k1 = demo_master_keys()[spec.sam_index]
    k2 = _diversify(k1, b"41000000") if spec.depth.name == "PROVINCE_CARD" else k1
    kc = _diversify(k2, DEMO_SERIAL)
    ks = _diversify(kc, challenge)
    c = _sm4(ks, plain + bytes(8))
    return bytes(a ^ b for a, b in zip(c[:8], c[8:], strict=True))


def test_independent_cryptogram_matches_the_keys_package(card_keys):
    """Sanity check of the helper: the demo card's RK1DF03 is the key derived here."""
    from healthcard.keys import recipes

    r = bytes(range(8))
    ks = recipes.session_key(card_keys["RK1DF03"], r)
    assert recipes.cryptogram(ks, READ_PLAIN) == independent_cryptogram("RK1DF03", r, READ_PLAIN)


# --- one scenario per line of the vectors file: returns the exchanges it made ---------------
Exchange = tuple[bytes, bytes]  # (command, response)


def _literal(card, cmd: str) -> list[Exchange]:
    command = bytes.fromhex(cmd)
    return [(command, card.os.process(command))]


def select_ddf1(card, cmd):
    return _literal(card, cmd)


def select_in_ddf1(card, cmd):
    card.select("DDF1")
    return _literal(card, cmd)


def read_ddf1_ef05(card, cmd):
    card.select("DDF1", "EF05")
    return _literal(card, cmd)


def read_other_tlv_records(card, cmd):
    """``00B2<rec>0400`` on every record of every TLV file except DDF1/EF05, after RK auth."""
    assert cmd == "00B2<rec>0400"
    exchanges = []
    for spec in PROFILE_32K.files():
        if spec.kind.name != "TLV_RECORD" or (spec.df, spec.name) == ("DDF1", "EF05"):
            continue
        card.os.power_on()
        card.select("DDF1")
        if spec.df != "DDF1":
            card.select(spec.df)
        card.auth_ok("RK1DDF1" if spec.df == "DDF1" else f"RK1{spec.df}")
        card.select(spec.name)
        items = [i for i in tlv_items() if i.df == spec.df and i.ef == spec.name]
        for it in items:
            command = bytes([0x00, 0xB2, it.record, 0x04, 0x00])
            response = card.os.process(command)
            # the value is the item's: right tag, right length
            assert response[:2] == bytes([it.tag, it.length]), (spec.df, spec.name, it.name, response.hex())
            assert len(response) == 2 + it.length + 2
            exchanges.append((command, response))
    assert len(exchanges) == 5 + 6 + 4 + 9 + 3 + 4 + 15 + 1  # every record of the 8 files
    return exchanges


def get_challenge(card, cmd):
    card.select("DDF1")
    exchanges = _literal(card, cmd) + _literal(card, cmd)
    assert exchanges[0][1][:8] != exchanges[1][1][:8], "two challenges in a row are equal"
    return exchanges


def external_authenticate_df03(card, cmd):
    card.select("DDF1", "DF03")
    challenge = card.challenge()
    a = independent_cryptogram("RK1DF03", challenge, READ_PLAIN)
    command = bytes.fromhex("0082008411") + a + READ_PLAIN + b"\x01"
    response = card.os.process(command)
    # and the authentication is real: ED01 is readable now, and was not before
    card.select("ED01")
    assert card.sw("00B0000010") == 0x9000
    return [(command, response)]


def read_binary_ed01(card, cmd):
    card.select("DDF1", "DF03", "ED01")
    assert card.sw(cmd) == 0x6982  # not before the read key
    card.select("DF03")
    card.auth_ok("RK1DF03")
    card.select("ED01")
    return _literal(card, cmd)


SCENARIOS = {
    "SELECT DDF1 by FID": select_ddf1,
    "SELECT DF01 by FID": select_in_ddf1,
    "SELECT DF02 by FID": select_in_ddf1,
    "SELECT DF03 by FID": select_in_ddf1,
    "SELECT EF05 (in DDF1)": select_in_ddf1,
    "READ RECORD tag 08 (card number, ans 18) by identifier": read_ddf1_ef05,
    "READ RECORD tag 39 (application city code, cn 3)": read_ddf1_ef05,
    "READ RECORD tag 01 (card category)": read_ddf1_ef05,
    "READ RECORD by number (other TLV files)": read_other_tlv_records,
    "GET CHALLENGE": get_challenge,
    "EXTERNAL AUTHENTICATE (read key of DF03)": external_authenticate_df03,
    "READ BINARY (ED01, 128 bytes at offset 0)": read_binary_ed01,
}

#: the log's card was issued in Liaoning (city 210000); the demo card in Zhengzhou (410100)
DEMO_SUBSTITUTIONS = {"3903210000 9000": "3903410100 9000"}


def test_every_line_of_the_vectors_file_has_a_scenario():
    assert [label for label, _, _ in shape_lines()] == list(SCENARIOS)


@pytest.mark.parametrize(("label", "cmd", "resp"), shape_lines(), ids=[line[0] for line in shape_lines()])
def test_shape(card, label, cmd, resp):
    expected = DEMO_SUBSTITUTIONS.get(resp, resp)
    exchanges = SCENARIOS[label](card, cmd)
    assert exchanges
    cmd_re, resp_re = (
        template_regex(cmd if "<rec>" not in cmd else cmd.replace("<rec>", "<1 bytes>")),
        template_regex(expected),
    )
    for command, response in exchanges:
        assert cmd_re.fullmatch(command.hex().upper()), (
            f"{label}: sent {command.hex().upper()}, log shape {cmd}"
        )
        assert resp_re.fullmatch(response.hex().upper()), (
            f"{label}: got {response.hex().upper()}, log {expected}"
        )


def test_ddf1_select_is_byte_exact(card):
    assert (
        card.os.process(bytes.fromhex("00A4000002DDF1")).hex().upper()
        == "6F10840C57532E5359532E4444463031A5009000"
    )


@pytest.mark.parametrize(
    ("df", "aid"), [("DF01", "915600013200"), ("DF02", "915600013201"), ("DF03", "915600013202")]
)
def test_df_fci_is_byte_exact(card, df, aid):
    card.select("DDF1")
    assert card.send(f"00A4000002{df}") == (bytes.fromhex(f"6F088406{aid}"), 0x9000)


def test_demo_card_identifier_reads(card):
    card.select("DDF1", "EF05")
    assert card.send("00B2080014") == (b"\x08\x12" + b"410102199003070019", 0x9000)
    assert card.send("00B2390005") == (bytes.fromhex("3903410100"), 0x9000)
    assert card.send("00B2010003") == (bytes.fromhex("010131"), 0x9000)


def test_external_authenticate_with_a_wrong_cryptogram_is_refused(card):
    card.select("DDF1", "DF03")
    challenge = card.challenge()
    a = bytearray(independent_cryptogram("RK1DF03", challenge, READ_PLAIN))
    a[0] ^= 0x01
    _, sw = card.send(bytes.fromhex("0082008411") + bytes(a) + READ_PLAIN + b"\x01")
    assert sw == 0x63CE


def test_read_binary_ed01_is_the_file_content(card):
    card.select("DDF1", "DF03")
    card.auth_ok("RK1DF03")
    card.select("ED01")
    data, sw = card.send("00B0000080")
    assert sw == 0x9000
    assert data == bytes(card.ef("DDF1", "DF03", "ED01").data[:128])
    assert len(data) == 128
