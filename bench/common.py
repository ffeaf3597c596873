"""What every section of the benchmark page shares: the timing helper, the machine line and a
realistic outpatient visit."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable

from healthcard.terminal.records import Code, Diagnosis, Fee, Medication, OutpatientRecord


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def machine() -> str:
    """``CPython 3.11.7, x86_64, shared 2-core machine``: the page's machine description."""
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
        f"shared {os.cpu_count()}-core machine"
    )


def made_by(command: str) -> str:
    """The opening of a section's provenance line: who made the figures, when and where."""
    return f"Made by `{command}` on {dt.date.today()} ({machine()})."


def visit(n: int) -> OutpatientRecord:
    return OutpatientRecord(
        institution_name="郑州大学第一附属医院",
        institution_code="41560001X",
        visit_time=dt.datetime(2026, 1, 1, 9, 0) + dt.timedelta(days=n),
        outpatient_no=f"MZ{n:08d}",
        department="呼吸内科",
        payment_method=Code("03", None),
        diagnoses=[Diagnosis("咳嗽", "R05", dt.date(2026, 1, 1), "急性支气管炎", "J20.9")] * 3,
        medications=[Medication("阿莫西林胶囊", "5", "每日3次", "g", "0.5", "01")] * 3,
        fees=[Fee("西药费", "2", 3650 + n)] * 5,
    )
