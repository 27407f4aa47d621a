"""What each usr2.sh stage costs per clip and per hour of media, measured on the mini corpus
(issue 25: the cost table of egs2/TEMPLATE/usr2/README.md).

Runs the mini recipe (egs2/mini_lrs3/usr2/run.sh, its own options) one stage at a time in a
scratch copy, on a corpus already generated (``--corpus``, e.g. the recipe's
downloads/mini_lrs3), and prints per stage: wall-clock, clips, seconds per clip, seconds per
hour of media, with the disk that stages 2-4 wrote per hour of media. Decoding (stages
12-13) uses a trained model directory (``--model_dir``, e.g. the recipe's exp/<tag>) on the
test set; training (stage 11) is left to bench_semi.py / the GPU figures (its cost is per
step, not per clip of a pass).

    python bench/bench_stage_costs.py --corpus egs2/mini_lrs3/usr2/downloads/mini_lrs3 \\
        --model_dir egs2/mini_lrs3/usr2/exp/train_usr2_mini_trainval_train_semi_pretrain
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

from espnet_usr2.testing.recipes import link_recipe

FPS = 25
TRAIN_SETS = ("trainval_train", "valid", "pretrain")


def run_stages(recipe: Path, first: int, last: int, env: Dict[str, str], extra: List[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.run(
            ["./run.sh", "--stage", str(first), "--stop_stage", str(last), *extra],
            cwd=recipe,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        raise SystemExit(f"stages {first}-{last} failed; see {log}")
    return time.perf_counter() - start


def clips_and_hours(recipe: Path, sets) -> Tuple[int, float]:
    clips = frames = 0
    for s in sets:
        for line in (recipe / "dump" / "extract" / s / "utt2num_frames").read_text().splitlines():
            clips += 1
            frames += int(line.split()[1])
    return clips, frames / FPS / 3600


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="a generated mini corpus (corpus_info.json)")
    parser.add_argument("--model_dir", type=Path, required=True, help="a trained model directory to decode with")
    parser.add_argument("--nj", type=int, default=2, help="stage-2 and decoding jobs")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_stage_costs"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    recipe = link_recipe("mini_lrs3", args.workdir / "usr2")
    log = args.workdir / "run.log"
    env = {
        **os.environ,
        "MINI_LRS3": str(args.corpus.resolve()),
        "USR2_CMD_BACKEND": "local",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    common = ["--nj", str(args.nj), "--inference_nj", str(args.nj), "--test_sets", "test"]
    seconds = {}
    for stage in (1, 2, 3, 4, 5, 10):
        seconds[stage] = run_stages(recipe, stage, stage, env, common, log)
        print(f"stage {stage}: {seconds[stage]:.1f} s", flush=True)
    decode = ["--model_dir", str(args.model_dir.resolve()), "--inference_config", "conf/decode_mini.yaml"]
    seconds[12] = run_stages(recipe, 12, 13, env, common + decode, log)
    all_clips, all_hours = clips_and_hours(recipe, (*TRAIN_SETS, "test"))
    train_clips, train_hours = clips_and_hours(recipe, TRAIN_SETS)
    test_clips, test_hours = clips_and_hours(recipe, ("test",))
    scope = {
        1: (all_clips, all_hours),
        2: (all_clips, all_hours),
        3: (all_clips, all_hours),
        4: (train_clips, train_hours),
        5: (train_clips, train_hours),
        10: (train_clips, train_hours),
        12: (3 * test_clips, 3 * test_hours),
    }  # decoding: A, V and AV of every test clip
    names = {
        1: "data prep",
        2: "mouth ROI + audio",
        3: "format",
        4: "length filter",
        5: "tokenizer",
        10: "shape files",
        12: "decode A/V/AV + score",
    }
    print(f"\nmini corpus: {all_clips} clips, {all_hours:.3f} h of media; {args.nj} jobs, {os.cpu_count()} cores")
    print(f"{'stage':<26} {'seconds':>8} {'clips':>6} {'s / clip':>9} {'s / hour of media':>18}")
    for stage, wall in seconds.items():
        clips, hours = scope[stage]
        print(f"{stage:>2} {names[stage]:<23} {wall:>8.1f} {clips:>6} {wall / clips:>9.4f} {wall / hours:>18.0f}")
    extract = recipe / "dump" / "extract"
    roi = sum(disk_bytes(d) for d in extract.glob("*/roi"))
    wav = sum(disk_bytes(d) for d in extract.glob("*/wav"))
    print(
        f"\ndisk per hour of media: mouth ROIs (FFV1) {roi / all_hours / 1e6:.0f} MB, 16 kHz wav "
        f"{wav / all_hours / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
