"""The card key table as data (``healthcard.keys.table``, ``keys/data/key_table.csv``) against
CARD-SPEC.md §6.2–6.3 and DECISIONS.md §11–12."""

from __future__ import annotations

import pytest

from healthcard.card.profile import DF_FIDS
from healthcard.keys import table
from healthcard.keys.table import BY_NAME, BY_SAM_INDEX, KEY_TABLE, Depth, Holder, KeyUse

#: CARD-SPEC.md §6.3, row by row: SDK id, key, PSAM ``80DE`` P1, P2 (SAM key index), card KID
#: (P2 of ``0082``; ``None`` for the STK keys, which the card uses for secure messaging)
SPEC_6_3 = [
    (0, "RK1DDF1", 0x47, 0x31, 0x04),
    (1, "RK1DF01", 0x47, 0x32, 0x84),
    (2, "RK1DF02", 0x47, 0x33, 0x84),
    (3, "RK1DF03", 0x47, 0x34, 0x84),
    (4, "STKDDF1", 0x28, 0x02, None),
    (5, "STKDF01", 0x28, 0x03, None),
    (6, "STKDF02", 0x48, 0x04, None),
    (7, "STKDF03", 0x48, 0x05, None),
    (8, "UK1DDF1", 0x27, 0x2A, 0x05),
    (9, "UK1DF01", 0x27, 0x2B, 0x85),
    (10, "UK1DF02", 0x47, 0x2C, 0x85),
    (11, "UK2DF02", 0x47, 0x2D, 0x86),
    (12, "UK3DF02", 0x47, 0x2E, 0x87),
    (13, "UK1DF03", 0x47, 0x2F, 0x85),
    (14, "UK2DF03", 0x27, 0x30, 0x86),
]
#: the DF each spec key lives in: the suffix of its name (CARD-SPEC.md §6.2)
SPEC_DF = {name: name[-4:] for _, name, *_ in SPEC_6_3}
EXTRAS = ["STKMF", "BKMF", "PUKMF", "MKMF", "TKMF"]
ISSUER_ONLY = {"BKMF", "PUKMF", "MKMF", "TKMF"}


def test_table_has_the_fifteen_spec_keys_then_the_extras_in_sdk_order() -> None:
    names = [s.name for s in KEY_TABLE]
    assert names == [name for _, name, *_ in SPEC_6_3] + EXTRAS
    assert len(KEY_TABLE) == 20
    assert len(set(names)) == len(names)
    assert set(BY_NAME) == set(names)
    assert all(table.spec(n) is BY_NAME[n] for n in names)


@pytest.mark.parametrize(("sdk_id", "name", "p1", "index", "kid"), SPEC_6_3, ids=[r[1] for r in SPEC_6_3])
def test_spec_key_row_matches_card_spec_6_3(
    sdk_id: int, name: str, p1: int, index: int, kid: int | None
) -> None:
    spec = BY_NAME[name]
    assert spec.sdk_id == sdk_id
    assert spec.sam_p1 == p1
    assert spec.sam_index == index
    assert spec.df == SPEC_DF[name]
    if kid is None:
        assert spec.use is KeyUse.MAINTENANCE, name
        assert table.maintenance_key(spec.df) is spec
    else:
        assert spec.use is KeyUse.AUTH
        assert spec.kid == kid
    # every spec key is in every terminal SAM, issuer SAM and issuing HSM
    assert spec.holders == frozenset(Holder)


def test_sdk_ids_are_0_to_14_for_the_spec_keys_and_none_for_the_extras() -> None:
    assert [s.sdk_id for s in KEY_TABLE[:15]] == list(range(15))
    assert [BY_NAME[n].sdk_id for n in EXTRAS] == [None] * 5


@pytest.mark.parametrize(
    ("name", "use", "kid", "index", "p1", "holders"),
    [
        ("STKMF", KeyUse.MAINTENANCE, 0x01, 0x01, 0x28, {Holder.ISSUER_SAM, Holder.ISSUER_HSM}),
        ("BKMF", KeyUse.LOCK, 0x02, 0x06, 0x28, {Holder.ISSUER_SAM, Holder.ISSUER_HSM}),
        ("PUKMF", KeyUse.PIN_UNBLOCK, 0x03, 0x07, 0x28, {Holder.ISSUER_SAM, Holder.ISSUER_HSM}),
        ("MKMF", KeyUse.MASTER, 0x00, None, None, {Holder.ISSUER_HSM}),
        ("TKMF", KeyUse.TRANSPORT, 0x00, None, None, {Holder.ISSUER_HSM}),
    ],
)
def test_extra_mf_keys(
    name: str, use: KeyUse, kid: int, index: int | None, p1: int | None, holders: set[Holder]
) -> None:
    spec = BY_NAME[name]
    assert spec.df == "MF"
    assert spec.use is use
    assert spec.kid == kid
    assert spec.sam_index == index
    assert spec.sam_p1 == p1
    assert spec.depth is Depth.CARD
    assert spec.holders == holders


@pytest.mark.parametrize("spec", KEY_TABLE, ids=lambda s: s.name)
def test_depth_agrees_with_the_high_nibble_of_p1(spec: table.KeySpec) -> None:
    """P1 high nibble 2: one level (card); 4: two (province, card) — CARD-SPEC.md §6.3."""
    if spec.sam_p1 is None:
        assert spec.sam_index is None and spec.name in {"MKMF", "TKMF"}
        return
    expected = {0x2: Depth.CARD, 0x4: Depth.PROVINCE_CARD}[spec.sam_p1 >> 4]
    assert spec.depth is expected
    # low nibble: 7 an authentication key, 8 a secure-messaging (MAC / encryption) key
    assert spec.sam_p1 & 0x0F == (8 if spec.use is not KeyUse.AUTH else 7)


def test_depths_of_the_spec_keys() -> None:
    """DDF1/DF01 update and STK keys are diversified by card only; the rest add a province."""
    by_card = {n for n, s in BY_NAME.items() if s.depth is Depth.CARD}
    assert by_card == {"STKDDF1", "STKDF01", "UK1DDF1", "UK1DF01", "UK2DF03", *EXTRAS}


def test_every_sam_index_is_unique() -> None:
    indexes = [s.sam_index for s in KEY_TABLE if s.sam_index is not None]
    assert len(indexes) == 18
    assert len(set(indexes)) == len(indexes)
    assert {i: s.name for i, s in BY_SAM_INDEX.items()} == {
        s.sam_index: s.name for s in KEY_TABLE if s.sam_index is not None
    }
    assert BY_SAM_INDEX[0x31].name == "RK1DDF1" and BY_SAM_INDEX[0x30].name == "UK2DF03"


def test_card_kids_are_unique_per_df_and_use() -> None:
    seen: dict[tuple[str, KeyUse, int], str] = {}
    for s in KEY_TABLE:
        key = (s.df, s.use, s.kid)
        assert key not in seen, f"{s.name} and {seen[key]}"
        seen[key] = s.name


def test_terminal_sams_do_not_hold_the_issuer_keys() -> None:
    terminal = {s.name for s in table.held_by(Holder.TERMINAL_SAM)}
    assert not terminal & ISSUER_ONLY
    assert "STKMF" not in terminal
    assert terminal == {name for _, name, *_ in SPEC_6_3}
    issuer_sam = {s.name for s in table.held_by(Holder.ISSUER_SAM)}
    assert issuer_sam == terminal | {"STKMF", "BKMF", "PUKMF"}
    assert {s.name for s in table.held_by(Holder.ISSUER_HSM)} == set(BY_NAME)
    for name in ISSUER_ONLY:
        assert not BY_NAME[name].held_by(Holder.TERMINAL_SAM)


def test_sam_held_keys_have_a_sam_index_and_others_none() -> None:
    for s in KEY_TABLE:
        in_a_sam = s.held_by(Holder.TERMINAL_SAM) or s.held_by(Holder.ISSUER_SAM)
        assert (s.sam_index is not None) == in_a_sam, s.name
        assert (s.sam_p1 is not None) == in_a_sam, s.name


def test_the_card_profile_dfs_are_the_only_dfs() -> None:
    dfs = {s.df for s in KEY_TABLE}
    assert dfs == {"MF", *DF_FIDS}
    assert dfs == {"MF", "DDF1", "DF01", "DF02", "DF03"}


def test_every_application_df_has_a_read_key_and_a_maintenance_key() -> None:
    for df in DF_FIDS:
        assert table.maintenance_key(df).name == f"STK{df}"
        reads = [s for s in KEY_TABLE if s.df == df and s.name.startswith("RK")]
        assert [s.name for s in reads] == [f"RK1{df}"]


def test_spec_lookup_of_an_unknown_name_fails() -> None:
    with pytest.raises(KeyError):
        table.spec("IRKDDF1")
