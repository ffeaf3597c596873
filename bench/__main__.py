"""Swipe cost and raw card throughput, measured side by side in one run.

Run with ``make bench`` (or ``.venv/bin/python -m bench [--write docs/benchmarks.md] [--quick]
[--only keys|issuance|platform] [--issuance-cards N]``).  The machine is shared and noisy: every figure is a
median over repeats, and the comparisons that matter (in-process vs pcscd + vpcd, our SM4 vs
``openssl speed``, SQLite vs PostgreSQL) are measured in the same run.  The "## Keys" section
lives in :mod:`bench.keys`, the "## Issuance" section in :mod:`bench.issuance`, the "## Platform"
section in :mod:`bench.platform`, the "## Federation" section in :mod:`bench.federation`.  With ``--only``,
``--write`` replaces just that section of the page and keeps the others.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bench.anchors import run_anchors
from bench.common import made_by, median_seconds, visit
from bench.federation import run_federation
from bench.issuance import run_issuance
from bench.keys import run_keys
from bench.platform import run_platform
from bench.settlement import run_settlement
from bench.web import run_web
from healthcard.card.cos import CardOS, CardState
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam, issue_demo_card
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import Exchange, SimulatorTransport

BAUD = 115_200  # contact interface, bit/s (TA1 = 0x18 class readers)
ETU_PER_BYTE = 11  # T=1: start + 8 data + parity + 1 etu guard (CGT = 11 etu)
T1_OVERHEAD = 4  # NAD PCB LEN … LRC per I-block
IFS = 254  # information field size: longer messages are chained, each block acknowledged
CARD_TIME = {0x82: 0.010, 0xDE: 0.008, 0xFA: 0.008}  # assumed processing per crypto APDU, s
DEFAULT_CARD_TIME = 0.002  # assumed processing of any other APDU, s


def wire_seconds(exchanges: list[Exchange]) -> float:
    """Model one list of exchanges over a T=1 contact link at ``BAUD``."""
    total = 0.0
    for e in exchanges:
        byte_count = 0
        for message in (e.command, e.response):
            blocks = max(1, -(-len(message) // IFS))
            byte_count += len(message) + blocks * T1_OVERHEAD + (blocks - 1) * T1_OVERHEAD  # R-block acks
        total += byte_count * ETU_PER_BYTE / BAUD
        total += CARD_TIME.get(e.command[1] if len(e.command) > 1 else 0, DEFAULT_CARD_TIME)
    return total


def full_card() -> CardState:
    """The demo card with all five outpatient slots filled."""
    state = issue_demo_card()
    terminal = HealthCardTerminal(SimulatorTransport(CardOS(state)), SimulatorTransport(SamOS(demo_sam())))
    terminal.open()
    for n in range(5):
        terminal.write_outpatient_record(visit(n))
    return state


def bench_swipe(repeats: int) -> dict[str, float]:
    base = full_card()
    sam_state = demo_sam()
    card_t = SimulatorTransport(CardOS(copy.deepcopy(base)))
    sam_t = SimulatorTransport(SamOS(copy.deepcopy(sam_state)))
    terminal = HealthCardTerminal(card_t, sam_t)
    terminal.open()

    def swipe() -> None:
        card_t.connect()  # a fresh insertion: the security state is gone
        terminal._df, terminal._auth = "MF", set()
        terminal.swipe()

    card_t.trace.clear()
    sam_t.trace.clear()
    swipe()
    card_ex, sam_ex = list(card_t.trace.exchanges), list(sam_t.trace.exchanges)
    out = {
        "card_apdus": len(card_ex),
        "sam_apdus": len(sam_ex),
        "card_bytes_out": sum(len(e.command) for e in card_ex),
        "card_bytes_in": sum(len(e.response) for e in card_ex),
        "sam_bytes_out": sum(len(e.command) for e in sam_ex),
        "sam_bytes_in": sum(len(e.response) for e in sam_ex),
        "modelled_s": wire_seconds(card_ex) + wire_seconds(sam_ex),
    }
    card_t.trace.enabled = sam_t.trace.enabled = False
    out["inprocess_ms"] = median_seconds(swipe, repeats) * 1000
    tracemalloc.start()
    swipe()
    out["peak_kib"] = tracemalloc.get_traced_memory()[1] / 1024
    tracemalloc.stop()
    return out


def select_read_loop(transmit: Callable[[bytes], object], n: int) -> float:
    """Median seconds of one SELECT EF05 + READ RECORD pair (DDF1/EF05 is free to read)."""
    select, read = bytes.fromhex("00A4000002EF05"), bytes.fromhex("00B2080014")
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        transmit(select)
        transmit(read)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_throughput(n_local: int, n_pcsc: int) -> dict[str, float | str]:
    card = CardOS(issue_demo_card())
    card.power_on()
    card.process(bytes.fromhex("00A4000002DDF1"))
    out: dict[str, float | str] = {"local_pair_us": select_read_loop(card.process, n_local) * 1e6}
    try:
        from healthcard.terminal.pcsc import PcscTransport
        from healthcard.terminal.vpcd import VpcdBridge
    except ImportError as exc:  # pragma: no cover
        out["pcsc"] = f"unavailable: {exc}"
        return out
    bridged = CardOS(issue_demo_card())
    bridge = VpcdBridge(bridged, "127.0.0.1", 35963)
    thread = bridge.start_in_thread()
    try:
        transport = PcscTransport("Virtual PCD 00 00", timeout=10)
        transport.connect()
        transport.trace.enabled = False
        transport.transmit(bytes.fromhex("00A4000002DDF1"))
        local = select_read_loop(card.process, n_pcsc)  # side by side, same moment
        remote = select_read_loop(transport.transmit, n_pcsc)
        out["local_pair_us_same_run"] = local * 1e6
        out["pcsc_pair_us"] = remote * 1e6
        transport.disconnect()
    except Exception as exc:
        out["pcsc"] = f"failed: {exc}"
    finally:
        bridge.stop()
        thread.join(timeout=5)
    return out


def report(swipe: dict[str, float], tp: dict[str, float | str], command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"{made_by(command)} Medians; the in-process and PC/SC loops ran side by side in the same run.",
        "",
        "## A full swipe",
        "",
        "SELECT, read issuer (DDF1/EF05) + holder (EF06) + medical alerts (DF02/EF05, EF06) + allergies + "
        "immunizations + the newest 3 of 5 outpatient records (dates of all valid ED files at offset 80, "
        "then 3013 bytes each), with every authentication through the SAM.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| card APDUs | {swipe['card_apdus']:.0f} | ≤ 45 |",
        f"| SAM APDUs | {swipe['sam_apdus']:.0f} | |",
        f"| card bytes terminal→card / card→terminal | {swipe['card_bytes_out']:.0f} / {swipe['card_bytes_in']:.0f} | |",
        f"| SAM bytes terminal→SAM / SAM→terminal | {swipe['sam_bytes_out']:.0f} / {swipe['sam_bytes_in']:.0f} | |",
        f"| in-process time (median) | {swipe['inprocess_ms']:.2f} ms | ≤ 5 ms |",
        f"| modelled time at {BAUD:,} bit/s | {swipe['modelled_s']:.2f} s | ≤ 1.5 s (Taiwan NHI: 7–8 s) |",
        f"| peak Python memory during a swipe | {swipe['peak_kib']:.0f} KiB | |",
        "",
        f"Model: T=1, {ETU_PER_BYTE} etu per byte, {T1_OVERHEAD} bytes of block framing per I-block, "
        f"IFS {IFS} with chaining acknowledgements, card processing {DEFAULT_CARD_TIME * 1000:.0f} ms per "
        "APDU and 8–10 ms for the cryptographic ones (EXTERNAL AUTHENTICATE, SAM 80DE/80FA); the "
        "SAM's exchanges are counted serially on the same speed of link. The card reads visit records "
        "with extended-length READ BINARY (one APDU per record).",
        "",
        "## Raw card throughput: SELECT + READ RECORD",
        "",
        "| path | median per SELECT + READ pair | APDUs per second |",
        "|---|---|---|",
    ]
    local = float(tp["local_pair_us"])
    lines.append(f"| in-process CardOS | {local:.1f} µs | {2e6 / local:,.0f} |")
    if "pcsc_pair_us" in tp:
        same, remote = float(tp["local_pair_us_same_run"]), float(tp["pcsc_pair_us"])
        lines.append(f"| in-process, same moment as the PC/SC loop | {same:.1f} µs | {2e6 / same:,.0f} |")
        lines.append(f"| pyscard → pcscd → vpcd → bridge → CardOS | {remote:.1f} µs | {2e6 / remote:,.0f} |")
        lines += [
            "",
            f"PC/SC through pcscd + vpcd costs **{remote / same:,.0f}×** the in-process card "
            "(loopback TCP, two process hops and vpcd's framing per APDU).",
        ]
    else:
        lines.append(f"| PC/SC | {tp.get('pcsc')} | |")
    return "\n".join(lines) + "\n"


#: the sections ``--only`` runs, by name: their heading on the page and what makes them
SECTIONS: dict[str, str] = {
    "keys": "## Keys",
    "issuance": "## Issuance",
    "platform": "## Platform",
    "settlement": "## Settlement and appointments",
    "web": "## Web",
    "federation": "## Federation",
    "anchors": "## Against the anchors",
}


def replace_section(page: str, heading: str, section: str) -> str:
    """``page`` with the section under ``heading`` (up to the next ``## `` heading) replaced by
    ``section``, or with ``section`` appended when the page has none."""
    lines = page.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        return page.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + after if after else "")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--write", type=Path, help="write the report to this markdown file")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--only",
        choices=sorted(SECTIONS),
        help="run only this section (with --write: replace just it on the page)",
    )
    parser.add_argument(
        "--issuance-cards",
        type=int,
        metavar="N",
        help="applications in the issuance section's one-batch memory run (default "
        "$HEALTHCARD_BENCH_ISSUANCE_CARDS or 100,000)",
    )
    args = parser.parse_args()
    # `make bench` runs exactly `.venv/bin/python -m bench --write docs/benchmarks.md`
    full = not (args.quick or args.only or args.issuance_cards is not None)
    command = "make bench" if full else shlex.join([".venv/bin/python", "-m", "bench", *sys.argv[1:]])
    sections: list[str] = []
    if args.only is None:
        swipe = bench_swipe(15 if args.quick else 101)
        tp = bench_throughput(500 if args.quick else 5000, 100 if args.quick else 500)
        sections.append(report(swipe, tp, command))
    if args.only in (None, "keys"):
        sections.append(run_keys(command, args.quick))
    if args.only in (None, "issuance"):
        sections.append(run_issuance(command, args.quick, args.issuance_cards))
    if args.only in (None, "platform"):
        sections.append(run_platform(command, args.quick))
    if args.only in (None, "settlement"):
        sections.append(run_settlement(command, args.quick))
    if args.only in (None, "web"):
        sections.append(run_web(command, args.quick))
    if args.only in (None, "federation"):
        sections.append(run_federation(command, args.quick))
    if args.only in (None, "anchors"):  # last: it quotes the sections above as they stand
        sections.append(run_anchors(command, args.quick, fresh="\n".join(sections)))
    text = "\n".join(sections)
    sys.stdout.write(text)
    if args.write:
        if args.only is not None and args.write.exists():
            text = replace_section(args.write.read_text(encoding="utf-8"), SECTIONS[args.only], text)
        elif args.only is not None:
            text = "# Benchmarks\n\n" + text
        args.write.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
