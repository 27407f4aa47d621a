#!/usr/bin/env python3
"""Semi-supervised cost on CPU: USR 2.0 (CTC-driven PLs, mixed sampling) vs AR PLs / USR v1.

    python bench/bench_semi.py                 # Base config, 2 threads, about 2-4 min on an idle 2-core machine
    python bench/bench_semi.py --steps 4 --usr1_steps 3 --pl_repeats 3    # shorter

Model: ``train_usr2_base.yaml`` (86 M parameters), random weights, a 1000-token list,
random audio / video. Every figure is measured in this run; nothing is hard-coded.

1. **Pseudo-label (PL) generation**, batch ``--pl_batch`` x ``--pl_frames`` (8 x 150 frames,
   6 s at 25 fps). The teacher's audio-visual encoder pass is the same for both methods: it
   runs once, is timed and printed separately and is *not* in the PL figures. Compared is the
   PL step after encoding:

   * CTC-driven (USR 2.0, eqs. 3-4): greedy CTC + collapse + sequence confidence, then ONE
     parallel causally-masked decoder pass over ``[sos] + y_ctc`` (``ctc_pseudo_labels`` +
     ``ctc_driven_teacher_forcing``);
   * AR greedy (USR 2.0 AR mode, USR v1): batched greedy decoding with key/value cache
     (``ar_greedy_pseudo_labels``), one decoder step per token.

   PL lengths are forced realistic. AR: a random-init decoder never emits a trained
   ``<eos>``; to make sure of it the teacher's ``<eos>`` logit is lowered by 1e4, so AR
   decoding runs to its limit T//5 = 30 steps for 150 frames -- the worst case of a trained
   model and also about LRS3's token rate (~5 tokens/s in 1000 BPE units). CTC: the random
   encoder output is nearly constant over time, so the raw CTC argmax is one token on every
   frame (collapsed length 1, unrealistically short). The teacher's CTC head is therefore
   biased: (a) centred, ``bias = -W mean(enc)`` over the batch's valid frames, so each
   frame's argmax follows that frame's own deviation; (b) the blank logit raised by the 80 %
   quantile of ``max non-blank logit - blank logit``, so 1 frame in 5 is non-blank. The
   collapsed PL then has ~T/5 = 30 tokens (the measured mean / max are printed), i.e. the
   decoder pass covers ~31 positions, as many as AR's 30 steps.
   The confidence threshold is the default 0.8 (masks are computed in both paths).

2. **Training step**, forward + backward (no optimiser step, no EMA update) of one
   semi-supervised step: ``--labelled`` labelled + ``--unlabelled`` unlabelled utterances of
   ``--step_frames`` frames (default 1 + 2 x 75 frames, 3 s each: the Base model on 2 CPU
   threads needs seconds per utterance, so the batch is far smaller than the paper's
   600 / 4400 frames), all three modalities (v, a, av), student in train mode (augmentation,
   dropout), teacher PLs on the clean AV view. ``threshold=0.0`` lets every PL pass so every
   loss term does its real work. The teacher's CTC / ``<eos>`` are biased as in 1 (CTC PL
   ~T/5 = 15 tokens, AR PL 15 tokens).

   * USR 2.0, p_AR = 0.5: ``--steps`` steps whose mode is the model's own mixed-sampling
     draw (seed 42, step k = 0, 1, ...: the step counter is the teacher's ``num_updates``).
     Reported: the mean over the drawn steps, and the median per mode.
   * USR v1: AR PLs every step, frame-level CTC PLs.

3. **Peak memory**: each group (PL, USR 2.0 steps, USR v1 steps) runs in its own fresh
   subprocess. Around each measured call the kernel's peak-RSS counter is reset
   (``/proc/self/clear_refs`` <- 5) and read back (``VmHWM``); reported is the peak RSS during
   the call minus the RSS just before it ("extra peak": the memory the call itself needs,
   activations + autograd graph + PL buffers; the model's weights are excluded), the largest
   over the repeats. The workers run with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors
   go back to the OS and one call's leftovers do not hide the next one's peak. Also printed:
   each worker's whole-process peak RSS (``ru_maxrss``: weights, teacher copy, all of it).
   Where ``clear_refs`` is not available only the whole-process peak is reported.

Timings: median wall-clock of ``--pl_repeats`` repeats (PL; the two methods alternate) after
one warm-up call each; training steps after one warm-up step. CPU seconds (all threads of
the process) are printed too: on a shared machine they suffer less from other load.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLES_PER_FRAME = 640  # 16 kHz audio, 25 fps video
FPS = 25
PL_MODALITY = "av"


# ----------------------------------------------------------------------------- helpers
def token_list(size: int) -> List[str]:
    return ["<blank>", "<unk>", *(f"tok{i}" for i in range(size - 3)), "<sos/eos>"]


def _status_mb(key: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
        return int(match.group(1)) / 1024 if match else None
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def max_rss_mb() -> float:
    """Whole-process peak RSS so far (Linux: ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Measured:
    """Wall / CPU seconds and extra peak RSS (MB, None if unmeasurable) of one call."""

    def __init__(self, fn: Callable[[], object]):
        can_reset = _reset_peak_rss()
        before = _status_mb("VmRSS")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        self.result = fn()
        self.wall = time.perf_counter() - wall0
        self.cpu = time.process_time() - cpu0
        peak = _status_mb("VmHWM")
        self.extra_mb = peak - before if (can_reset and peak is not None and before is not None) else None


def median(xs: List[float]) -> float:
    return statistics.median(xs)


def max_or_none(xs: List[Optional[float]]) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def random_av(lengths: List[int], seed: int) -> Dict[str, torch.Tensor]:
    """Padded random audio (B, T*640) and video (B, T, 96, 96) with their lengths."""
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    n, t = len(lengths), max(lengths)
    speech = torch.randn(n, t * SAMPLES_PER_FRAME, generator=g) * 0.1
    video = torch.rand(n, t, 96, 96, generator=g) * 255
    for i, frames in enumerate(lengths):
        speech[i, frames * SAMPLES_PER_FRAME:] = 0
        video[i, frames:] = 0
    return dict(speech=speech, speech_lengths=lens * SAMPLES_PER_FRAME, video=video, video_lengths=lens)


@torch.no_grad()
def force_realistic_pl_lengths(teacher, enc: torch.Tensor, enc_lens: torch.Tensor, tokens_per_frame: float) -> None:
    """Bias the teacher's AV CTC head (collapsed PL ~ tokens_per_frame * T) and suppress its ``<eos>``.

    See the module docstring: centre the CTC head on the batch's mean encoder frame, then
    raise the blank logit by the (1 - tokens_per_frame) quantile of the non-blank margin.
    """
    lo = teacher.ctc_head(PL_MODALITY).ctc_lo
    valid = torch.arange(enc.size(1))[None, :] < enc_lens[:, None]
    frames = enc[valid]
    lo.bias.copy_(-(lo.weight @ frames.mean(dim=0)))
    logits = lo(frames)
    margin = logits[:, 1:].max(dim=-1).values - logits[:, 0]
    lo.bias[0] += torch.quantile(margin.double(), 1.0 - tokens_per_frame).float()
    teacher.decoder.output_head(PL_MODALITY).bias[teacher.eos] -= 1e4


def build(args, extra: Optional[List[str]] = None):
    from espnet_usr2.utils.config import build_model_from_config

    torch.manual_seed(args.seed)
    return build_model_from_config(Path(args.config), token_list(args.vocab), extra)


# ----------------------------------------------------------------------------- workers
def worker_pl(args) -> Dict:
    """PL generation: CTC-driven vs AR greedy on the same teacher encoding."""
    from espnet_usr2.semi.ar_pseudo_labels import ARDecodingConfig, ar_greedy_pseudo_labels
    from espnet_usr2.semi.confidence import ConfidenceConfig
    from espnet_usr2.semi.ctc_pseudo_labels import ctc_pseudo_labels
    from espnet_usr2.semi.teacher_forcing import ctc_driven_teacher_forcing

    # the EMA teacher is an eval-mode, no-grad copy of the student: the model itself in eval mode
    teacher = build(args).eval().requires_grad_(False)
    rss_model = _status_mb("VmRSS")
    batch = random_av([args.pl_frames] * args.pl_batch, args.seed)
    with torch.no_grad():
        encoded = Measured(lambda: teacher.encode(**batch, modalities=[PL_MODALITY], augment=False)[PL_MODALITY])
    enc, enc_lens = encoded.result
    force_realistic_pl_lengths(teacher, enc, enc_lens, args.tokens_per_frame)
    head, decoder, sos, eos = teacher.ctc_head(PL_MODALITY), teacher.decoder, teacher.sos, teacher.eos
    conf = ConfidenceConfig(threshold=args.threshold)
    ar_conf = ARDecodingConfig(max_len_ratio=args.tokens_per_frame)

    def ctc_driven():
        with torch.no_grad():
            ctc_pl = ctc_pseudo_labels(head.log_softmax(enc), enc_lens, conf)
            att_pl = ctc_driven_teacher_forcing(decoder, enc, enc_lens, ctc_pl.tokens, ctc_pl.lengths, sos, eos,
                                                args.threshold, modality=PL_MODALITY)
        return ctc_pl, att_pl

    def ar_greedy():
        with torch.no_grad():
            return ar_greedy_pseudo_labels(decoder, enc, enc_lens, sos, eos, ar_conf, args.threshold,
                                           modality=PL_MODALITY, use_cache=True)

    runs: Dict[str, List[Measured]] = {"ctc": [], "ar": []}
    ctc_driven(), ar_greedy()  # warm-up
    for _ in range(args.pl_repeats):
        runs["ctc"].append(Measured(ctc_driven))
        runs["ar"].append(Measured(ar_greedy))
    ctc_pl, att_pl = runs["ctc"][-1].result
    ar_pl = runs["ar"][-1].result
    return {
        "enc_wall": encoded.wall, "enc_cpu": encoded.cpu, "enc_extra_mb": encoded.extra_mb,
        "ctc_len_mean": float(ctc_pl.lengths.float().mean()), "ctc_len_min": int(ctc_pl.lengths.min()),
        "ctc_len_max": int(ctc_pl.lengths.max()), "tf_positions": int(att_pl.tokens.size(1)),
        "ar_len_mean": float(ar_pl.lengths.float().mean()), "ar_len_max": int(ar_pl.lengths.max()),
        "ar_eos": int((ar_pl.tokens == eos).sum()),
        **{f"{k}_wall": [m.wall for m in v] for k, v in runs.items()},
        **{f"{k}_cpu": [m.cpu for m in v] for k, v in runs.items()},
        **{f"{k}_extra_mb": max_or_none([m.extra_mb for m in v]) for k, v in runs.items()},
        "rss_model_mb": rss_model, "max_rss_mb": max_rss_mb(),
    }


def worker_step(args) -> Dict:
    """Forward + backward of semi-supervised steps, USR 2.0 (p_AR = 0.5) or USR v1."""
    from espnet_usr2.semi.mixed_sampling import AR_MODE, MixedSamplingConfig, sample_mode

    extra = ["--semi", args.method, "--semi_conf", "threshold=0.0"]
    if args.method == "usr2":
        extra += ["--semi_conf", f"p_ar={args.p_ar}"]
    model = build(args, extra)
    model.ensure_teacher_initialized()
    model.train()
    teacher = model.teacher.model
    n_lab, n_unl, frames = args.labelled, args.unlabelled, args.step_frames
    batch = random_av([frames] * (n_lab + n_unl), args.seed + 1)
    g = torch.Generator().manual_seed(args.seed + 2)
    n_tokens = max(1, int(frames * args.tokens_per_frame))
    text = torch.randint(2, args.vocab - 2, (n_lab + n_unl, n_tokens), generator=g)
    text[n_lab:] = -1
    labelled = torch.tensor([1] * n_lab + [0] * n_unl).unsqueeze(1)
    batch.update(text=text, text_lengths=torch.tensor([n_tokens] * n_lab + [0] * n_unl), labelled=labelled)
    with torch.no_grad():  # calibrate the teacher's CTC head on its own view of the unlabelled part
        unl = {k: v[n_lab:] for k, v in batch.items() if k.startswith(("speech", "video"))}
        enc, enc_lens = teacher.encode(**unl, modalities=[PL_MODALITY], augment=False)[PL_MODALITY]
    force_realistic_pl_lengths(teacher, enc, enc_lens, args.tokens_per_frame)
    rss_model = _status_mb("VmRSS")

    if args.method == "usr2":
        mixing = MixedSamplingConfig(p_ar=args.p_ar)
        modes = [sample_mode(mixing, model.unlabelled_objective.seed, k) for k in range(10 ** 4)]
        warmup_step = modes.index(AR_MODE) if AR_MODE in modes else 0
    else:
        modes, warmup_step = ["usr1"] * 10 ** 4, 0

    def step(k: int):
        model.teacher.num_updates.fill_(k)  # the mixed-sampling draw of step k
        torch.manual_seed(args.seed + k)  # the student's augmentation
        t0 = time.perf_counter()
        loss, stats, _ = model(**batch)
        t_fwd = time.perf_counter() - t0
        loss.backward()
        model.zero_grad(set_to_none=True)
        return stats, t_fwd

    step(warmup_step)
    records = []
    for k in range(args.steps):
        m = Measured(lambda: step(k))
        stats, t_fwd = m.result
        mode = "ar" if float(stats.get("pl_mode_ar", torch.tensor(1.0))) == 1.0 else "ctc"
        if args.method == "usr2":  # the model ran the mode of the draw
            assert mode == ("ar" if modes[k] == AR_MODE else "ctc"), (k, mode, modes[k])
        records.append(dict(step=k, mode=mode, wall=m.wall, cpu=m.cpu, fwd=t_fwd, extra_mb=m.extra_mb,
                            pl_ctc_len=float(stats["pl_ctc_len"]) if "pl_ctc_len" in stats else None,
                            pl_att_len=float(stats["pl_att_len"])))
        print(f"  [{args.method}] step {k} mode {mode}: {m.wall:.2f} s (forward {t_fwd:.2f} s)", file=sys.stderr,
              flush=True)
    return {"records": records, "rss_model_mb": rss_model, "max_rss_mb": max_rss_mb(),
            "warmup_step": warmup_step}


# ----------------------------------------------------------------------------- driver
def run_worker(kind: str, argv: List[str], out_dir: Path) -> Dict:
    out = out_dir / f"{kind}.json"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--_worker", kind, "--_out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    print(f"  ({kind}: {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return json.loads(out.read_text())


def fmt_mb(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.0f} MB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "egs2/TEMPLATE/usr2/conf/train_usr2_base.yaml"))
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="weights and inputs (the mixed-sampling seed is the config's, 42)")
    p.add_argument("--tokens_per_frame", type=float, default=0.2, help="PL length / frames (AR limit T//5)")
    p.add_argument("--threshold", type=float, default=0.8, help="PL confidence threshold in the PL benchmark")
    p.add_argument("--pl_batch", type=int, default=8)
    p.add_argument("--pl_frames", type=int, default=150)
    p.add_argument("--pl_repeats", type=int, default=5)
    p.add_argument("--labelled", type=int, default=1)
    p.add_argument("--unlabelled", type=int, default=2)
    p.add_argument("--step_frames", type=int, default=75)
    p.add_argument("--steps", type=int, default=8, help="USR 2.0 steps (the mixed-sampling draw of steps 0..N-1)")
    p.add_argument("--usr1_steps", type=int, default=3)
    p.add_argument("--p_ar", type=float, default=0.5)
    p.add_argument("--skip", nargs="*", default=[], choices=("pl", "usr2", "usr1"))
    p.add_argument("--_worker", choices=("pl", "usr2", "usr1"), help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    p.add_argument("--method", default="usr2", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args._worker:
        torch.set_num_threads(args.threads)
        if args._worker == "pl":
            result = worker_pl(args)
        else:
            args.method = args._worker
            if args._worker == "usr1":
                args.steps = args.usr1_steps
            result = worker_step(args)
        Path(args._out).write_text(json.dumps(result))
        return

    argv = [a for a in sys.argv[1:]]
    t_start = time.perf_counter()
    res: Dict[str, Dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("pl", "usr2", "usr1"):
            if kind not in args.skip:
                print(f"running {kind} ...", file=sys.stderr, flush=True)
                res[kind] = run_worker(kind, argv, Path(tmp))
    total = time.perf_counter() - t_start
    report(args, res, total)


def report(args, res: Dict[str, Dict], total: float) -> None:
    from espnet_usr2.utils.config import build_model_from_config

    n_params = sum(p.numel() for p in build_model_from_config(Path(args.config), token_list(args.vocab),
                                                              meta=True).parameters()) / 1e6
    print(f"model {Path(args.config).name}: {n_params:.1f} M parameters, vocab {args.vocab}, CPU, "
          f"torch {torch.__version__}, {args.threads} threads; whole run {total:.0f} s")
    print(f"command: python bench/bench_semi.py {' '.join(sys.argv[1:])}".rstrip())
    rows = []
    if "pl" in res:
        r = res["pl"]
        ctc, ar = median(r["ctc_wall"]), median(r["ar_wall"])
        print(f"\n## Pseudo-label generation, batch {args.pl_batch} x {args.pl_frames} frames "
              f"({args.pl_frames / FPS:.0f} s), median of {args.pl_repeats}")
        print(f"teacher AV encoder pass (shared by both, NOT in the PL figures): {r['enc_wall']:.2f} s wall, "
              f"{r['enc_cpu']:.2f} s CPU, extra peak {fmt_mb(r['enc_extra_mb'])}")
        print(f"CTC PL (biased CTC head, see docstring): collapsed length mean {r['ctc_len_mean']:.1f} "
              f"(min {r['ctc_len_min']}, max {r['ctc_len_max']}) tokens -> one decoder pass over "
              f"{r['tf_positions']} positions")
        print(f"AR PL: {r['ar_len_mean']:.1f} tokens mean, max {r['ar_len_max']} (limit T//5 = "
              f"{int(args.pl_frames * args.tokens_per_frame)} steps; <eos> emitted {r['ar_eos']} times)")
        print(f"CPU seconds (median): CTC-driven {median(r['ctc_cpu']) * 1e3:.1f} ms, "
              f"AR {median(r['ar_cpu']) * 1e3:.1f} ms")
        print(f"wall per repeat (ms): CTC-driven {[round(x * 1e3, 1) for x in r['ctc_wall']]}, "
              f"AR {[round(x * 1e3, 1) for x in r['ar_wall']]}")
        rows.append(("PL generation after encoding (8 x 150 frames)", f"{ctc * 1e3:.1f} ms (CTC-driven)",
                     f"{ar * 1e3:.1f} ms (AR greedy, KV cache)", f"**{ar / ctc:.1f}x** faster"))
        rows.append(("PL step extra peak RSS", fmt_mb(r["ctc_extra_mb"]), fmt_mb(r["ar_extra_mb"]),
                     _ratio(r["ar_extra_mb"], r["ctc_extra_mb"])))
    if "usr2" in res or "usr1" in res:
        print(f"\n## Training step (forward + backward), {args.labelled} labelled + {args.unlabelled} unlabelled "
              f"x {args.step_frames} frames, modalities v, a, av")
    u2 = u1 = None
    if "usr2" in res:
        recs = res["usr2"]["records"]
        by_mode = {m: [x for x in recs if x["mode"] == m] for m in ("ctc", "ar")}
        u2 = statistics.mean(x["wall"] for x in recs)
        print(f"USR 2.0 (p_AR = {args.p_ar}): drawn modes of steps 0..{len(recs) - 1}: "
              f"{' '.join(x['mode'] for x in recs)}; per step (s): {[round(x['wall'], 2) for x in recs]}")
        for m, xs in by_mode.items():
            if xs:
                print(f"  {m:>3} mode: {len(xs)} steps, median {median([x['wall'] for x in xs]):.2f} s wall "
                      f"({median([x['cpu'] for x in xs]):.2f} s CPU), forward {median([x['fwd'] for x in xs]):.2f} s, "
                      f"PL lengths ctc {median([x['pl_ctc_len'] for x in xs]):.1f} / att "
                      f"{median([x['pl_att_len'] for x in xs]):.1f}, extra peak "
                      f"{fmt_mb(max_or_none([x['extra_mb'] for x in xs]))}")
        if all(by_mode.values()):
            expected = (args.p_ar * median([x["wall"] for x in by_mode["ar"]])
                        + (1 - args.p_ar) * median([x["wall"] for x in by_mode["ctc"]]))
            print(f"  expectation p_AR * AR + (1 - p_AR) * CTC-driven (medians): {expected:.2f} s")
        print(f"  whole-process peak RSS {res['usr2']['max_rss_mb']:.0f} MB (after build: "
              f"{res['usr2']['rss_model_mb']:.0f} MB)")
    if "usr1" in res:
        recs1 = res["usr1"]["records"]
        u1 = median([x["wall"] for x in recs1])
        print(f"USR v1: per step (s): {[round(x['wall'], 2) for x in recs1]}, median {u1:.2f} s wall "
              f"({median([x['cpu'] for x in recs1]):.2f} s CPU), forward {median([x['fwd'] for x in recs1]):.2f} s, "
              f"AR PL length {median([x['pl_att_len'] for x in recs1]):.1f}; whole-process peak RSS "
              f"{res['usr1']['max_rss_mb']:.0f} MB")
    if u2 is not None:
        recs = res["usr2"]["records"]
        for m, name in (("ctc", "USR 2.0 step, CTC-driven mode"), ("ar", "USR 2.0 step, AR mode")):
            xs = [x["wall"] for x in recs if x["mode"] == m]
            if xs and u1 is not None:
                rows.append((name, f"{median(xs):.2f} s", f"{u1:.2f} s (USR v1)", f"{u1 / median(xs):.2f}x"))
        rows.append((f"USR 2.0 step, p_AR = {args.p_ar} (mean of {len(recs)} drawn steps)", f"{u2:.2f} s",
                     f"{u1:.2f} s (USR v1)" if u1 else "-", f"{u1 / u2:.2f}x" if u1 else "-"))
        rows.append(("Training step extra peak RSS", fmt_mb(max_or_none([x["extra_mb"] for x in recs])),
                     fmt_mb(max_or_none([x["extra_mb"] for x in res["usr1"]["records"]])) if u1 else "-",
                     _ratio(max_or_none([x["extra_mb"] for x in res["usr1"]["records"]]) if u1 else None,
                            max_or_none([x["extra_mb"] for x in recs]))))
        if u1:
            rows.append(("Training worker whole-process peak RSS", f"{res['usr2']['max_rss_mb']:.0f} MB",
                         f"{res['usr1']['max_rss_mb']:.0f} MB",
                         _ratio(res["usr1"]["max_rss_mb"], res["usr2"]["max_rss_mb"])))
    print("\n| measurement | USR 2.0 | AR / USR v1 | AR / USR v1 ÷ USR 2.0 |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _ratio(num: Optional[float], den: Optional[float]) -> str:
    return "n/a" if num is None or den is None or den <= 0 else f"{num / den:.2f}x"


if __name__ == "__main__":
    main()
