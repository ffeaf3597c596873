"""Batch issuance (集中发卡): a CSV of applications in, a personalised card per row out.

The file is identified by its SHA-256; each row becomes an application tied to (file, row
number), so a re-run — after a crash, a SIGKILL, a pulled plug — finds the rows it took and
personalises only what is not issued yet.  Rows go in chunks: one transaction takes a chunk's
applications, one reserves its chips, the chips are personalised, the images flushed to disk
once, and one transaction marks the chunk issued.  Memory stays flat whatever the file's size.

Rows that cannot be taken (a bad ID number, a person who holds a card already) are written to
the error report, one line per row with the field and the reason, and the batch goes on.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from healthcard.clock import local_date
from healthcard.errors import InvalidValue
from healthcard.issuance.application import Application, application_from_row
from healthcard.issuance.cardcentre import CardCentre
from healthcard.issuance.chips import ChipSource
from healthcard.issuance.lifecycle import ApplicationStatus

ERROR_COLUMNS = ("row", "id_number", "name", "field", "error")


@dataclass
class BatchReport:
    rows: int = 0
    issued: int = 0  # cards personalised by this run
    already: int = 0  # rows issued by an earlier run
    refused: int = 0  # rows refused (see the error report)
    failed: int = 0  # rows whose chip failed (their applications stay APPROVED: re-run)
    resumed: int = 0  # personalisations an earlier crash left, settled first


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """What lives for the whole run (modules, key sets, the engine) leaves the collector's
    sight: each chunk makes ~200 card trees, and full collections walking everything else
    cost ~15 % of a batch (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        yield from enumerate(csv.DictReader(fh), start=1)


def run_batch(
    centre: CardCentre,
    operator_id: str,
    source: Path,
    chips: ChipSource,
    *,
    errors: Path,
    chunk: int = 200,
    photo_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BatchReport:
    if chunk < 1:
        raise InvalidValue("chunk", "at least one card per transaction")
    try:
        total = sum(1 for _ in _rows(source))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidValue("file", f"{source}: {exc}") from None
    batch_id = file_digest(source)
    report = BatchReport(rows=total)
    centre.open_batch(operator_id, batch_id, source.name, total)
    report.resumed = sum(centre.resume(operator_id, chips))
    today = local_date(centre.clock)
    tmp = errors.with_name(f".{errors.name}.tmp")
    with long_lived_frozen(), tmp.open("w", encoding="utf-8", newline="") as fh:
        refusals = csv.writer(fh)
        refusals.writerow(ERROR_COLUMNS)
        done = 0
        rows = _rows(source)
        while block := list(itertools.islice(rows, chunk)):
            known = centre.batch_rows(batch_id, block[0][0], block[-1][0])
            pending: list[str] = []
            fresh: list[tuple[int, Application]] = []
            for number, row in block:
                if number in known:
                    application, status = known[number]
                    if status == ApplicationStatus.ISSUED:
                        report.already += 1
                    elif status == ApplicationStatus.APPROVED:
                        pending.append(application)
                    continue
                try:
                    fresh.append((number, application_from_row(row, today=today, photo_dir=photo_dir)))
                except InvalidValue as exc:
                    refusals.writerow(
                        (number, row.get("id_number", ""), row.get("name", ""), exc.field, exc.message)
                    )
                    report.refused += 1
            taken, refused = centre.submit_batch(operator_id, batch_id, fresh)
            for number, app, refusal in refused:
                refusals.writerow((number, app.card_number, app.name, refusal.field, refusal.message))
            report.refused += len(refused)
            outcome = centre.issue_many(operator_id, pending + taken, chips)
            report.issued += len(outcome.issued)
            for application, error in outcome.failed.items():
                refusals.writerow(("", "", "", "chip", f"{application}: {error}"))
            report.failed += len(outcome.failed)
            if done == 0:
                centre.db.analyse()  # the tables are no longer empty: plan for what they hold
            done += len(block)
            if progress is not None:
                progress(done, total)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, errors)
    return report


__all__ = ["BatchReport", "file_digest", "long_lived_frozen", "run_batch"]
