"""Power loss of a card image mid-write, 1,000 times (HealthCard issue 9, "Faults").

A child forked from this (already imported) test process loops *load → change several files →
save* on one card image; the parent SIGKILLs it, 1,000 times in all.  The kill lands at every
stage of :func:`healthcard.keys.atomicfile.write_atomically`:

* ``before-write``     — loading, changing, serialising; no temporary file yet;
* ``temp-write``       — the temporary file is created and partly written (the child writes it in
                         4 KiB pieces here, so a kill leaves a torn temporary file);
* ``fsync-to-rename``  — the temporary file is complete and fsync'ed, not yet renamed;
* ``after-rename``     — renamed over the image, the folder not yet fsync'ed, or the save done.

Two kinds of kill, drawn from a seeded RNG: a *stop* at a chosen point (the child stops itself
with SIGSTOP there, and is killed while stopped — so each narrow window is surely hit) and a
*random delay* (the child runs freely and is killed after 0–5 ms, wherever it is).

After each kill: the image loads; **every EF of the card tree** (22 files: transparent, TLV,
linear-fixed and cyclic) equals its content either before the interrupted save or after it —
all of them the same side (no file of one save mixed with a file of the other); the keys are
intact; what is left beside the image is only a temporary file that a load never reads.

The figures (kills per stage, files checked, bad loads) are printed as JSON at the end
(``pytest -s``) and written to ``$HEALTHCARD_FAULT_FIGURES`` when that is set.
"""

from __future__ import annotations

import copy
import json
import mmap
import os
import re
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from random import Random
from typing import IO, Any

import pytest

from healthcard.card import image
from healthcard.card.cos import CardState
from healthcard.card.filesystem import DF, EF, FileKind
from healthcard.demo import issue_demo_card

#: how many times the writer is killed (all of them run in ``make test``: fork makes it cheap)
KILLS = 1_000
SEED = 20_261_124
#: the share of kills that stop the child at a chosen point; the rest kill after a random delay
TARGETED_SHARE = 0.6
MAX_DELAY = 0.005  # seconds, for the random-delay kills (a load+save cycle takes ~2-3 ms)
PIECE = 4096  # the child writes the temporary file in pieces of this size

DDF1, EF07 = 0xDDF1, 0xEF07

# the points the child reports (shared memory) and may stop at
BEFORE_WRITE, TEMP_CREATED, TEMP_PIECE, TEMP_WRITTEN, FSYNCED, RENAMED, SAVED = range(7)
STAGE_OF_POINT = {
    BEFORE_WRITE: "before-write",
    TEMP_CREATED: "temp-write",
    TEMP_PIECE: "temp-write",
    TEMP_WRITTEN: "temp-write",
    FSYNCED: "fsync-to-rename",
    RENAMED: "after-rename",
    SAVED: "after-rename",
}
STAGES = ("before-write", "temp-write", "fsync-to-rename", "after-rename")
# shared memory: point, generation being saved, generation saved, pieces written
_LAYOUT = struct.Struct("<iqqi")


# --- the files a save changes ------------------------------------------------------------------
def _ef(state: CardState, *path: int) -> EF:
    node: DF | EF = state.mf
    for fid in path:
        assert isinstance(node, DF)
        node = node.children[fid]
    assert isinstance(node, EF)
    return node


def generation(state: CardState) -> int:
    return int.from_bytes(_ef(state, DDF1, EF07).data[-4:], "big")


def change(state: CardState) -> int:
    """Generation ``g`` → ``g + 1``: rewrite six files of four kinds, each from ``g + 1``."""
    g = generation(state) + 1
    fill = g & 0xFF
    photo = _ef(state, DDF1, EF07).data
    photo[: len(photo) - 4] = bytes([fill]) * (len(photo) - 4)  # the whole photo file
    photo[-4:] = g.to_bytes(4, "big")
    for rec in _ef(state, DDF1, 0xDF01, 0xEF05).records:  # TLV: keep tag and length
        rec[2:] = bytes([fill ^ 0x5A]) * (len(rec) - 2)
    cyclic = _ef(state, DDF1, 0xDF02, 0xEF07)  # cyclic: a new newest record
    cyclic.write_next(g.to_bytes(4, "big") * (cyclic.record_length // 4) + bytes(cyclic.record_length % 4))
    index = _ef(state, DDF1, 0xDF03, 0xEF06)  # linear-fixed index: the flag of slot (g mod 5)
    index.set_record_byte(g % len(index.records) + 1, 0x00 if g % 2 else 0xFF)
    visit = _ef(state, DDF1, 0xDF03, 0xED01 + g % 5).data  # one visit file of five
    visit[:] = bytes([fill ^ 0xA5]) * len(visit)
    ee = _ef(state, DDF1, 0xDF03, 0xEE01).data
    ee[-8:] = g.to_bytes(8, "big")
    return g


def files_of(state: CardState) -> dict[str, str]:
    """Every EF of the tree, by path, as its image form (data or records, hex)."""
    out: dict[str, str] = {}
    for df in state.mf.walk():
        for fid, node in df.children.items():
            if isinstance(node, EF):
                body = (
                    node.data.hex()
                    if node.kind is FileKind.TRANSPARENT
                    else "|".join(r.hex() for r in node.records)
                )
                out[f"{df.path()}/{fid:04X}"] = body
    return out


def keys_of(state: CardState) -> dict[str, list[tuple[Any, ...]]]:
    return {
        df.path(): sorted(
            (k.kid, int(k.use), k.version, bytes(k.value), k.tries_left) for k in df.keys.values()
        )
        for df in state.mf.walk()
    }


# --- the child ---------------------------------------------------------------------------------
class _PiecewiseFile:
    """The temporary file as the child writes it: in pieces, reporting each one."""

    def __init__(self, raw: IO[bytes], on_piece: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_piece = on_piece

    def write(self, payload: bytes) -> int:
        for n, start in enumerate(range(0, len(payload), PIECE), start=1):
            self._raw.write(payload[start : start + PIECE])
            self._raw.flush()  # the bytes are in the file (the page cache), as far as they got
            self._on_piece(n)
        return len(payload)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __enter__(self) -> _PiecewiseFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


def _child(path: Path, sealer: image.Sealer, shared: mmap.mmap, stop_at: tuple[int, int, int] | None) -> None:
    """Loop load → change → save forever; report each point in ``shared``; stop (SIGSTOP) at
    ``stop_at = (cycle, point, piece)`` when given.  Runs in the forked child only."""
    cycle = 0
    started = done = 0

    def mark(point: int, piece: int = 0) -> None:
        shared[: _LAYOUT.size] = _LAYOUT.pack(point, started, done, piece)
        if stop_at is not None and stop_at == (cycle, point, piece):
            os.kill(os.getpid(), signal.SIGSTOP)  # the parent kills it here

    real_mkstemp, real_fdopen, real_fsync, real_replace = tempfile.mkstemp, os.fdopen, os.fsync, os.replace
    fsyncs = 0

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        result = real_mkstemp(*args, **kwargs)
        mark(TEMP_CREATED)
        return result

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return _PiecewiseFile(real_fdopen(fd, mode, *args, **kwargs), lambda n: mark(TEMP_PIECE, n))

    def fsync(fd: Any) -> None:
        nonlocal fsyncs
        if fsyncs == 0:
            mark(TEMP_WRITTEN)
        real_fsync(fd)
        fsyncs += 1
        if fsyncs == 1:
            mark(FSYNCED)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        real_replace(src, dst, **kwargs)
        mark(RENAMED)

    tempfile.mkstemp = mkstemp  # type: ignore[assignment]  # the child's own copy of the modules
    os.fdopen = fdopen
    os.fsync = fsync
    os.replace = replace
    while True:
        fsyncs = 0
        mark(BEFORE_WRITE)
        state = image.load(path, sealer)
        started = generation(state) + 1
        change(state)
        mark(BEFORE_WRITE, 1)  # changed and about to serialise
        image.save(state, path, sealer)
        done = started
        mark(SAVED)
        cycle += 1


def _fork_child(
    path: Path, sealer: image.Sealer, shared: mmap.mmap, stop_at: tuple[int, int, int] | None
) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns into pytest
        code = 0
        try:
            _child(path, sealer, shared, stop_at)
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            os._exit(code)
    return pid


class _Hung(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise _Hung


def _wait(pid: int, options: int, what: str) -> int:
    """``waitpid`` (blocking: no polling wake-ups on a loaded machine), with a 20 s hang guard
    (SIGALRM; not a timed assert — timers are not inherited by the forked children)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 20.0)
    try:
        _, status = os.waitpid(pid, options)
        return status
    except _Hung:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"the writer never reached {what}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- the test ----------------------------------------------------------------------------------
def _snapshots(start: CardState) -> Callable[[int], dict[str, str]]:
    """Generation → every file's content at that generation (computed once, in order)."""
    state = copy.deepcopy(start)
    known = {generation(state): files_of(state)}

    def at(g: int) -> dict[str, str]:
        while g not in known:
            g_next = change(state)
            known[g_next] = files_of(state)
        return known[g]

    return at


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """Where the image lives: a folder in /dev/shm when there is one.  A SIGKILL tests the death
    of the writing process, not durability (the page cache survives it either way), and on tmpfs
    the writer's fsyncs — still made at the same points — cost nothing, which keeps 1,000 kills
    quick on a loaded machine."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    made = Path(tempfile.mkdtemp(prefix="healthcard-power-loss-", dir=shm))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.mark.slow
def test_a_card_image_survives_1000_kills_mid_save(folder: Path) -> None:
    sealer = image.Sealer(image.DEMO_PASSPHRASE)
    card = issue_demo_card()
    path = folder / "card.img"
    image.save(card, path, sealer)
    start = image.load(path, sealer)  # also runs scrypt once: every child inherits the key
    original_keys = keys_of(start)
    snapshot = _snapshots(start)
    pieces_per_save = -(-len(image.dumps(start, sealer)) // PIECE)
    rng = Random(SEED)
    shared = mmap.mmap(-1, _LAYOUT.size)
    current = generation(start)
    temp_name = re.compile(rf"\.{re.escape(path.name)}\..+\.tmp")

    stages: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    points: Counter[int] = Counter()
    sides: Counter[str] = Counter()
    files_checked = changed_files_seen = leftovers = bad_loads = 0
    for kill in range(KILLS):
        where = f"(kill {kill}, seed {SEED})"
        shared[: _LAYOUT.size] = _LAYOUT.pack(-1, 0, 0, 0)
        before = current  # the generation the last check loaded
        targeted = rng.random() < TARGETED_SHARE
        if targeted:
            point = rng.choice([BEFORE_WRITE, TEMP_CREATED, TEMP_PIECE, TEMP_WRITTEN, FSYNCED, RENAMED])
            piece = rng.randint(1, pieces_per_save) if point == TEMP_PIECE else 0
            if point == BEFORE_WRITE:
                piece = rng.randint(0, 1)  # just loaded / changed in memory
            stop_at = (1 if rng.random() < 0.25 else 0, point, piece)  # mostly in the first cycle
            pid = _fork_child(path, sealer, shared, stop_at)
            status = _wait(pid, os.WUNTRACED, f"point {stop_at} {where}")
            assert os.WIFSTOPPED(status), f"the writer ended by itself (status {status}) {where}"
            kinds["stopped"] += 1
        else:
            pid = _fork_child(path, sealer, shared, None)
            time.sleep(rng.uniform(0, MAX_DELAY))
            kinds["random-delay"] += 1
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"status {status} {where}"

        point, started, done, _piece = _LAYOUT.unpack(shared[: _LAYOUT.size])
        if point < 0:  # killed before the child's first step: nothing was even loaded
            point = BEFORE_WRITE
        points[point] += 1
        stages[STAGE_OF_POINT[point]] += 1
        latest = max(before, done)
        allowed = {latest, started} if started > latest else {latest}

        try:
            loaded = image.load(path, sealer)  # the card always loads
        except Exception as error:  # counted, then failed: the figure says how many
            bad_loads += 1
            pytest.fail(f"the image does not load after the kill: {error!r} {where}")
        g = current = generation(loaded)
        assert g in allowed, f"generation {g}, expected one of {sorted(allowed)} at point {point} {where}"
        if targeted:  # stopped exactly there (a random kill may be a step past its last report)
            if point == RENAMED:
                assert g == started, f"renamed but the image is still generation {g} {where}"
            elif started > latest:
                assert g == latest, f"not renamed yet but the image moved to {g} {where}"
        sides["new" if started and g == started else "old"] += 1

        # every EF: its content before the interrupted save or after it, all from the same side
        files = files_of(loaded)
        old, new = snapshot(latest), snapshot(started if started > latest else latest)
        assert files.keys() == old.keys(), where
        for name, body in files.items():
            assert body in (old[name], new[name]), f"{name} is neither before nor after the save {where}"
        assert files == snapshot(g), f"files of two saves mixed {where}"
        files_checked += len(files)
        changed_files_seen += sum(1 for name in files if old[name] != new[name])
        assert keys_of(loaded) == original_keys, f"the keys changed {where}"

        # beside the image: only temporary files, never read by a load, never the image itself
        for entry in folder.iterdir():
            if entry == path:
                continue
            assert temp_name.fullmatch(entry.name), f"unexpected file {entry.name} {where}"
            assert not entry.samefile(path), where
            leftovers += 1
            entry.unlink()  # keep the folder small; the load above ran with it present

    for stage in STAGES:
        assert stages[stage] > 0, f"no kill landed in {stage}: {dict(stages)}"
    assert sides["new"] > 0 and sides["old"] > 0
    figures = {
        "kills": KILLS,
        "seed": SEED,
        "kinds": dict(kinds),
        "stages": {stage: stages[stage] for stage in STAGES},
        "points": {
            name: points[p]
            for p, name in enumerate(
                ["before-write", "temp-created", "temp-piece", "temp-written", "fsynced", "renamed", "saved"]
            )
        },
        "image_after_kill": {"old": sides["old"], "new": sides["new"]},
        "bad_loads": bad_loads,
        "files_per_image": len(files_of(start)),
        "files_checked": files_checked,
        "changed_files_checked": changed_files_seen,
        "temporary_files_left_by_kills": leftovers,
        "final_generation": generation(image.load(path, sealer)),
    }
    text = json.dumps(figures, indent=1)
    print(f"\ncard power-loss figures:\n{text}", file=sys.stdout)
    out = os.environ.get("HEALTHCARD_FAULT_FIGURES")
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    assert generation(image.load(path, sealer)) > 0
