"""Progress of ROI preparation across jobs: each job writes a small JSON file, a watcher sums them.

Jobs of a cluster array or ``run.pl`` write their output to per-job logs nobody reads
while the run goes on. So each job rewrites ``<shard>/progress.json`` (atomically, at
most every ``interval`` seconds) and ``usr2_prepare_roi --progress`` -- started in the
background by ``usr2.sh`` stage 2 -- prints one line every few seconds for the whole
set: utterances done / total, frames per second and the time left.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, TextIO, Union

PathLike = Union[str, Path]
PROGRESS = "progress.json"
logger = logging.getLogger(__name__)


@dataclass
class JobProgress:
    """What one job has done; ``resumed`` utterances came from its journal, not decoding."""

    total: int
    done: int = 0  # processed + skipped, resumed ones included
    skipped: int = 0
    resumed: int = 0
    frames: int = 0  # frames decoded in this run (resumed ones excluded: they cost nothing)
    elapsed: float = 0.0  # seconds this run has been going
    finished: bool = False


class ProgressWriter:
    """A job's progress: ``progress.json`` in its shard dir, plus a log line every ``log_interval`` s."""

    def __init__(
        self, shard_dir: PathLike, total: int, desc: str, interval: float = 2.0, log_interval: float = 30.0
    ) -> None:
        from tqdm import tqdm

        self.path = Path(shard_dir) / PROGRESS
        self.state = JobProgress(total)
        self.desc, self.interval, self.log_interval = desc, interval, log_interval
        self.bar = tqdm(total=total, desc=desc, unit="utt", disable=not sys.stderr.isatty())
        self.start = self.last_write = self.last_log = time.monotonic()
        self._write()

    def update(self, frames: int, skipped: bool, resumed: bool = False) -> None:
        s = self.state
        s.done += 1
        s.skipped += int(skipped)
        s.resumed += int(resumed)
        s.frames += 0 if resumed else frames  # frames/s measures decoding, not the journal
        self.bar.update(1)
        now = time.monotonic()
        if now - self.last_write >= self.interval:
            self._write()
        if not resumed and (now - self.last_log >= self.log_interval or s.done == s.total):
            self.last_log = now
            logger.info(
                "%s: %d/%d utterances (%d skipped, %d resumed), %d frames, %.1f frames/s",
                self.desc,
                s.done,
                s.total,
                s.skipped,
                s.resumed,
                s.frames,
                s.frames / max(now - self.start, 1e-9),
            )

    def _write(self) -> None:
        self.last_write = time.monotonic()
        self.state.elapsed = self.last_write - self.start
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self.state)))
        os.replace(tmp, self.path)

    def close(self, finished: bool = True) -> None:
        self.state.finished = finished
        self._write()
        self.bar.close()


def read_progress(shard_dir: PathLike, since: float = 0.0) -> Optional[JobProgress]:
    """A job's last progress, or None before it started: no file, or one last written
    before ``since`` (wall clock; the file of an earlier run)."""
    path = Path(shard_dir) / PROGRESS
    try:
        if path.stat().st_mtime < since:
            return None
        return JobProgress(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_progress(name: str, total: int, jobs: Sequence[Optional[JobProgress]]) -> str:
    """One line for the whole set from the jobs' progress (None: not started)."""
    done = sum(j.done for j in jobs if j)
    skipped = sum(j.skipped for j in jobs if j)
    resumed = sum(j.resumed for j in jobs if j)
    running = [j for j in jobs if j and not j.finished]
    # Rates of running jobs add up (they decode in parallel); resumed utterances are not work.
    fps = sum(j.frames / j.elapsed for j in running if j.elapsed > 0)
    utt_rate = sum((j.done - j.resumed) / j.elapsed for j in running if j.elapsed > 0)
    line = f"{name}: {done}/{total} utterances done ({skipped} skipped"
    line += f", {resumed} from an earlier run)" if resumed else ")"
    line += f", {len(running)} of {len(jobs)} jobs running, {fps:.1f} frames/s"
    if done >= total:
        return line + ", finished"
    left = f"about {_clock((total - done) / utt_rate)} left" if utt_rate > 0 else "time left unknown yet"
    return f"{line}, {left}"


def watch(
    name: str,
    total: int,
    shard_dirs: Sequence[PathLike],
    interval: float = 10.0,
    out: TextIO = sys.stdout,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Print a progress line every ``interval`` s until every job finished or ``keep_going``
    says stop (``usr2.sh`` also ends the watcher once its jobs have returned)."""
    since = time.time() - 1.0  # a file older than the watcher is an earlier run's (mtime granularity)
    while True:
        jobs: List[Optional[JobProgress]] = [read_progress(d, since) for d in shard_dirs]
        print(format_progress(name, total, jobs), file=out, flush=True)
        if all(j is not None and j.finished for j in jobs) or not keep_going():
            return
        time.sleep(interval)
