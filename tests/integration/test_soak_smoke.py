"""The soak's machinery (bench/soak.py, ``make soak``) run small so that ``make test`` keeps it
working: 2,000 residents on a private durable PostgreSQL cluster, ``healthcard serve --workers
2``, four clients for 12 s with every operation of the mix (no outage: test_pg_outage.py stops
PostgreSQL under load), then the archive, the verification across its boundary, the invariants and the look-up
of every acknowledged write.  Nothing here is timed: the figures are the soak's to report; this
asserts what must hold at any speed.  PostgreSQL only: the soak is defined on it (and the outage
is the database server's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    from bench.soak import Config, report, run_soak
except ImportError:  # pytest run from elsewhere: the repository root is two folders up
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.soak import Config, report, run_soak

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]


def test_soak_machinery_small(capsys: pytest.CaptureFixture[str]) -> None:
    config = Config(minutes=0.2, residents=2_000, clients=4, outage_seconds=0, accounts=4)
    run = run_soak(config, "pytest tests/integration/test_soak_smoke.py")
    text = report(run)
    with capsys.disabled():
        print(f"\n{text}")
    answered = {op.request: op.ok for op in run.ops}
    for request in ("swipe", "portal", "upload", "book", "quote", "settle"):
        assert answered.get(request, 0) > 0, (request, answered)
    assert [op for op in run.ops if op.errors] == [], "\n".join(run.problems)  # with the server's tracebacks
    assert run.outage is None  # the outage's own test: test_pg_outage.py
    assert not run.workers_restarted
    assert run.rss and all(series for series in run.rss.values())
    assert run.acks["problem count"] == 0 and run.acks["replay mismatches"] == [], run.acks
    assert run.acks["settlements"] > 0 and run.acks["uploads"] > 0, run.acks
    assert run.audit_after > run.audit_before
    assert run.archive["archive exit"] == 0, run.archive
    assert run.archive["verify exit"] == 0, run.archive
    assert run.invariants["exit"] == 0, run.invariants
    assert "## Soak" in text and "| swipe |" in text
