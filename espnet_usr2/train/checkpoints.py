"""Checkpoints that survive a preemptible cluster: atomic writes and resume points within an epoch.

**Atomic writes.** ESPnet's ``Trainer.run`` writes ``checkpoint.pth``, ``<epoch>epoch.pth`` and
the averaged models in place (``torch.save(obj, path)``); a job killed while it writes -- a Huge
checkpoint with the EMA teacher and AdamW's moments is ~15 GB -- leaves a truncated file as the
only resume point. :func:`atomic_save` writes to a temporary name in the same directory, flushes
and fsyncs it, then renames it over the old file (a rename within one file system is atomic), so
a killed write leaves the previous file intact. :func:`atomic_writes_in` makes ESPnet's training
loop use it without copying that loop: for the duration of a run, the ``torch`` name in the
listed ESPnet modules is a view of ``torch`` whose ``save`` is :func:`atomic_save`.

**Resume points within an epoch** (icefall's ``--save-every-n``, Lightning's mid-epoch
``ModelCheckpoint``). A resume point is ESPnet's checkpoint dict (model, reporter, optimisers,
schedulers, scaler: ``Trainer.resume`` reads it unchanged) plus a ``position``: the epoch, the
batches of it already trained, every rank's random-number generator states and the epoch's
partial statistics. Its reporter state claims the *previous* epoch as finished, so ESPnet's
``--resume`` starts the interrupted epoch again; :class:`EpochPosition` then skips the batches
already trained (the epoch's batch list is a pure function of ``(seed, epoch)`` in both
ESPnet's iterators and the semi-supervised sampler) and restores the generators, so the run
continues with the same batches, masks, dropout and mixed-sampling draws it would have had.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import logging
import os
import random
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader

from espnet_usr2.train.deferred_stats import resolve

PathLike = Union[str, os.PathLike]
TMP_SUFFIX = ".tmp"  # the temporary name: .<name>.tmp<pid> beside the target
POSITION_KEY = "position"


def _serialize(obj: Any, stream: io.BufferedIOBase) -> None:
    """Writes ``obj`` to an open file (one place, so a test can make the write slow)."""
    torch.save(obj, stream)


def atomic_save(obj: Any, path: PathLike, *args: Any, **kwargs: Any) -> None:
    """``torch.save(obj, path)`` that never leaves a partial ``path``: temporary file, fsync, rename.

    File objects (anything but a path) are passed to ``torch.save`` as they are.
    """
    if not isinstance(path, (str, os.PathLike)):
        torch.save(obj, path, *args, **kwargs)
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}{os.getpid()}")
    try:
        with open(tmp, "wb") as stream:
            if args or kwargs:
                torch.save(obj, stream, *args, **kwargs)
            else:
                _serialize(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)  # the rename itself reaches the disk


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems do not open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: PathLike) -> List[Path]:
    """Deletes what killed writes left (``.<name>.tmp<pid>``); returns the removed paths."""
    stale = [p for p in Path(directory).glob(f".*{TMP_SUFFIX}*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        logging.warning(
            f"removed {len(stale)} partial checkpoint file(s) a killed write left: {', '.join(p.name for p in stale)}"
        )
    return stale


class _TorchWithAtomicSave:
    """The ``torch`` module as seen by a patched ESPnet module: everything, but an atomic ``save``."""

    save = staticmethod(atomic_save)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


@contextmanager
def atomic_writes_in(*modules: Any) -> Iterator[None]:
    """For the duration of the block, ``torch.save(..., path)`` in each module is atomic."""
    originals = [module.torch for module in modules]
    try:
        for module in modules:
            module.torch = _TorchWithAtomicSave()
        yield
    finally:
        for module, original in zip(modules, originals):
            module.torch = original


# --- the position within an epoch -------------------------------------------------------------


def rng_states() -> Dict[str, Any]:
    """This process's random-number generator states (Python, NumPy, torch CPU and CUDA)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: Dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def sub_reporter_state(sub_reporter: Any) -> Dict[str, Any]:
    """The statistics an ESPnet ``SubReporter`` has gathered in this epoch so far."""
    resolve(sub_reporter)
    return {
        "stats": {k: list(v) for k, v in sub_reporter.stats.items()},
        "count": sub_reporter.count,
        "total_count": sub_reporter.total_count,
    }


def load_sub_reporter_state(sub_reporter: Any, state: Dict[str, Any]) -> None:
    sub_reporter.stats.clear()
    sub_reporter.stats.update({k: list(v) for k, v in state["stats"].items()})
    sub_reporter.count = state["count"]
    sub_reporter.total_count = state["total_count"]


@dataclasses.dataclass
class EpochPosition:
    """Where a resume point sits: ``batches`` batches of ``epoch`` are trained.

    ``rng`` holds one state per rank (rank order), ``statistics`` the epoch's partial
    :func:`sub_reporter_state`.
    """

    epoch: int
    batches: int
    rng: List[Dict[str, Any]]
    statistics: Dict[str, Any]

    def to_dict(self) -> Dict[str, Any]:
        # not dataclasses.asdict: it would turn ESPnet's ReportedValue dataclasses into dicts
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_checkpoint(cls, path: PathLike) -> Optional["EpochPosition"]:
        """The position stored in a checkpoint; None for an end-of-epoch checkpoint."""
        # mmap: reading one small entry of a file that may hold 15 GB of tensors
        states = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        position = states.get(POSITION_KEY)
        return None if position is None else cls(**position)


def checkpoint_states(
    model: torch.nn.Module,
    reporter: Any,
    optimizers: Iterable[torch.optim.Optimizer],
    schedulers: Iterable[Any],
    scaler: Optional[Any],
    position: EpochPosition,
) -> Dict[str, Any]:
    """ESPnet's checkpoint dict for a resume point inside ``position.epoch``.

    The reporter state claims the epoch before as the last one finished, so that ESPnet's
    ``--resume`` starts ``position.epoch`` again (and this module skips what it had trained).
    """
    reporter_state = dict(reporter.state_dict())
    reporter_state["epoch"] = position.epoch - 1
    return {
        "model": model.state_dict(),
        "reporter": reporter_state,
        "optimizers": [o.state_dict() for o in optimizers],
        "schedulers": [s.state_dict() if s is not None else None for s in schedulers],
        "scaler": scaler.state_dict() if scaler is not None else None,
        POSITION_KEY: position.to_dict(),
    }


def skip_batches(loader: Iterable, n: int) -> Iterable:
    """``loader`` without its first ``n`` batches.

    A DataLoader over a list of batches (ESPnet's iterators, the semi-supervised factory) is
    rebuilt over the rest of the list, so the skipped batches are never read; any other
    iterable is advanced past them.
    """
    if n <= 0:
        return loader
    sampler = getattr(loader, "batch_sampler", None)
    if isinstance(loader, DataLoader) and isinstance(sampler, (list, tuple)):
        options = dict(
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            worker_init_fn=loader.worker_init_fn,
            timeout=loader.timeout,
            generator=loader.generator,
            multiprocessing_context=loader.multiprocessing_context,
        )
        if loader.num_workers > 0:
            options.update(prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers)
        return DataLoader(loader.dataset, batch_sampler=list(sampler[n:]), **options)
    logging.warning(
        f"resuming mid-epoch: reading and dropping {n} batches ({type(loader).__name__} "
        "is not a DataLoader over a list of batches)"
    )
    return itertools.islice(loader, n, None)


def keep_last(output_dir: PathLike, latest: Path, step: int, keep: int) -> None:
    """Keeps ``checkpoint.step<N>.pth`` copies of the last ``keep`` resume points (hard links of
    ``latest``, written at optimiser step ``step``; a rename over ``latest`` leaves them alone)."""
    output_dir = Path(output_dir)
    copy = output_dir / f"checkpoint.step{step}.pth"
    copy.unlink(missing_ok=True)
    try:
        os.link(latest, copy)
    except OSError:  # a file system without hard links: copy the bytes (not a load and save of 15 GB)
        tmp = copy.with_name(f".{copy.name}{TMP_SUFFIX}{os.getpid()}")
        shutil.copyfile(latest, tmp)
        os.replace(tmp, copy)
    copies = sorted(output_dir.glob("checkpoint.step*.pth"), key=lambda p: int(p.name[15:-4]))
    for old in copies[:-keep]:
        old.unlink(missing_ok=True)
