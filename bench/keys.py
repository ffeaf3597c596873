"""The "## Keys" section of the benchmark page: what the key hierarchy costs on one core.

One function per measurement, then one that writes the section:

* :func:`bench_derivation` — all 20 keys of a card from a province set, three ways;
* :func:`bench_mac` — SM4-CBC-MAC over an ED record and over 1 MiB, alternating with
  ``openssl speed`` in the same run so the machine's noise hits both;
* :func:`bench_sm2` — SM2 sign and verify of a visit record (gmalg, pure Python);
* :func:`report_keys` — the markdown.

Run only this section with ``.venv/bin/python -m bench --only keys``.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.backends.openssl import backend as cryptography_openssl

from bench.common import made_by, median_seconds, visit
from healthcard.keys import certificates, recipes, sm2
from healthcard.keys.cardkeys import DEMO_ROOT
from healthcard.keys.keyset import (
    CardKeyDeriver,
    KeySet,
    card_key_set,
    derive_province,
    national_set,
    province_factor,
)
from healthcard.keys.primitives import sm3
from healthcard.keys.table import KEY_TABLE, Depth
from healthcard.terminal.sdk import encode_visit, outpatient_values

PROVINCE = "41"  # Henan: the cards come from province/41/v1
BATCH = 10_000  # serials per derive_many call (and per loop of (a))
NAIVE_CARDS = 2_000  # the naive way is slow: fewer cards per repeat
BULK_BYTES = 1 << 20
MAC_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
OPENSSL_RECORD = ("openssl", "speed", "-evp", "sm4-cbc", "-bytes", "3024", "-seconds", "1")
OPENSSL_BULK = ("openssl", "speed", "-evp", "sm4-cbc", "-bytes", "16384", "-seconds", "1")
BENCH_ROOT_PRIVATE = sm3(b"HealthCard bench national root")  # public, fixed: never a real key
BENCH_SAM_PRIVATE = sm3(b"HealthCard bench SAM")
VERIFY_DAY = dt.date(2027, 1, 1)  # inside the bench certificate's validity, whatever today is


def ed_record() -> bytes:
    """The data part (3,013 bytes) of a real outpatient record, as the terminal writes it."""
    data = encode_visit("ED", outpatient_values(visit(0)))
    if len(data) != 3013:
        raise RuntimeError(f"an ED record's data part is 3013 bytes, encode_visit gave {len(data)}")
    return data


# --- 1. card key-set derivation ------------------------------------------------------------


def card_serials(count: int) -> list[bytes]:
    return [(0x0081866B00000000 + i).to_bytes(8, "big") for i in range(count)]


def naive_card_keys(national: KeySet, serial: bytes) -> dict[str, bytes]:
    """A card's keys the way a SAM reaches them: ``recipes.card_key`` from K1 for every key,
    building a cipher for each diversification step (two for a province+card key)."""
    factor = province_factor(PROVINCE)
    return {
        s.name: recipes.card_key(
            national[s.name], serial, factor if s.depth is Depth.PROVINCE_CARD else None, national.algorithm
        )
        for s in KEY_TABLE
    }


def bench_derivation(repeats: int) -> dict[str, float]:
    """Card key sets per second: (a) ``derive`` one card at a time with one deriver, a fresh
    deriver per card (``card_key_set``), (b) ``derive_many`` over a batch, (c) the naive way."""
    national = national_set(DEMO_ROOT)
    province = derive_province(national, PROVINCE)
    deriver = CardKeyDeriver(province)
    serials = card_serials(BATCH)
    few = serials[:NAIVE_CARDS]

    many = deriver.derive_many(serials)  # every way must give the same keys
    for i in (0, NAIVE_CARDS - 1):
        one, naive = dict(deriver.derive(serials[i]).keys), naive_card_keys(national, serials[i])
        if not one == dict(many[i].keys) == naive or len(naive) != len(KEY_TABLE):
            raise RuntimeError("the ways of deriving a card's keys disagree")

    return {
        "keys_per_card": len(KEY_TABLE),
        "per_card": BATCH / median_seconds(lambda: [deriver.derive(s) for s in serials], repeats),
        "fresh_deriver": NAIVE_CARDS
        / median_seconds(lambda: [card_key_set(province, s) for s in few], repeats),
        "many": BATCH / median_seconds(lambda: deriver.derive_many(serials), repeats),
        "naive": NAIVE_CARDS / median_seconds(lambda: [naive_card_keys(national, s) for s in few], repeats),
    }


# --- 2. SM4-CBC-MAC, side by side with openssl speed ----------------------------------------


def ours_mb_s(fn: Callable[[], object], nbytes: int, seconds: float) -> float:
    """Call ``fn`` (which processes ``nbytes``) for ``seconds``, as ``openssl speed`` does; MB/s
    with MB = 10^6 bytes."""
    count, start = 0, time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        fn()
        count += 1
    return count * nbytes / (now - start) / 1e6


def openssl_mb_s(command: tuple[str, ...]) -> float | None:
    """The SM4-CBC figure of ``openssl speed`` in MB/s (its "k" is 1000 bytes per second), or
    None when openssl is missing or does not print SM4-CBC."""
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"^SM4-CBC\s+([\d.]+)k", run.stdout, re.MULTILINE)
    return float(match.group(1)) * 1000 / 1e6 if run.returncode == 0 and match else None


@dataclass(frozen=True)
class SideBySide:
    """MB/s of ours and of ``openssl speed`` (None: not available), each round and the medians."""

    command: str
    seconds: float
    ours_runs: list[float]
    openssl_runs: list[float]

    @property
    def ours(self) -> float:
        return statistics.median(self.ours_runs)

    @property
    def openssl(self) -> float | None:
        return statistics.median(self.openssl_runs) if self.openssl_runs else None


def side_by_side(
    ours: Callable[[], object], nbytes: int, command: tuple[str, ...], rounds: int, seconds: float
) -> SideBySide:
    """Ours, openssl, ours, openssl, …: ``rounds`` of each (openssl is dropped after a failure)."""
    ours_runs: list[float] = []
    openssl_runs: list[float] = []
    for n in range(rounds):
        ours_runs.append(ours_mb_s(ours, nbytes, seconds))
        figure = openssl_mb_s(command) if n == 0 or openssl_runs else None
        if figure is not None:
            openssl_runs.append(figure)
    return SideBySide(shlex.join(command), seconds, ours_runs, openssl_runs)


def bench_mac(rounds: int, seconds: float) -> dict[str, SideBySide]:
    """``recipes.cbc_mac(key, recipes.pad(record))`` over an ED record's 3,013 bytes (3,024
    padded, the size given to openssl) and ``cbc_mac`` over 1 MiB (whole blocks, no padding)."""
    record = ed_record()
    padded_length = len(recipes.pad(record))
    bulk = bytes(range(256)) * (BULK_BYTES // 256)
    return {
        "record": side_by_side(
            lambda: recipes.cbc_mac(MAC_KEY, recipes.pad(record)),
            padded_length,
            OPENSSL_RECORD,
            rounds,
            seconds,
        ),
        "bulk": side_by_side(
            lambda: recipes.cbc_mac(MAC_KEY, bulk), BULK_BYTES, OPENSSL_BULK, rounds, seconds
        ),
    }


# --- 3. SM2 sign + verify of a visit record --------------------------------------------------


def bench_sm2(repeats: int, count: int) -> dict[str, float]:
    """Operations per second of SM2 over a visit record's digest, and of a reader's whole check
    (``verify_visit_record``: the SAM certificate, then the record's signature)."""
    record = ed_record()
    public = sm2.public_key(BENCH_SAM_PRIVATE)
    root_public = sm2.public_key(BENCH_ROOT_PRIVATE)
    signature = sm2.sign(BENCH_SAM_PRIVATE, certificates.visit_digest("ED", record))
    sam_certificate = certificates.issue_sam_certificate(
        BENCH_ROOT_PRIVATE,
        1,
        bytes.fromhex("5341304100000001"),
        bytes.fromhex("410100000001"),
        public,
        dt.date(2026, 1, 1),
        dt.date(2036, 12, 31),
        1,
    )
    whole_file = record + certificates.visit_tail(signature, sam_certificate)
    trust = certificates.TrustStore({1: root_public})

    def sign() -> bytes:
        return sm2.sign(BENCH_SAM_PRIVATE, certificates.visit_digest("ED", record))

    def verify(sig: bytes) -> None:
        if not sm2.verify(public, certificates.visit_digest("ED", record), sig):
            raise RuntimeError("a fresh SM2 signature does not verify")

    def check_file() -> None:
        certificates.verify_visit_record("ED", whole_file, trust, VERIFY_DAY)

    def per_second(fn: Callable[[], object]) -> float:
        return count / median_seconds(lambda: [fn() for _ in range(count)], repeats)

    return {
        "sign": per_second(sign),
        "verify": per_second(lambda: verify(signature)),
        "pair": per_second(lambda: verify(sign())),
        "record_check": per_second(check_file),
    }


# --- the section ------------------------------------------------------------------------------


def openssl_version() -> str:
    try:
        run = subprocess.run(("openssl", "version"), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "no openssl command"
    return " ".join(run.stdout.split()[:2]) or "openssl (version unknown)"


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} MB/s"


def _ratio(ours: float, theirs: float | None) -> str:
    return "n/a" if theirs is None else f"**{ours / theirs:.2f}**"


def _runs(runs: list[float]) -> str:
    return " / ".join(f"{r:.0f}" for r in runs) if runs else "n/a"


def report_keys(
    derivation: dict[str, float],
    mac: dict[str, SideBySide],
    signing: dict[str, float],
    command: str,
    repeats: int,
    rounds: int,
) -> str:
    d, rec, bulk, s = derivation, mac["record"], mac["bulk"], signing
    lines = [
        "## Keys",
        "",
        f"{made_by(command)} One process on one core; medians of {repeats} repeats, and for the "
        f"MACs of {rounds} rounds in which ours and `openssl speed` ran alternately in the same run. "
        f"`openssl speed` is the system's {openssl_version()}; `cryptography` (ours) carries its own "
        f"{cryptography_openssl.openssl_version_text()}.",
        "",
        "### Card key-set derivation",
        "",
        f"All {d['keys_per_card']:.0f} keys of one card from the province set `province/{PROVINCE}/v1` "
        "(`derive_province(national_set(DEMO_ROOT), "
        f'"{PROVINCE}")`); every way gives the same keys (checked before timing).',
        "",
        "| way | card key sets per second, one core | target |",
        "|---|---|---|",
        f"| (a) `CardKeyDeriver(province).derive(serial)`, one deriver, one card at a time ({BATCH:,} cards) "
        f"| {d['per_card']:,.0f} | ≥ 20,000 |",
        f"| (b) `derive_many` over {BATCH:,} serials at once | {d['many']:,.0f} | ≥ 20,000 |",
        f"| `card_key_set(province, serial)`: a fresh `CardKeyDeriver` per card ({NAIVE_CARDS:,} cards) "
        f"| {d['fresh_deriver']:,.0f} | |",
        f"| (c) naive: `recipes.card_key(K1, serial, province_factor)` for every key, a cipher built "
        f"per step, as a SAM does ({NAIVE_CARDS:,} cards) | {d['naive']:,.0f} | |",
        "",
        f"(a)/(c) = **{d['per_card'] / d['naive']:.1f}×**, (b)/(c) = **{d['many'] / d['naive']:.1f}×**.",
        "",
        "### SM4-CBC-MAC",
        "",
        "| data | ours | `openssl speed -evp sm4-cbc` | ours / openssl | target |",
        "|---|---|---|---|---|",
        f"| a 3,013-byte ED record: `recipes.cbc_mac(key, recipes.pad(data))` | {_mb(rec.ours)} "
        f"| {_mb(rec.openssl)} (`{rec.command}`) | {_ratio(rec.ours, rec.openssl)} | ≥ 0.5 |",
        f"| bulk, 1 MiB: `recipes.cbc_mac(key, data)` | {_mb(bulk.ours)} | {_mb(bulk.openssl)} "
        f"(`{bulk.command}`) | {_ratio(bulk.ours, bulk.openssl)} | |",
        "",
        'MB = 10^6 bytes (openssl\'s "k" is 1000 bytes per second). Ours counts the padded 3,024 bytes '
        "of the record, the block size given to openssl, and includes `pad` and building the cipher each "
        f"call; openssl reuses one context. Each of our rounds ran for {rec.seconds:g} s (openssl's: 1 s). Rounds, "
        f"MB/s: record ours {_runs(rec.ours_runs)}, openssl {_runs(rec.openssl_runs)}; bulk ours "
        f"{_runs(bulk.ours_runs)}, openssl {_runs(bulk.openssl_runs)}.",
        "",
        "### SM2 sign + verify of a visit record",
        "",
        'SM2 with SM3 and the default user id over `visit_digest("ED", record)` (the SM3 of the record\'s '
        "3,013 signed bytes, recomputed in every operation). gmalg is pure Python.",
        "",
        "| operation | per second | time per operation |",
        "|---|---|---|",
        f'| `sm2.sign(private, visit_digest("ED", record))` | {s["sign"]:,.0f} | {1000 / s["sign"]:.1f} ms |',
        f'| `sm2.verify(public, visit_digest("ED", record), signature)` | {s["verify"]:,.0f} '
        f"| {1000 / s['verify']:.1f} ms |",
        f"| sign + verify pair | {s['pair']:,.0f} | {1000 / s['pair']:.1f} ms |",
        '| `verify_visit_record("ED", file, trust, today)` on the whole 3,267-byte file (SAM certificate '
        f"+ record signature) | {s['record_check']:,.0f} | {1000 / s['record_check']:.1f} ms |",
    ]
    return "\n".join(lines) + "\n"


def run_keys(command: str, quick: bool) -> str:
    """All three measurements, then the section (about 30 s; a few with ``quick``)."""
    repeats, rounds = (3, 2) if quick else (7, 5)
    derivation = bench_derivation(repeats)
    mac = bench_mac(rounds, seconds=0.3 if quick else 1.0)
    signing = bench_sm2(repeats, count=3 if quick else 10)
    return report_keys(derivation, mac, signing, command, repeats, rounds)
