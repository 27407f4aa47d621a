"""Collect sclite summaries into a ``RESULTS.md`` like ESPnet's ``show_asr_result.sh``.

Expected tree (one ``result.txt`` per test set x modality x metric)::

    exp/<model_dir>/decode_<tag>/<test_set>/<modality>/score_{wer,cer}/result.txt

with ``<modality>`` one of ``audio``, ``video``, ``audiovisual``.  For every model directory
the file gets, per metric, the table ESPnet users know::

    |dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|
    |---|---|---|---|---|---|---|---|---|
    |decode_<tag>/<test_set>/<modality>|1321|9890|...|

(the numbers are the ``Sum/Avg`` line as sclite printed it), preceded by a compact
"error rate per modality" table (one row per decode/test set, one column per modality), the
number of utterances each modality was scored on, and headed by the environment lines (date,
python / espnet / torch versions, git hash).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from espnet_usr2.scoring.sclite import ResultSummary, ScliteFailedError, parse_result

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: modality directory names, in the order tables list them, with the paper's short names
MODALITIES: Tuple[Tuple[str, str], ...] = (("audio", "A"), ("video", "V"), ("audiovisual", "AV"))
METRICS: Tuple[str, ...] = ("wer", "cer", "ter")
TABLE_HEADER = "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|"
TABLE_RULE = "|---|---|---|---|---|---|---|---|---|"


@dataclass
class ResultEntry:
    """One ``result.txt`` found in the tree."""

    model: str
    decode: str
    test_set: str
    modality: str
    metric: str
    summary: ResultSummary
    path: Path

    @property
    def dataset(self) -> str:
        """The ``dataset`` column: ``decode_<tag>/<test_set>/<modality>``."""
        return f"{self.decode}/{self.test_set}/{self.modality}"


def _result_files(model_dir: Path) -> List[Path]:
    """``<decode>/<test_set>/<modality>/score_*/result.txt`` under ``model_dir``; any decoding
    directory name counts (``decode_<config>_<model>`` by default, or usr2.sh's ``--inference_tag``)."""
    return sorted(p for m, _ in MODALITIES for p in model_dir.glob(f"*/*/{m}/score_*/result.txt"))


def _model_dirs(exp_dir: Path) -> List[Path]:
    """``exp_dir`` itself when it holds decoding directories, else its subdirectories."""
    if _result_files(exp_dir):
        return [exp_dir]
    return sorted(p for p in exp_dir.iterdir() if p.is_dir())


def collect_results(exp_dir: PathLike) -> Tuple[List[ResultEntry], List[str]]:
    """Find and parse every ``result.txt`` of the expected layout under ``exp_dir``.

    Returns the entries (sorted: model, metric, decode, test set, modality) and a list of
    problems (unreadable or Sum/Avg-less result files), which are skipped rather than fatal
    so that one broken decode does not hide the others.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise FileNotFoundError(f"experiment directory {str(exp_dir)!r} does not exist")
    modality_names = [m for m, _ in MODALITIES]
    entries, problems = [], []
    for model_dir in _model_dirs(exp_dir):
        for result in _result_files(model_dir):
            metric = result.parent.name[len("score_") :]
            modality = result.parent.parent.name
            if metric not in METRICS:
                continue
            try:
                summary = parse_result(result)
            except (ScliteFailedError, OSError, ValueError) as e:
                problems.append(f"{result}: {e}")
                continue
            decode_dir = result.parent.parent.parent.parent
            entries.append(
                ResultEntry(
                    model=model_dir.name,
                    decode=decode_dir.name,
                    test_set=result.parent.parent.parent.name,
                    modality=modality,
                    metric=metric,
                    summary=summary,
                    path=result,
                )
            )
    order = {m: i for i, m in enumerate(modality_names)}
    entries.sort(key=lambda e: (e.model, METRICS.index(e.metric), e.decode, e.test_set, order[e.modality]))
    return entries, problems


def _git(args: Sequence[str], cwd: Path) -> Optional[str]:
    """Output of a read-only git command, or None outside a checkout / without commits."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def environment_lines(repo_dir: Optional[PathLike] = None) -> List[str]:
    """The ``## Environments`` bullet list ESPnet's RESULTS.md starts with."""
    lines = [
        f"- date: `{time.strftime('%a %b %e %H:%M:%S %Z %Y')}`",
        f"- python version: `{sys.version.replace(chr(10), ' ')}`",
    ]
    try:
        import espnet

        lines.append(f"- espnet version: `espnet {espnet.__version__}`")
    except ImportError:
        lines.append("- espnet version: `not installed`")
    try:
        import torch

        lines.append(f"- pytorch version: `pytorch {torch.__version__}`")
    except ImportError:
        lines.append("- pytorch version: `not installed`")
    from espnet_usr2.version import __version__

    lines.append(f"- espnet_usr2 version: `espnet_usr2 {__version__}`")
    cwd = Path(repo_dir) if repo_dir else Path.cwd()
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit:
        lines.append(f"- Git hash: `{commit}`")
        date = _git(["log", "-1", "--format=%cd"], cwd)
        if date:
            lines.append(f"  - Commit date: `{date}`")
    else:
        lines.append("- Git hash: `unavailable (not a git checkout, or no commit yet)`")
    return lines


def _modality_table(title: str, rows: Dict[str, Dict[str, str]]) -> List[str]:
    """One row per decode/test set, one column per modality ("-" where it was not scored)."""
    if not rows:
        return []
    header = "|decode/test set|" + "|".join(f"{m} ({s})" for m, s in MODALITIES) + "|"
    lines = [f"### {title}", "", header, "|---" * (len(MODALITIES) + 1) + "|"]
    for key, by_modality in rows.items():
        lines.append(f"|{key}|" + "|".join(by_modality.get(m, "-") for m, _ in MODALITIES) + "|")
    return lines + [""]


def _summary_table(entries: List[ResultEntry], metric: str) -> List[str]:
    """Error rate per decode/test set and modality: the paper's way to compare."""
    rows: Dict[str, Dict[str, str]] = {}
    for e in entries:
        if e.metric == metric:
            rows.setdefault(f"{e.decode}/{e.test_set}", {})[e.modality] = e.summary.fields[6]
    return _modality_table(f"{metric.upper()} (%) per modality", rows)


def _count_table(entries: List[ResultEntry]) -> List[str]:
    """Utterances scored per modality (sclite's Snt): a set mixing audio-visual and
    single-stream utterances scores each modality over the utterances that have it."""
    rows: Dict[str, Dict[str, str]] = {}
    for e in entries:
        rows.setdefault(f"{e.decode}/{e.test_set}", {}).setdefault(e.modality, str(e.summary.snt))
    return _modality_table("Utterances scored per modality", rows)


def render_results_md(entries: List[ResultEntry], env: Optional[List[str]] = None, problems: Sequence[str] = ()) -> str:
    """Markdown text of RESULTS.md for already-collected entries."""
    out = [
        "<!-- Generated by espnet_usr2.scoring.results (python -m espnet_usr2.bin.usr2_score --results) -->",
        "# RESULTS",
        "## Environments",
    ]
    out += env if env is not None else environment_lines()
    out.append("")
    for model in dict.fromkeys(e.model for e in entries):
        mine = [e for e in entries if e.model == model]
        out += [f"## {model}", ""]
        for metric in METRICS:
            out += _summary_table(mine, metric)
        out += _count_table(mine)
        for metric in METRICS:
            rows = [e.summary.markdown_row(e.dataset) for e in mine if e.metric == metric]
            if rows:
                out += [f"### {metric.upper()}", "", TABLE_HEADER, TABLE_RULE] + rows + [""]
    if problems:
        out += ["## Skipped result files", ""] + [f"- {p}" for p in problems] + [""]
    return "\n".join(out)


def write_results_md(exp_dir: PathLike, out: PathLike, repo_dir: Optional[PathLike] = None) -> Tuple[Path, List[str]]:
    """Collect ``exp_dir`` and write ``out``; returns the path and the skipped-file problems."""
    entries, problems = collect_results(exp_dir)
    if not entries:
        raise FileNotFoundError(
            f"no result.txt under {str(exp_dir)!r} matching <model>/<decoding dir>/<test_set>/"
            f"{{{','.join(m for m, _ in MODALITIES)}}}/score_{{{','.join(METRICS)}}}/result.txt"
            + (f"; unreadable: {problems}" if problems else "")
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_results_md(entries, environment_lines(repo_dir), problems), encoding="utf-8")
    for p in problems:
        log.warning("skipped %s", p)
    return out, problems
