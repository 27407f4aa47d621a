"""Growth of the list stages with the size of the corpus: usr2.sh stages 3, 4, 10 and the
semi-supervised sampler at 10 k / 100 k / 1 M utterance entries (issue 25).

Nothing here can hold VoxCeleb2, but stages 3, 4 and 10 read and write only lists once stage
2 has extracted the media, so a pool of list entries that point at a handful of real clips
exercises them at full size. Each size N is an unlabelled set of N entries plus a labelled set
of N/8 (VoxCeleb2 + AVSpeech against LRS2 + LRS3 is roughly that ratio) with transcripts,
and a 1,000-utterance valid set. Frame counts are drawn log-normally (1-24 s) and need not
match the clip an entry points at: stage 10 reads frame counts from ``utt2num_frames`` and
only the frame size from a few clip headers.

Every stage runs as the recipe runs it (``usr2.sh --stage S --stop_stage S`` from a recipe
directory); its wall-clock and peak resident memory (of the stage's biggest process) are
printed per size with the seconds per 1,000 entries, which stay flat when a stage is linear.
``--collect_stats_entries K`` also times the path stage 10 replaced (``usr2_train
--collect_stats``: builds the model and decodes every clip) on the first K labelled entries,
side by side with the list path on the same entries.

    python bench/bench_scale.py                                  # 10k, 100k, 1M (about 10 min)
    python bench/bench_scale.py --sizes 10000 --collect_stats_entries 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from espnet_usr2.data.roi_io import save_roi  # noqa: E402
from espnet_usr2.testing.recipes import TEMPLATE, TEMPLATE_SHARED, link_template  # noqa: E402

SAMPLES_PER_FRAME = 640
WORDS = (
    "THE",
    "A",
    "PEOPLE",
    "THINK",
    "ABOUT",
    "WHAT",
    "THEY",
    "SEE",
    "EVERY",
    "DAY",
    "AND",
    "WHY",
    "IT",
    "MATTERS",
    "TO",
    "US",
    "NOW",
    "BECAUSE",
    "WE",
    "KNOW",
)
TRAIN_CONFIG = TEMPLATE / "conf" / "train_usr2_base.yaml"
MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)"
)


Clip = Tuple[Path, Path, int]  # ROI file, wav file, frames


def make_clips(media: Path, count: int = 8) -> List[Clip]:
    """``count`` short real clips (ROI .mkv 96x96 + 16 kHz wav) the entries point at."""
    rng = np.random.default_rng(0)
    media.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(count):
        frames = int(rng.integers(25, 75))
        roi = save_roi(media / f"clip{i}.mkv", rng.integers(0, 255, (frames, 96, 96), dtype=np.uint8))
        wav = media / f"clip{i}.wav"
        soundfile.write(wav, 0.1 * rng.standard_normal(frames * SAMPLES_PER_FRAME).astype(np.float32), 16000)
        clips.append((roi, wav, frames))
    return clips


def write_set(
    recipe: Path, name: str, count: int, clips: Sequence[Clip], labelled: bool, seed: int, clip_frames: bool = False
) -> None:
    """data/<name>/{utt2spk,text} and dump/extract/<name>/ as stages 1-2 leave them; frame
    counts drawn at random, or (``clip_frames``) those of the clip an entry points at."""
    rng = np.random.default_rng(seed)
    frames = np.clip(np.exp(rng.normal(np.log(125), 0.6, count)), 25, 600).astype(int)
    ids = [f"{name}spk{i // 40:07d}_{i:08d}" for i in range(count)]
    pick = rng.integers(0, len(clips), count)
    if clip_frames:
        frames = np.array([clips[k][2] for k in pick])
    data, extract = recipe / "data" / name, recipe / "dump" / "extract" / name
    data.mkdir(parents=True)
    extract.mkdir(parents=True)
    _write(extract / "video.scp", (f"{u} {clips[k][0]}" for u, k in zip(ids, pick)))
    _write(extract / "wav.scp", (f"{u} {clips[k][1]}" for u, k in zip(ids, pick)))
    _write(extract / "utt2num_frames", (f"{u} {n}" for u, n in zip(ids, frames)))
    (extract / "skipped.tsv").write_text("uttid\tpath\treason\n")
    _write(data / "utt2spk", (f"{u} {u.split('_')[0]}" for u in ids))
    if labelled:
        words = rng.integers(0, len(WORDS), (count, 12))
        lengths = np.maximum(frames // 12, 2)
        _write(data / "text", (f"{u} {' '.join(WORDS[w] for w in row[:n])}" for u, row, n in zip(ids, words, lengths)))


def _write(path: Path, lines) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def recipe_dir(root: Path) -> Path:
    """A recipe directory laid out like egs2/<corpus>/usr2 (shared files linked)."""
    return link_template(root / "usr2", (*TEMPLATE_SHARED, "conf"))


def measured(cmd: Sequence[str], cwd: Path, log: Path) -> Tuple[float, float]:
    """(seconds, peak RSS in MB of the command's largest process); fails with the log's tail."""
    with open(log, "a") as out:
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, *cmd],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            env={**os.environ, "USR2_CMD_BACKEND": "local"},
        )
    *_, last = proc.stdout.strip().splitlines()
    seconds, rss_kb, rc = last.split()
    if int(rc) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed (exit {rc}); see {log}\n" + log.read_text()[-3000:])
    return float(seconds), int(rss_kb) / 1024


def sampler_cost(stats_lab: Path, stats_unlab: Path) -> Tuple[float, float]:
    """The epoch plan of rank 0 of 8, in a process of its own: (seconds, peak RSS MB)."""
    code = (
        "import resource, sys, time\n"
        "from espnet_usr2.samplers.semi_supervised import SemiSupervisedBatchSampler, read_frame_lengths\n"
        "t = time.perf_counter()\n"
        "lab, unl = read_frame_lengths(sys.argv[1]), read_frame_lengths(sys.argv[2])\n"
        "steps = SemiSupervisedBatchSampler(lab, unl, 4800, 4800, seed=1).rank_steps(1, rank=0, world_size=8)\n"
        "assert steps\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(stats_lab / "train" / "video_shape"),
            str(stats_unlab / "train" / "video_shape"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    seconds, rss_kb = proc.stdout.split()
    return float(seconds), int(rss_kb) / 1024


def usr2(stage: int, extra: Sequence[str] = (), unlabelled: str = "unl") -> List[str]:
    return [
        "./usr2.sh",
        "--stage",
        str(stage),
        "--stop_stage",
        str(stage),
        "--labelled_sets",
        "lab",
        "--unlabelled_sets",
        unlabelled,
        "--valid_set",
        "valid",
        "--test_sets",
        "",
        *extra,
    ]


def tokenizer(recipe: Path, root: Path) -> List[str]:
    """A SentencePiece model from the first 10k labelled transcripts (stage 5's tool)."""
    tok = root / "tok"
    if not (tok / "bpe.model").exists():
        sample = root / "tok_text"
        with open(recipe / "data" / "lab" / "text") as src, open(sample, "w") as dst:
            for _, line in zip(range(10_000), src):
                dst.write(line)
        subprocess.run(
            [
                sys.executable,
                str(TEMPLATE / "pyscripts" / "make_bpe.py"),
                "--text",
                str(sample),
                "--outdir",
                str(tok),
                "--nbpe",
                "64",
            ],
            check=True,
            capture_output=True,
        )
    return ["--token_list", str(tok / "tokens.txt"), "--bpemodel", str(tok / "bpe.model")]


def run_size(root: Path, size: int, clips, log: Path) -> Dict[str, Tuple[float, float]]:
    recipe = recipe_dir(root / f"n{size}")
    write_set(recipe, "lab", size // 8, clips, labelled=True, seed=1)
    write_set(recipe, "unl", size, clips, labelled=False, seed=2)
    write_set(recipe, "valid", 1000, clips, labelled=True, seed=3)
    token_opts = tokenizer(recipe, root)
    cost = {}
    for stage in (3, 4):
        cost[f"stage {stage}"] = measured(usr2(stage), recipe, log)
    cost["stage 10"] = measured(usr2(10, ["--train_config", str(TRAIN_CONFIG), *token_opts]), recipe, log)
    exp = recipe / "exp"
    cost["sampler"] = sampler_cost(exp / "stats_lab", exp / "stats_unlab_unl")
    return cost


def collect_stats_side_by_side(root: Path, entries: int, clips, log: Path) -> Dict[str, Tuple[float, float]]:
    """The replaced path (model built, every clip decoded) and the list path, same entries."""
    recipe = recipe_dir(root / f"collect{entries}")
    write_set(recipe, "lab", entries, clips, labelled=True, seed=1, clip_frames=True)
    write_set(recipe, "valid", 50, clips, labelled=True, seed=3, clip_frames=True)
    token_opts = tokenizer(recipe, root)
    for stage in (3, 4):
        measured(usr2(stage, unlabelled=""), recipe, log)
    dump = recipe / "dump"
    args = ["--config", str(TRAIN_CONFIG), *token_opts, "--token_type", "bpe"]
    for mode, d in (("train", dump / "lab"), ("valid", dump / "valid")):
        args += [
            f"--{mode}_data_path_and_name_and_type",
            f"{d}/wav.scp,speech,sound",
            f"--{mode}_data_path_and_name_and_type",
            f"{d}/video.scp,video,roi_video",
            f"--{mode}_data_path_and_name_and_type",
            f"{d}/text,text,text",
            f"--{mode}_shape_file",
            f"{d}/wav.scp",
        ]
    env_python = [sys.executable, "-m"]
    old = measured(
        [
            *env_python,
            "espnet_usr2.bin.usr2_train",
            "--collect_stats",
            "true",
            *args,
            "--output_dir",
            str(recipe / "collect"),
        ],
        recipe,
        log,
    )
    new = measured(
        [*env_python, "espnet_usr2.bin.usr2_shape_files", *args, "--output_dir", str(recipe / "lists")], recipe, log
    )
    for mode in ("train", "valid"):
        for name in ("speech_shape", "video_shape", "text_shape"):
            # the config's data-loader workers interleave --collect_stats' lines: compare as sets
            old_lines, new_lines = (
                sorted((recipe / d / mode / name).read_text().splitlines()) for d in ("collect", "lists")
            )
            if old_lines != new_lines:
                raise SystemExit(f"{mode}/{name} differs between --collect_stats and the lists")
    return {"usr2_train --collect_stats": old, "usr2_shape_files": new}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--collect_stats_entries",
        type=int,
        default=0,
        help="also time usr2_train --collect_stats against the lists on this many entries",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_scale"))
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    log = args.workdir / "bench.log"
    clips = make_clips(args.workdir / "media")
    results = {}
    print(f"{'entries':>10} {'stage':<10} {'seconds':>9} {'s / 1k entries':>15} {'peak RSS MB':>12}")
    for size in args.sizes:
        start = time.perf_counter()
        cost = run_size(args.workdir, size, clips, log)
        results[size] = cost
        total = size + size // 8
        for stage, (seconds, rss) in cost.items():
            print(f"{total:>10} {stage:<10} {seconds:>9.2f} {1000 * seconds / total:>15.3f} {rss:>12.0f}")
        print(f"{'':>10} (whole size, incl. writing the lists: {time.perf_counter() - start:.0f} s)", flush=True)
    if args.collect_stats_entries:
        side = collect_stats_side_by_side(args.workdir, args.collect_stats_entries, clips, log)
        results["collect_stats"] = side
        (old_s, old_mb), (new_s, new_mb) = side.values()
        print(f"\nstage 10 on {args.collect_stats_entries} labelled + 50 valid entries (identical shape files):")
        for name, (seconds, rss) in side.items():
            print(f"  {name:<28} {seconds:8.2f} s  {rss:6.0f} MB")
        print(f"  ratio {old_s / new_s:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
