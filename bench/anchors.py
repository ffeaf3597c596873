"""The "## Against the anchors" section of the benchmark page: our figures beside the published
figures of the systems HealthCard measures itself against.

Two kinds of row:

* **measured here, in this run**: signature rates of SoftHSM2 through PKCS#11 (the HSM the key
  store's KEK lives in, :mod:`healthcard.keys.kek`) — ECDSA P-256 and P-384, RSA-2048 and the
  key store's own AES-256-GCM wrap — and, side by side in the same run, SM2 signing with gmalg
  (pure Python), which is what a visit record's signature costs us;
* **measured by another section or by ``make soak``**: read from ``docs/benchmarks.md`` and
  ``docs/reliability.md`` as they stand (their own section names the command that made them),
  so the table never disagrees with the page it sits on.

The published figures are quoted with their source and the hardware they were measured on; a
ratio per CPU core is given where the published figure is a throughput, because the anchors ran
on many more cores than this shared 2-core machine.

Run only this section with ``.venv/bin/python -m bench --only anchors [--write
docs/benchmarks.md]``.  Needs SoftHSM2 (``scripts/hsm-up.sh``; ``make bench`` runs it).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import made_by

REPO = Path(__file__).resolve().parents[1]
TOKEN, PIN = "healthcard", "1234"  # scripts/hsm-up.sh's test token (test values, not secrets)
SECONDS = 2.0  # each rate: as many operations as fit in this many seconds, median of ROUNDS
ROUNDS = 3

#: the published anchors: (what, figure, source)
MEDPLUM_MIXED = 6_738.33  # req/s, scenario 4: authenticated read, write and search
MEDPLUM_READ = 20_796.67  # req/s, scenario 3: authenticated read-only with database access
MEDPLUM_VCPU = 15 * 4 + 16  # 15 Fargate servers of 4 vCPU + a 16-vCPU PostgreSQL
MEDPLUM_SOURCE = "medplum.com/blog/medplum-performance-test-2026"
SOFTHSM_PUBLISHED = 2_528.53  # ECDSA P-384 sig/s, 20 threads, OpenSSL backend
SOFTHSM_SOURCE = "github.com/softhsm/SoftHSMv2/issues/213"
HAPI_SOURCE = "openlmis.atlassian.net/wiki/spaces/OP/pages/437092376 (FHIR servers performance)"


def _rate(op: Callable[[], object]) -> float:
    """Operations per second of ``op``: the median of ROUNDS rounds of SECONDS each."""
    op()  # warm up (first use loads the key into the token's cache)
    rates = []
    for _ in range(ROUNDS):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < SECONDS:
            op()
            count += 1
        rates.append(count / elapsed)
    return statistics.median(rates)


def _softhsm_rates(kind: str) -> float:
    """One process's sign rate for ``kind`` (``ec256``, ``ec384``, ``rsa2048``, ``gcm``), with
    session keys generated in the token for the run (never stored)."""
    import pkcs11
    from pkcs11.util.ec import encode_named_curve_parameters

    from healthcard.keys.kek import DEFAULT_MODULE

    lib = pkcs11.lib(os.environ.get("HEALTHCARD_PKCS11_MODULE", DEFAULT_MODULE))
    token = lib.get_token(token_label=TOKEN)
    digest = secrets.token_bytes(32)
    with token.open(user_pin=PIN) as session:
        op: Callable[[], object]
        if kind in ("ec256", "ec384"):
            curve = "secp256r1" if kind == "ec256" else "secp384r1"
            params = session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(curve)},
                local=True,
            )
            _, private = params.generate_keypair(store=False)

            def op() -> object:
                return private.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)

        elif kind == "rsa2048":
            _, private = session.generate_keypair(pkcs11.KeyType.RSA, 2048, store=False)

            def op() -> object:
                return private.sign(digest, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS)

        else:  # the key store's wrap: a 32-byte DEK under AES-256-GCM, fresh IV each time
            key = session.generate_key(pkcs11.KeyType.AES, 256, store=False)

            def op() -> object:
                iv = secrets.token_bytes(12)
                return key.encrypt(
                    digest, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=pkcs11.GCMParams(iv, b"aad")
                )

        return _rate(op)


def _sm2_rate() -> float:
    from healthcard.keys import sm2

    private, _ = sm2.generate_keypair()
    message = secrets.token_bytes(3013)  # an ED record's signed bytes
    return _rate(lambda: sm2.sign(private, message))


def _two_processes(kind: str) -> float:
    """The summed rate of two processes signing at once (each with its own PKCS#11 session)."""
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        return sum(pool.map(_softhsm_rates, [kind, kind]))


def _find(pattern: str, fresh: str, path: Path) -> str | None:
    """The first group of ``pattern`` in the sections made by this run (``fresh``), else in the
    page at ``path`` as it stands, or None when neither has it."""
    texts = [fresh, path.read_text(encoding="utf-8") if path.exists() else ""]
    for text in texts:
        if found := re.search(pattern, text):
            return found.group(1)
    return None


def _number(text: str | None) -> float | None:
    return None if text is None else float(text.replace(",", ""))


def run_anchors(command: str, quick: bool = False, fresh: str = "") -> str:
    global SECONDS, ROUNDS
    if quick:
        SECONDS, ROUNDS = 0.5, 1
    lines = ["## Against the anchors", ""]
    lines.append(
        made_by(command) + " The first table was measured in this run; the second quotes the "
        "figures of the sections named in it (each made by the command its section gives) beside "
        "the anchors' published figures. The anchors ran on many more cores than this shared "
        "2-core machine, where the server, PostgreSQL and the load generator share the 2 cores; "
        "a throughput is therefore also given per core."
    )
    lines.append("")
    problem = None
    rates: dict[str, float] = {}
    try:
        for kind in ("ec256", "ec384", "rsa2048", "gcm"):
            rates[kind] = _softhsm_rates(kind)
        rates["ec384x2"] = _two_processes("ec384")
    except Exception as exc:  # the section says what was missing instead of failing
        problem = f"SoftHSM2 was not usable ({type(exc).__name__}: {exc}); run scripts/hsm-up.sh"
    rates["sm2"] = _sm2_rate()

    lines.append("### Signatures: SoftHSM2 through PKCS#11 and SM2 in process, side by side")
    lines.append("")
    lines.append(
        f"python-pkcs11 0.10.1 → Debian's SoftHSM 2 (OpenSSL backend), token `{TOKEN}` of "
        f"`scripts/hsm-up.sh`, session keys generated for the run; each rate the median of {ROUNDS} "
        f"rounds of {SECONDS:g} s, one process unless said."
    )
    lines.append("")
    if problem:
        lines += [problem, ""]
    lines.append("| operation | per second |")
    lines.append("|---|---|")
    names = {
        "ec256": "SoftHSM2 ECDSA P-256 sign (CKM_ECDSA over a 32-byte digest)",
        "ec384": "SoftHSM2 ECDSA P-384 sign",
        "ec384x2": "SoftHSM2 ECDSA P-384 sign, 2 processes at once (summed)",
        "rsa2048": "SoftHSM2 RSA-2048 sign (CKM_SHA256_RSA_PKCS)",
        "gcm": "SoftHSM2 AES-256-GCM wrap of a 32-byte DEK (the key store's KEK operation)",
        "sm2": "SM2 sign of an ED record (gmalg, pure Python, in process)",
    }
    for kind, name in names.items():
        if kind in rates:
            lines.append(f"| {name} | {rates[kind]:,.0f} |")
    lines.append("")

    bench_page = REPO / "docs" / "benchmarks.md"
    reliability = REPO / "docs" / "reliability.md"
    modelled = _find(r"modelled time at 115,200 bit/s \| ([\d.]+) s", fresh, bench_page)
    one_client = _find(
        r"\| 1,000,000 \| [^|]+\| [\d,]+ \| [\d,]+ MiB \| ([\d.]+ / [\d.]+) ms", fresh, bench_page
    )
    swipe_rps = _number(
        _find(r"\| 1,000,000 \| [^|]+\| [\d,]+ \| [\d,]+ MiB \| [^|]+\| ([\d,]+) \|", fresh, bench_page)
    )
    look_p99 = _find(
        r"\| PostgreSQL \| [\d.]+ / [\d.]+ ms \(\d+\) \| [\d.]+ / ([\d.]+) ms \(\d+\) \|", fresh, bench_page
    )
    soak_rps = _number(_find(r"### Requests \(([\d,.]+) req/s in all\)", fresh, reliability))
    soak_lat = _find(r"\| swipe \| [\d,]+ \| [\d.]+ \| ([\d.]+ \| [\d.]+) \|", fresh, reliability)

    def missing(what: str) -> str:
        return f"not on the page yet ({what})"

    lines.append("### Against the anchors")
    lines.append("")
    lines.append("| measure | anchor (published) | HealthCard (measured here) | ours / anchor |")
    lines.append("|---|---|---|---|")
    taiwan = (
        f'{modelled} s modelled at 115,200 bit/s (39 card + 9 SAM APDUs; `make bench`, "A full swipe")'
        if modelled
        else missing("make bench")
    )
    ratio = f"{float(modelled) / 7.5:.2f}× the time (÷ 7.5 s)" if modelled else "—"
    lines.append(
        f"| full card read at the clinic | Taiwan NHI IC card: 7–8 s per read (issue 9's figure) | {taiwan} | {ratio} |"
    )
    if "ec384" in rates:
        per_core_ours = rates["ec384x2"] / 2 if "ec384x2" in rates else rates["ec384"]
        lines.append(
            f"| SoftHSM2 ECDSA P-384 signatures | {SOFTHSM_PUBLISHED:,.0f}/s with 20 threads, OpenSSL "
            f"backend, cores not given ({SOFTHSM_SOURCE}) | {rates['ec384']:,.0f}/s one process, "
            f"{rates.get('ec384x2', 0):,.0f}/s two (this section) | "
            f"{rates.get('ec384x2', rates['ec384']) / SOFTHSM_PUBLISHED:.2f} on 2 cores "
            f"({per_core_ours:,.0f} per core) |"
        )
        lines.append(
            f"| signing a record: HSM vs our SM2 | — | SoftHSM2 ECDSA P-256 {rates['ec256']:,.0f}/s, "
            f"SM2 (gmalg) {rates['sm2']:,.0f}/s (this section) | SM2 is "
            f"{rates['ec256'] / rates['sm2']:,.0f}× slower than the HSM's ECDSA |"
        )
    medplum_read_core = MEDPLUM_READ / MEDPLUM_VCPU
    medplum_mixed_core = MEDPLUM_MIXED / MEDPLUM_VCPU
    if swipe_rps is not None:
        lines.append(
            f"| authenticated read with the database | Medplum: {MEDPLUM_READ:,.0f} req/s on {MEDPLUM_VCPU} "
            f"vCPU = {medplum_read_core:,.0f} per vCPU ({MEDPLUM_SOURCE}) | swipe at 1,000,000 residents: "
            f"{swipe_rps:,.0f} req/s on 2 cores = {swipe_rps / 2:,.0f} per core, server + PostgreSQL + "
            f'wrk (`make bench`, "Platform") | {swipe_rps / 2 / medplum_read_core:.2f} per core |'
        )
    else:
        lines.append(f"| authenticated read with the database | Medplum | {missing('make bench')} | — |")
    if soak_rps is not None:
        lines.append(
            f"| mixed read/write/search | Medplum: {MEDPLUM_MIXED:,.0f} req/s on {MEDPLUM_VCPU} vCPU = "
            f"{medplum_mixed_core:,.0f} per vCPU, average 167 ms ({MEDPLUM_SOURCE}) | soak at 1,000,000 "
            f"residents: {soak_rps:,.0f} req/s = {soak_rps / 2:,.0f} per core, swipe p50 / p99 "
            f"{(soak_lat or '?').replace(' | ', ' / ')} ms (`make soak`) | {soak_rps / 2 / medplum_mixed_core:.2f} per core |"
        )
    else:
        lines.append(f"| mixed read/write/search | Medplum | {missing('make soak')} | — |")
    lines.append(
        f"| one reader's read latency | HAPI FHIR JPA (2018, i7-6700HQ, one client): read and search "
        f"p90 under 50 ms, creates up to ~200 ms ({HAPI_SOURCE}) | swipe, one client, p50 / p99 "
        f"{one_client or '?'} ms at 1,000,000 residents; cross-region look p99 {look_p99 or '?'} ms "
        f"(`make bench`) | — |"
    )
    lines.append("")
    lines.append(
        "The Medplum figures come from 15 servers and a 16-vCPU database, with the load generator "
        "elsewhere; ours share 2 cores with PostgreSQL and the load generator, so per-core ratios "
        "understate us. HAPI's figures are latency at one client, not throughput."
    )
    lines.append("")
    return "\n".join(lines)
