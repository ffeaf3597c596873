"""Personalising a card from a province's key set (the issuing side of DECISIONS.md §12).

The chip arrives from the factory holding its transport key ``TK = D(TKM, serial)``; the
issuer derives the card's own key set from the province set (``D(K2, serial)`` / ``D(K1,
serial)``), loads it with WRITE KEY under the transport key, writes the holder's files and the
province's issuer certificate (DDF1/EF05 tag 05), and ends personalisation.
"""

from __future__ import annotations

from collections.abc import Callable

from healthcard.card.cos import CardOS, CardState
from healthcard.card.personalise import CardContents, Personaliser
from healthcard.card.profile import PROFILE_32K, Profile
from healthcard.issuance.keycentre import KeyCentre
from healthcard.keys.keyset import CardKeySet, KeySet


def personalise(
    transmit: Callable[[bytes], bytes],
    issuing: KeySet,
    serial: bytes,
    contents: CardContents,
    centre: KeyCentre,
    profile: Profile = PROFILE_32K,
    keys: CardKeySet | None = None,
) -> int:
    """Personalise the chip behind ``transmit`` (in-process, PC/SC or vpcd); the APDU count.
    ``keys``: the card's key set when the caller derived it already."""
    keys = keys or centre.card_keys(issuing, serial)
    items = contents.items.setdefault("DDF1/EF05", {})
    if "issuer_certificate" not in items:  # the card centre puts it there for a whole chunk at once
        items["issuer_certificate"] = centre.issuer_certificate(issuing.id.region[:2])
    return Personaliser(transmit, keys["TKMF"], issuing.algorithm).run(profile, keys, contents)


def issue_simulated_card(
    centre: KeyCentre,
    issuing: KeySet,
    serial: bytes,
    contents: CardContents,
    profile: Profile = PROFILE_32K,
) -> CardState:
    """A simulated chip — as the factory delivers it, holding only its transport key — then
    personalised: its state (ISSUED)."""
    keys = centre.card_keys(issuing, serial)
    state = CardState.blank(serial, keys["TKMF"], issuing.algorithm)
    card = CardOS(state)
    card.power_on()
    personalise(card.process, issuing, serial, contents, centre, profile, keys)
    state.profile = profile.id
    return state
