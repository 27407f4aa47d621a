#!/usr/bin/env python3
"""Semi-supervised cost on CPU: USR 2.0 (CTC-driven PLs, mixed sampling) vs AR PLs / USR v1.

    python bench/bench_semi.py           # Base config, 2 threads; ~3 min on an idle 2-core machine
    python bench/bench_semi.py --steps 4 --usr1_steps 2 --pl_repeats 3    # shorter

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
   ``--step_frames`` frames (default 1 + 2 x 50 frames, 2 s each: the Base model on 2 CPU
   threads needs seconds per utterance, so the batch is far smaller than the paper's
   600 / 4400 frames), all three modalities (v, a, av), student in train mode (augmentation,
   dropout), teacher PLs on the clean AV view. ``threshold=0.0`` lets every PL pass so every
   loss term does its real work. The teacher's CTC head / ``<eos>`` are biased as in 1 (CTC
   PL ~T/5 = 10 tokens, AR PL 10 tokens). One student + teacher runs both methods,
   interleaved step by step (same weights, inputs and machine load); only the unlabelled
   objective is swapped:

   * USR 2.0, p_AR = 0.5 (the config's ``USR2Objective``): ``--steps`` steps whose mode is
     the model's own mixed-sampling draw (seed 42, step k = 0, 1, ...: the step counter is
     the teacher's ``num_updates``). Reported: the mean over the drawn steps, and the
     median per mode.
   * USR v1 (``USR1Objective`` as ``--semi usr1`` builds it): AR PLs every step,
     frame-level CTC PLs with frame-wise CE.

3. **Peak memory**, per measured call: the kernel's peak-RSS counter is reset
   (``/proc/self/clear_refs`` <- 5) and read back (``VmHWM``) around the call; reported is
   the peak RSS during the call minus the RSS just before it ("extra peak": what the call
   itself needs -- activations, autograd graph, PL buffers; weights excluded), the largest
   over the repeats. Before each call glibc's ``malloc_trim(0)`` returns freed heap pages
   to the OS, so earlier calls' leftovers do not hide this call's peak. PL and training
   run in two fresh subprocesses; the training one's whole-process peak (``ru_maxrss``:
   weights, teacher copy, everything) is printed too. Without ``clear_refs`` the extra
   peaks read "n/a".

   A bench-only third PL variant, "AR greedy, cross-attention K/V cached", memoises the
   encoder memory's key/value projections in every decoder layer's source attention
   (ESPnet's incremental decoder caches layer outputs only and recomputes those
   projections at every step). It shows how much of the AR cost that recomputation is;
   its tokens are checked equal to plain AR.

Timings: median wall-clock of ``--pl_repeats`` repeats (PL; the three variants alternate)
after one warm-up call each; training steps after one warm-up step per method. CPU seconds
(all threads of the process) are printed too. The machine load average is printed at the
start and the end: on a shared machine, small decoder steps suffer most from other load
(2 OpenMP threads wait for each other at every op), so AR figures are the noisiest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_common import FPS, Measured, max_rss_mb, random_av, status_mb, token_list  # noqa: E402

PL_MODALITY = "av"


# ----------------------------------------------------------------------------- helpers
def median(xs: List[float]) -> float:
    return statistics.median(xs)


def max_or_none(xs: List[Optional[float]]) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


@torch.no_grad()
def force_realistic_pl_lengths(teacher, enc: torch.Tensor, enc_lens: torch.Tensor, tokens_per_frame: float) -> None:
    """Bias the teacher's AV CTC head (collapsed PL ~ tokens_per_frame * T) and suppress its ``<eos>``.

    See the module docstring: centre the CTC head on the batch's mean encoder frame, then
    raise the blank logit by the (1 - tokens_per_frame) quantile of the non-blank margin.
    """
    lo = teacher.ctc_head(PL_MODALITY).ctc_lo
    valid = torch.arange(enc.size(1), device=enc.device)[None, :] < enc_lens[:, None]
    frames = enc[valid]
    lo.bias.copy_(-(lo.weight @ frames.mean(dim=0)))
    logits = lo(frames)
    margin = logits[:, 1:].max(dim=-1).values - logits[:, 0]
    lo.bias[0] += torch.quantile(margin.double(), 1.0 - tokens_per_frame).float()
    teacher.decoder.output_head(PL_MODALITY).bias[teacher.eos] -= 1e4


class _MemoisedProjection(torch.nn.Module):
    """``linear(x)``, recomputed only when ``x`` is another tensor (or was modified in place)."""

    def __init__(self, linear: torch.nn.Module):
        super().__init__()
        self.linear = linear
        self._key, self._out = None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.data_ptr(), tuple(x.shape), x._version)
        if key != self._key:
            self._key, self._out = key, self.linear(x)
        return self._out


@contextmanager
def cross_attention_kv_cached(decoder):
    """Bench-only variant of AR decoding: the encoder memory's K/V projections of every
    decoder layer's source attention are computed once instead of at every step (ESPnet's
    incremental decoder caches only the layer outputs, and recomputes them each step)."""
    saved = []
    for layer in decoder.decoders:
        attn = layer.src_attn
        saved.append((attn, attn.linear_k, attn.linear_v))
        attn.linear_k, attn.linear_v = _MemoisedProjection(attn.linear_k), _MemoisedProjection(attn.linear_v)
    try:
        yield decoder
    finally:
        for attn, k, v in saved:
            attn.linear_k, attn.linear_v = k, v


def build(args, extra: Optional[List[str]] = None):
    from espnet_usr2.tasks.config import build_model_from_config

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
    rss_model = status_mb("VmRSS")
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
            att_pl = ctc_driven_teacher_forcing(
                decoder, enc, enc_lens, ctc_pl.tokens, ctc_pl.lengths, sos, eos, args.threshold, modality=PL_MODALITY
            )
        return ctc_pl, att_pl

    def ar_greedy():
        with torch.no_grad():
            return ar_greedy_pseudo_labels(
                decoder, enc, enc_lens, sos, eos, ar_conf, args.threshold, modality=PL_MODALITY, use_cache=True
            )

    def ar_greedy_cross_cached():
        with cross_attention_kv_cached(decoder):
            return ar_greedy()

    runs: Dict[str, List[Measured]] = {"ctc": [], "ar": [], "arx": []}
    calls = {"ctc": ctc_driven, "ar": ar_greedy, "arx": ar_greedy_cross_cached}
    for fn in calls.values():  # warm-up
        fn()
    for _ in range(args.pl_repeats):  # the methods alternate: the same machine load for each
        for key, fn in calls.items():
            runs[key].append(Measured(fn))
    ctc_pl, att_pl = runs["ctc"][-1].result
    ar_pl = runs["ar"][-1].result
    return {
        "enc_wall": encoded.wall,
        "enc_cpu": encoded.cpu,
        "enc_extra_mb": encoded.extra_mb,
        "ctc_len_mean": float(ctc_pl.lengths.float().mean()),
        "ctc_len_min": int(ctc_pl.lengths.min()),
        "ctc_len_max": int(ctc_pl.lengths.max()),
        "tf_positions": int(att_pl.tokens.size(1)),
        "ar_len_mean": float(ar_pl.lengths.float().mean()),
        "ar_len_max": int(ar_pl.lengths.max()),
        "ar_eos": int((ar_pl.tokens == eos).sum()),
        "arx_same": bool(torch.equal(runs["arx"][-1].result.tokens, ar_pl.tokens)),
        **{f"{k}_wall": [m.wall for m in v] for k, v in runs.items()},
        **{f"{k}_cpu": [m.cpu for m in v] for k, v in runs.items()},
        **{f"{k}_extra_mb": max_or_none([m.extra_mb for m in v]) for k, v in runs.items()},
        "rss_model_mb": rss_model,
        "max_rss_mb": max_rss_mb(),
    }


def worker_steps(args) -> Dict:
    """Forward + backward of semi-supervised steps, USR 2.0 (p_AR = 0.5) and USR v1 interleaved.

    One student + EMA teacher; the unlabelled objective is swapped between
    ``USR2Objective`` (the config's, p_AR = 0.5) and ``USR1Objective`` (as ``--semi usr1``
    would build it), so both methods run on the same weights, inputs and machine load.
    """
    from espnet_usr2.semi.mixed_sampling import AR_MODE, MixedSamplingConfig, sample_mode
    from espnet_usr2.semi.objective import USR1Objective

    model = build(args, ["--semi", "usr2", "--semi_conf", "threshold=0.0", "--semi_conf", f"p_ar={args.p_ar}"])
    objectives = {
        "usr2": model.unlabelled_objective,
        "usr1": USR1Objective(vocab_size=args.vocab, encoder_output_size=model.encoder.output_size(), threshold=0.0),
    }
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
    del enc, enc_lens
    rss_model = status_mb("VmRSS")

    mixing = MixedSamplingConfig(p_ar=args.p_ar)
    draw = [sample_mode(mixing, objectives["usr2"].seed, k) for k in range(args.steps)]

    def step(method: str, k: int):
        model.unlabelled_objective = objectives[method]
        model.teacher.num_updates.fill_(k)  # step k: the mixed-sampling draw of USR 2.0
        torch.manual_seed(args.seed + k)  # the student's augmentation
        t0 = time.perf_counter()
        loss, stats, _ = model(**batch)
        t_fwd = time.perf_counter() - t0
        loss.backward()
        model.zero_grad(set_to_none=True)
        return stats, t_fwd

    step("usr2", draw.index(AR_MODE) if AR_MODE in draw else 0)  # warm-up (AR path)
    step("usr1", 0)
    records = []
    for k in range(max(args.steps, args.usr1_steps)):
        order = ("usr2", "usr1") if k % 2 == 0 else ("usr1", "usr2")
        for method in order:
            if k >= (args.steps if method == "usr2" else args.usr1_steps):
                continue
            m = Measured(lambda method=method, k=k: step(method, k))
            stats, t_fwd = m.result
            mode = "usr1" if method == "usr1" else ("ar" if float(stats["pl_mode_ar"]) == 1.0 else "ctc")
            if method == "usr2":  # the model ran the mode of the draw
                assert mode == ("ar" if draw[k] == AR_MODE else "ctc"), (k, mode, draw[k])
            records.append(
                dict(
                    method=method,
                    step=k,
                    mode=mode,
                    wall=m.wall,
                    cpu=m.cpu,
                    fwd=t_fwd,
                    extra_mb=m.extra_mb,
                    pl_att_len=float(stats["pl_att_len"]),
                    pl_ctc_len=float(stats["pl_ctc_len"]) if "pl_ctc_len" in stats else None,
                )
            )
            print(
                f"  step {k} {method} ({mode}): {m.wall:.2f} s (forward {t_fwd:.2f} s), "
                f"extra peak {fmt_mb(m.extra_mb)}",
                file=sys.stderr,
                flush=True,
            )
    return {"records": records, "rss_model_mb": rss_model, "max_rss_mb": max_rss_mb()}


# ----------------------------------------------------------------------------- driver
def run_worker(kind: str, argv: List[str], out_dir: Path) -> Dict:
    out = out_dir / f"{kind}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--_worker", kind, "--_out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"  ({kind}: {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return json.loads(out.read_text())


def fmt_mb(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.0f} MB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "egs2/TEMPLATE/usr2/conf/train_usr2_base.yaml"))
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--seed", type=int, default=0, help="weights and inputs (the mixed-sampling seed is the config's, 42)"
    )
    p.add_argument("--tokens_per_frame", type=float, default=0.2, help="PL length / frames (AR limit T//5)")
    p.add_argument("--threshold", type=float, default=0.8, help="PL confidence threshold in the PL benchmark")
    p.add_argument("--pl_batch", type=int, default=8)
    p.add_argument("--pl_frames", type=int, default=150)
    p.add_argument("--pl_repeats", type=int, default=5)
    p.add_argument("--labelled", type=int, default=1)
    p.add_argument("--unlabelled", type=int, default=2)
    p.add_argument("--step_frames", type=int, default=50)
    p.add_argument("--steps", type=int, default=6, help="USR 2.0 steps (the mixed-sampling draw of steps 0..N-1)")
    p.add_argument("--usr1_steps", type=int, default=3)
    p.add_argument("--p_ar", type=float, default=0.5)
    p.add_argument("--skip", nargs="*", default=[], choices=("pl", "steps"))
    p.add_argument("--_worker", choices=("pl", "steps"), help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args._worker:
        torch.set_num_threads(args.threads)
        result = worker_pl(args) if args._worker == "pl" else worker_steps(args)
        Path(args._out).write_text(json.dumps(result))
        return

    print(f"start: {_load()}", file=sys.stderr, flush=True)
    t_start = time.perf_counter()
    res: Dict[str, Dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("pl", "steps"):
            if kind not in args.skip:
                print(f"running {kind} ...", file=sys.stderr, flush=True)
                res[kind] = run_worker(kind, sys.argv[1:], Path(tmp))
    report(args, res, time.perf_counter() - t_start)


def _ratio(num: Optional[float], den: Optional[float]) -> str:
    return "n/a" if num is None or den is None or den <= 0 else f"{num / den:.2f}x"


def _load() -> str:
    try:
        return "load average %.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        return "load average n/a"


def report(args, res: Dict[str, Dict], total: float) -> None:
    from espnet_usr2.tasks.config import build_model_from_config

    n_params = (
        sum(
            p.numel()
            for p in build_model_from_config(Path(args.config), token_list(args.vocab), meta=True).parameters()
        )
        / 1e6
    )
    print(
        f"model {Path(args.config).name}: {n_params:.1f} M parameters, vocab {args.vocab}, CPU "
        f"({os.cpu_count()} cores), torch {torch.__version__}, {args.threads} threads; whole run {total:.0f} s; "
        f"{_load()} at the end"
    )
    print(f"command: python bench/bench_semi.py {' '.join(sys.argv[1:])}".rstrip())
    rows = []
    if "pl" in res:
        r = res["pl"]
        ctc, ar, arx = median(r["ctc_wall"]), median(r["ar_wall"]), median(r["arx_wall"])
        print(
            f"\n## Pseudo-label generation, batch {args.pl_batch} x {args.pl_frames} frames "
            f"({args.pl_frames / FPS:.0f} s each), median of {args.pl_repeats}"
        )
        print(
            f"teacher AV encoder pass (shared by both, NOT in the PL figures): {r['enc_wall']:.2f} s wall, "
            f"{r['enc_cpu']:.2f} s CPU, extra peak {fmt_mb(r['enc_extra_mb'])}"
        )
        print(
            f"CTC PL (biased CTC head, see --help): collapsed length mean {r['ctc_len_mean']:.1f} "
            f"(min {r['ctc_len_min']}, max {r['ctc_len_max']}) tokens -> one decoder pass over "
            f"{r['tf_positions']} positions"
        )
        print(
            f"AR PL: {r['ar_len_mean']:.1f} tokens mean, max {r['ar_len_max']} (limit T//5 = "
            f"{int(args.pl_frames * args.tokens_per_frame)} steps; <eos> emitted {r['ar_eos']} times); "
            f"with cross-attention K/V cached: same tokens {r['arx_same']}"
        )
        for key, name in (("ctc", "CTC-driven"), ("ar", "AR greedy"), ("arx", "AR greedy, cross-attn K/V cached")):
            print(
                f"  {name:<34} wall (ms) {[round(x * 1e3, 1) for x in r[key + '_wall']]}, "
                f"median CPU {median(r[key + '_cpu']) * 1e3:.1f} ms, extra peak {fmt_mb(r[key + '_extra_mb'])}"
            )
        rows.append(
            (
                f"PL generation after encoding ({args.pl_batch} x {args.pl_frames} frames), median",
                f"{ctc * 1e3:.1f} ms (CTC-driven)",
                f"{ar * 1e3:.1f} ms (AR greedy, ESPnet KV cache)",
                f"**{ar / ctc:.1f}x**",
            )
        )
        rows.append(
            (
                "  same, AR with cross-attention K/V also cached (bench-only variant)",
                f"{ctc * 1e3:.1f} ms",
                f"{arx * 1e3:.1f} ms",
                f"{arx / ctc:.1f}x",
            )
        )
        rows.append(
            (
                "PL step extra peak RSS",
                fmt_mb(r["ctc_extra_mb"]),
                fmt_mb(r["ar_extra_mb"]),
                _ratio(r["ar_extra_mb"], r["ctc_extra_mb"]),
            )
        )
    if "steps" in res:
        recs = res["steps"]["records"]
        u2s = [x for x in recs if x["method"] == "usr2"]
        u1s = [x for x in recs if x["method"] == "usr1"]
        print(
            f"\n## Training step (forward + backward, no optimiser step), {args.labelled} labelled + "
            f"{args.unlabelled} unlabelled x {args.step_frames} frames ({args.step_frames / FPS:.0f} s each), "
            f"modalities v, a, av; USR 2.0 and USR v1 interleaved"
        )
        print(
            f"USR 2.0 (p_AR = {args.p_ar}), mixed-sampling draw of steps 0..{len(u2s) - 1}: "
            f"{' '.join(x['mode'] for x in u2s)}; per step (s): {[round(x['wall'], 2) for x in u2s]}"
        )
        per_mode = {}
        for m in ("ctc", "ar"):
            xs = [x for x in u2s if x["mode"] == m]
            if xs:
                per_mode[m] = median([x["wall"] for x in xs])
                print(
                    f"  {m:>3} mode: {len(xs)} steps, median {per_mode[m]:.2f} s wall "
                    f"({median([x['cpu'] for x in xs]):.2f} s CPU), forward {median([x['fwd'] for x in xs]):.2f} s, "
                    f"PL lengths ctc {median([x['pl_ctc_len'] for x in xs]):.1f} / att "
                    f"{median([x['pl_att_len'] for x in xs]):.1f}, extra peak "
                    f"{fmt_mb(max_or_none([x['extra_mb'] for x in xs]))}"
                )
        u2 = statistics.mean(x["wall"] for x in u2s)
        if len(per_mode) == 2:
            print(
                f"  expectation p_AR * AR + (1 - p_AR) * CTC-driven (medians): "
                f"{args.p_ar * per_mode['ar'] + (1 - args.p_ar) * per_mode['ctc']:.2f} s"
            )
        u1 = median([x["wall"] for x in u1s])
        print(
            f"USR v1: per step (s): {[round(x['wall'], 2) for x in u1s]}, median {u1:.2f} s wall "
            f"({median([x['cpu'] for x in u1s]):.2f} s CPU), forward {median([x['fwd'] for x in u1s]):.2f} s, "
            f"AR PL length {median([x['pl_att_len'] for x in u1s]):.1f}, extra peak "
            f"{fmt_mb(max_or_none([x['extra_mb'] for x in u1s]))}"
        )
        print(
            f"training worker: RSS after building student + teacher {res['steps']['rss_model_mb']:.0f} MB, "
            f"whole-process peak {res['steps']['max_rss_mb']:.0f} MB"
        )
        u1_mean = statistics.mean(x["wall"] for x in u1s)
        rows.append(
            (
                f"Training step, USR 2.0 p_AR = {args.p_ar} (mean of its {len(u2s)} drawn steps) vs USR v1 "
                f"(mean of {len(u1s)})",
                f"{u2:.2f} s",
                f"{u1_mean:.2f} s",
                f"**{u1_mean / u2:.2f}x**",
            )
        )
        for m, name in (
            ("ctc", "  USR 2.0 CTC-driven-mode steps vs USR v1 (medians)"),
            ("ar", "  USR 2.0 AR-mode steps vs USR v1 (medians)"),
        ):
            if m in per_mode:
                rows.append((name, f"{per_mode[m]:.2f} s", f"{u1:.2f} s", f"{u1 / per_mode[m]:.2f}x"))
        e2, e1 = max_or_none([x["extra_mb"] for x in u2s]), max_or_none([x["extra_mb"] for x in u1s])
        rows.append(("Training step extra peak RSS (max over steps)", fmt_mb(e2), fmt_mb(e1), _ratio(e1, e2)))
    print("\n| measurement | USR 2.0 | AR greedy / USR v1 | AR / USR v1 ÷ USR 2.0 |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
