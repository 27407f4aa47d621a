"""Per-shard journal of finished utterances: what makes ROI preparation resumable.

A shard job appends one JSON line per utterance once its result is final -- processed
(ROI and wav already written under their final names) or skipped -- and fsyncs it. A
job killed at any point and started again reads the journal back and decodes only the
utterances it does not list, so a restart of a million-clip run costs the one utterance
that was in flight, not a day.

Why a journal rather than appending to the per-job lists as we go: the lists are sorted
and written once, atomically, from the results when the shard ends (:func:`write_lists`),
so they are identical whether the shard ran in one go or in several; and the journal
records what each result was computed from (input path, landmark file, transcript, face
hint, the settings that change outputs), so a result is reused only while those are
unchanged. A half-written last line (a crash inside ``write``) is dropped on reading; a
processed result whose files have gone is decoded again. A shard that has no journal yet
takes over its utterances' results from the journals of another split of the same output
directory (a rerun with another ``--nj``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep import roi_lists as L

PathLike = Union[str, Path]
JOURNAL = "journal.jsonl"
# Skips worth retrying on a restart: they come from the run (disk full, a bug), not the input.
RETRY_REASONS = frozenset({E.WRITE_ERROR, E.INTERNAL_ERROR})
logger = logging.getLogger(__name__)

Result = Union[L.Processed, L.Skipped]


def _encode(key: Dict, result: Result) -> str:
    kind = "processed" if isinstance(result, L.Processed) else "skipped"
    return json.dumps({"key": key, "kind": kind, "result": dataclasses.asdict(result)}, sort_keys=True)


def _decode(record: Dict) -> Result:
    fields = dict(record["result"])
    if record["kind"] == "skipped":
        return L.Skipped(**fields)
    fields["damage"] = tuple(L.DamageRow(**row) for row in fields.get("damage", ()))
    return L.Processed(**fields)


def fsync_file(path: PathLike) -> None:
    """Flush a file's data to disk (a power cut after a rename must not leave it empty)."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files_present(result: Result) -> bool:
    if isinstance(result, L.Skipped):
        return True
    return all(p is None or os.path.isfile(p) for p in (result.roi_path, result.wav_path))


def read_journal(path: PathLike, settings: Dict) -> Optional[Dict[str, Tuple[Dict, Result]]]:
    """uttid -> (key, result) of a journal; None when it is missing, unreadable or was
    written under other settings. A torn (half-written) line is left out."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        header = json.loads(lines[0])
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("settings") != settings:
        return None
    results: Dict[str, Tuple[Dict, Result]] = {}
    for line in lines[1:]:
        try:
            record = json.loads(line)
            results[record["result"]["uttid"]] = (record["key"], _decode(record))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # the torn last line of a killed job (or an empty one)
    return results


class Journal:
    """Results of one shard, keyed by uttid; appended durably, one line per utterance.

    Args:
        shard_dir: the shard's output directory (the journal lives there).
        settings: everything besides the per-utterance key that changes the outputs
            (extraction settings); a journal written under other settings is discarded.
        adopt: for a shard without a journal yet, other shards' journals (a rerun with
            another ``--nj``): their results for ``wanted`` utterances are taken over.
        wanted: the shard's utterance ids (what ``adopt`` may contribute).
    """

    def __init__(
        self, shard_dir: PathLike, settings: Dict, adopt: Sequence[PathLike] = (), wanted: Iterable[str] = ()
    ) -> None:
        self.path = Path(shard_dir) / JOURNAL
        self.settings = settings
        self.results: Dict[str, Tuple[Dict, Result]] = {}
        if self.path.is_file():
            found = read_journal(self.path, settings)
            if found is None:
                logger.warning("%s: written with other settings (or unreadable): starting this shard afresh", self.path)
            self.results = found or {}
        else:
            self._adopt(adopt, set(wanted))
        self._rewrite()  # drops a torn last line before appending after it
        self._fh = open(self.path, "a", encoding="utf-8")

    def _adopt(self, journals: Sequence[PathLike], wanted: set) -> None:
        for path in journals:
            found = read_journal(path, self.settings) or {}
            self.results.update((u, r) for u, r in found.items() if u in wanted)
        if self.results:
            logger.info("%s: %d results taken over from the journals of another split", self.path, len(self.results))

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"settings": self.settings}, sort_keys=True) + "\n")
            for key, result in self.results.values():
                fh.write(_encode(key, result) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def lookup(self, uttid: str, key: Dict) -> Optional[Result]:
        """The earlier result for ``uttid`` if it was computed from the same ``key`` and is
        still complete (its files exist); None: the utterance must be processed."""
        found = self.results.get(uttid)
        if found is None or found[0] != key:
            return None
        result = found[1]
        if isinstance(result, L.Skipped) and result.reason in RETRY_REASONS:
            return None
        return result if _files_present(result) else None

    def add(self, key: Dict, result: Result) -> None:
        """Record a final result: one line, flushed and fsynced before the next utterance."""
        self.results[result.uttid] = (key, result)
        self._fh.write(_encode(key, result) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
