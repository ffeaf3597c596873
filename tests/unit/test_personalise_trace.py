"""Personalisation's bytes are pinned: every APDU sent and every answer of one card, made with
fixed keys, a fixed chip serial and a fixed challenge source, hash to a recorded value.  A speed-up
of the personaliser or the COS must leave this unchanged (make bench, "Issuance")."""

from __future__ import annotations

import hashlib
import itertools

from healthcard.card.cos import CardOS, CardState
from healthcard.card.personalise import Personaliser
from healthcard.card.profile import PROFILE_32K
from healthcard.demo import demo_contents
from healthcard.keys.keyset import CardKeyDeriver, derive_province, national_set

ROOT = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
SERIAL = bytes.fromhex("0086000000000042")
#: SHA-256 over every (command, response) pair of the personalisation below
RECORDED = "54fb1845927cbcaf4c61f52866ab572ef1892db01c5206cbcf570c6ea8e20574"  # before and after 56561e5


def personalisation_digest() -> tuple[str, int]:
    keys = CardKeyDeriver(derive_province(national_set(ROOT), "41")).derive(SERIAL)
    counter = itertools.count()

    def challenges(n: int) -> bytes:  # the chip's "random" numbers, fixed
        return next(counter).to_bytes(n, "big")

    card = CardOS(CardState.blank(SERIAL, keys["TKMF"], keys.algorithm), rng=challenges)
    card.power_on()
    digest = hashlib.sha256()

    def transmit(raw: bytes) -> bytes:
        response = card.process(raw)
        digest.update(len(raw).to_bytes(2, "big") + raw + len(response).to_bytes(2, "big") + response)
        return response

    count = Personaliser(transmit, keys["TKMF"], keys.algorithm).run(PROFILE_32K, keys, demo_contents())
    return digest.hexdigest(), count


def test_personalisation_bytes_are_pinned() -> None:
    digest, count = personalisation_digest()
    assert count > 100
    assert digest == RECORDED
