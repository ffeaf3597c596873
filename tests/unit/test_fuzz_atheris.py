"""atheris (libFuzzer, coverage-guided) on the card OS's command processor: tests/fuzz/fuzz_cos.py
run in a subprocess for a bounded time, seeded with the real APDUs of tests/vectors/apdu-shapes.txt.
It must end with exit status 0 (no crash, no failed assertion: every answer a well-formed R-APDU).

``make test`` gives it ``HEALTHCARD_ATHERIS_SECONDS`` (default 20) seconds; a soak runs the harness
itself for longer (docs/card.md, "Fuzzing")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).parents[1] / "fuzz" / "fuzz_cos.py"
SECONDS = int(os.environ.get("HEALTHCARD_ATHERIS_SECONDS", "20"))
DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+).*?exec/s: (\d+)")


@pytest.mark.slow
def test_atheris_finds_no_crash_in_the_card_os(tmp_path: Path) -> None:
    seeds, corpus = tmp_path / "seeds", tmp_path / "corpus"
    corpus.mkdir()
    made = subprocess.run(
        [sys.executable, str(HARNESS), "--write-seeds", str(seeds)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert int(made.stdout) >= 10  # the concrete APDUs of the shapes file, in every start state
    run = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=1024",
            "-timeout=10",  # one input taking 10 s is a hang
            "-print_final_stats=1",
            str(corpus),
            str(seeds),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 180,  # hang guard
        cwd=tmp_path,
    )
    tail = run.stderr[-3000:]
    assert run.returncode == 0, tail
    assert not list(tmp_path.glob("crash-*")), tail
    done = DONE.search(run.stderr)
    assert done is not None, tail
    execs, cov, features, rate = map(int, done.groups())
    assert execs > 0 and cov > 0
    print(f"atheris: {execs} inputs in {SECONDS} s ({rate} exec/s), cov {cov}, ft {features}")
