#!/usr/bin/env python3
"""GPU check: one prepared run of the three speed figures the paper's claims rest on.

    bash bench/gpu_check.sh exp/gpu_check          # on the GPU machine: Base, bf16, <= 8 min
    python bench/bench_gpu_check.py --device cpu --quick \
        --config egs2/TEMPLATE/usr2/conf/train_usr2_tiny.yaml --out_dir /tmp/gpu_check   # seconds

**GPU check** (issue 12 point 5): on a machine with the GPU, ``bash bench/gpu_check.sh OUT_DIR``
runs this script with the Base config under ``timeout`` (at most 8 minutes in all; not yet run on
a GPU), prints the environment (torch, CUDA, cuDNN, device name, nvidia-smi;
also in ``OUT_DIR/environment.txt``), the log (``OUT_DIR/log.txt``) and the three tables
below. The device tool's H200 image has torch 2.11 but not ESPnet: carry wheels of what it
lacks (measured as the distributions this script imports that its package list does not
name): espnet==202511 typeguard humanfriendly kaldiio librosa soundfile torch-complex
nltk inflect Unidecode jaconv jamo defusedxml cffi more-itertools jaraco.functools
espnet_tts_frontend espnet-g2p-en (this repository itself goes on ``PYTHONPATH``), e.g.
``pip install --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site bash
bench/gpu_check.sh $OUT/gpu_check``, and put the figures of ``gpu_check.md`` in the README.

Model: ``--config`` (default ``train_usr2_base.yaml``, 86 M parameters) with random weights,
``--vocab`` tokens, ``--semi usr2`` (confidence threshold 0, so every pseudo-label (PL) term
does its work), on synthetic audio / video. Every figure is measured in this run.

1. **Training step** (forward + backward + AdamW step + EMA teacher update) on ``--batch``
   labelled + ``--batch`` unlabelled utterances of ``--frames`` frames (default 16 + 16 x 150, issue 23's setting;
   6 s each), modalities v, a, av, for three unlabelled objectives on the same weights:
   USR 2.0 CTC-driven mode (p_AR = 0, eq. 5), USR 2.0 AR mode (p_AR = 1, eq. 6) and USR v1
   (``--semi usr1``: AR PLs, frame-level CTC PLs). The teacher's CTC head is biased so its
   collapsed PLs have ~T/5 tokens and its ``<eos>`` is suppressed so AR PLs run to T//5
   (``bench_semi.force_realistic_pl_lengths``: a random model otherwise emits 1-token PLs).
   On CUDA the step runs under bf16 autocast, on CPU in fp32 (the JSON says which).
   Reported per mode: median step time of ``--steps`` steps after one warm-up step (the
   one whose FLOPs are counted; ``torch.cuda.synchronize`` around each on the GPU), video
   frames per second, peak memory (CUDA: ``torch.cuda.max_memory_allocated`` over the mode's steps; CPU: the
   process's peak RSS during them, ``VmHWM`` reset per mode, or ``resource``'s
   whole-process ``ru_maxrss`` where that reset is unavailable -- the JSON says which)
   and model FLOPs utilisation (MFU): FLOPs of one step counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward, teacher PLs
   included), / step time / the device's peak dense bf16 FLOP/s (a table of known GPUs,
   ``--peak_flops`` overrides; on CPU "n/a" unless ``--peak_flops`` is given).
2. **PL generation**, the paper's central speed claim: on the teacher's AV encoding of the
   unlabelled half of the batch (shared, timed separately), CTC-driven PLs (greedy CTC +
   ONE parallel decoder pass, eqs. 3-4) vs AR greedy PLs (one decoder step per token, key /
   value cache), median of ``--steps`` alternating repeats, and their ratio.
3. **Decoding real-time factor** at beam ``--beam`` (40, the released decoding): the fast
   batched beam search vs ESPnet's beam search on ``--decode_utts`` utterances of 75-150
   frames (``bench_decoding.time_searches``: same encoder output, same options, ctc_weight
   0.1, ``maxlenratio`` 0.2 so both run T/5 steps), fp32; RTF = search time / input
   duration, the ratio and whether the 1-best agree.

4. **Layout** (``--channels_last``): the video front-end with and without channels-last on
   the batch, the largest output and stem-gradient differences.
5. **Default vs optimised path** (``--compare_paths``, on in ``gpu_check.sh``; issue 23
   point 6): per mode, two fresh models from the same seed train ``--path_steps`` (20) steps
   on the same batch, with each step's augmentation and dropout drawn from the same seed:
   the default path (no compilation, default layout, cuDNN heuristics, PyTorch's default
   foreach AdamW -- the 2026-11-29 H200 check's setting; statistics read every step, as
   ESPnet's reporter reads them) and the optimised one (``--compile true`` layers,
   channels-last video front-end, ``cudnn.benchmark``, fused AdamW, statistics read once
   per log interval). A step is what ESPnet's loop does: forward, statistics to a reporter,
   backward, gradient clipping (3.0) and its finiteness check, AdamW, EMA update.
   Reported: median step time from step 6, the speed-up, MFU (the FLOPs of section 1),
   peak memory, the first (compiling) step's time, the largest relative loss
   difference and the losses step by step. The compiled path draws its random numbers as
   eager mode does (inductor's ``fallback_random``), so the losses differ by arithmetic only.

Writes ``<out_dir>/gpu_check.json`` (every figure, the environment, the options) and
``<out_dir>/gpu_check.md`` (the same as tables), and prints the tables.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from unittest import mock

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import FPS, Measured, cuda_synchronize, max_rss_mb, peak_bf16_flops, random_av, token_list  # noqa: E402
from bench_decoding import lengths_for, time_searches  # noqa: E402
from bench_semi import PL_MODALITY, force_realistic_pl_lengths  # noqa: E402

MODES = {"usr2_ctc": "USR 2.0 CTC-driven (p_AR 0)", "usr2_ar": "USR 2.0 AR mode (p_AR 1)", "usr1": "USR v1"}
TOKENS_PER_FRAME = 0.2  # PL / hypothesis length per frame: USR's AR limit T // 5, ~LRS3's BPE token rate
FULL = dict(batch=16, frames=150, steps=10, beam=40, decode_utts=4, vocab=1000, decode_frames=(75, 150))
QUICK = dict(batch=1, frames=25, steps=1, beam=4, decode_utts=2, vocab=100, decode_frames=(20, 30))


# ----------------------------------------------------------------------------- options
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "egs2/TEMPLATE/usr2/conf/train_usr2_base.yaml"))
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--out_dir", required=True, help="where gpu_check.json and gpu_check.md go")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke run); explicit options win")
    p.add_argument("--batch", type=int, help=f"labelled and unlabelled utterances each ({FULL['batch']})")
    p.add_argument("--frames", type=int, help=f"frames per training utterance, 25 per second ({FULL['frames']})")
    p.add_argument("--steps", type=int, help=f"timed steps per mode, and PL repeats ({FULL['steps']})")
    p.add_argument("--beam", type=int, help=f"beam size of the decoding check ({FULL['beam']})")
    p.add_argument("--decode_utts", type=int, help=f"utterances decoded ({FULL['decode_utts']})")
    p.add_argument("--decode_modality", default="v", choices=("v", "a", "av"))
    p.add_argument("--vocab", type=int, help=f"token list size ({FULL['vocab']})")
    p.add_argument(
        "--peak_flops",
        type=float,
        help="the device's peak FLOP/s for MFU (default: known GPUs' dense bf16 peak; none on CPU)",
    )
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate of the training steps")
    p.add_argument(
        "--threads",
        type=int,
        help="torch intra-op CPU threads (default: torch's; on a busy "
        "machine 1 avoids OpenMP threads waiting for each other)",
    )
    p.add_argument(
        "--channels_last",
        action="store_true",
        help="video front-end on channels-last tensors (video_frontend_conf channels_last: true)",
    )
    p.add_argument(
        "--cudnn_benchmark",
        action="store_true",
        help="let cuDNN time its convolution algorithms (ESPnet's --cudnn_benchmark true)",
    )
    p.add_argument(
        "--compare_paths",
        action="store_true",
        help="also run the default and the optimised training path side by side (section 5)",
    )
    p.add_argument("--path_steps", type=int, default=20, help="steps per mode and path of --compare_paths (20)")
    p.add_argument(
        "--path_modes",
        nargs="+",
        default=list(MODES),
        choices=list(MODES),
        help="the modes --compare_paths runs (all three)",
    )
    p.add_argument(
        "--compile_backend",
        default="inductor",
        help="torch.compile backend of the optimised path (inductor; aot_eager for a quick CPU check)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key in ("batch", "frames", "steps", "beam", "decode_utts", "path_steps"):
        if getattr(args, key) < 1:
            p.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    if args.vocab < 4:
        p.error(f"--vocab must be >= 4 (blank, unk, a token, sos/eos), got {args.vocab}")
    if args.frames < 5:
        p.error(f"--frames must be >= 5 (PLs have frames // 5 tokens), got {args.frames}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False); use --device cpu")
    return args


def environment(device: torch.device) -> Dict[str, object]:
    """What the figures were measured on."""
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            device_name=props.name,
            device_memory_gb=round(props.total_memory / 2**30, 1),
            bf16=torch.cuda.is_bf16_supported(),
        )
    else:
        env.update(cuda=torch.version.cuda, device_name=platform.processor() or platform.machine())
    return env


def autocast(device: torch.device):
    """bf16 autocast on CUDA (the paper trains in bf16), plain fp32 on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def timed(fn: Callable[[], object], device: torch.device) -> Tuple[object, float]:
    """(result, wall seconds) of ``fn`` with the device's queued work included."""
    cuda_synchronize(device)
    t0 = time.perf_counter()
    result = fn()
    cuda_synchronize(device)
    return result, time.perf_counter() - t0


# ----------------------------------------------------------------------------- model and batch
def build_model(args, device: torch.device):
    """Student + EMA teacher (``--semi usr2``, p_AR 0, threshold 0) and the three unlabelled objectives."""
    from espnet_usr2.semi.objective import USR1Objective, USR2Objective
    from espnet_usr2.tasks.config import build_model_from_config

    torch.manual_seed(args.seed)
    model = build_model_from_config(
        Path(args.config),
        token_list(args.vocab),
        [
            "--semi",
            "usr2",
            "--semi_conf",
            "threshold=0.0",
            "--semi_conf",
            "p_ar=0.0",
            "--video_frontend_conf",
            f"channels_last={args.channels_last}",
        ],
    )
    if model.video_frontend.channels_last != args.channels_last:
        raise RuntimeError("--channels_last did not reach the video front-end")
    objectives = {
        "usr2_ctc": model.unlabelled_objective,
        "usr2_ar": USR2Objective(
            vocab_size=args.vocab, encoder_output_size=model.encoder.output_size(), p_ar=1.0, threshold=0.0
        ),
        "usr1": USR1Objective(vocab_size=args.vocab, encoder_output_size=model.encoder.output_size(), threshold=0.0),
    }
    for objective in objectives.values():
        objective.to(device)
    model.to(device)
    model.ensure_teacher_initialized()
    return model, objectives


def semi_batch(args, device: torch.device) -> Dict[str, torch.Tensor]:
    """``--batch`` labelled (random T/5-token targets) + ``--batch`` unlabelled utterances of ``--frames``."""
    n = args.batch
    batch = random_av([args.frames] * (2 * n), args.seed + 1)
    g = torch.Generator().manual_seed(args.seed + 2)
    n_tokens = max(1, int(args.frames * TOKENS_PER_FRAME))
    text = torch.randint(2, args.vocab - 2, (2 * n, n_tokens), generator=g)
    text[n:] = -1
    batch.update(
        text=text,
        text_lengths=torch.tensor([n_tokens] * n + [0] * n),
        labelled=torch.tensor([1] * n + [0] * n).unsqueeze(1),
    )
    return {k: v.to(device) for k, v in batch.items()}


def unlabelled_part(batch: Dict[str, torch.Tensor], n_labelled: int) -> Dict[str, torch.Tensor]:
    return {k: v[n_labelled:] for k, v in batch.items() if k.startswith(("speech", "video"))}


def teacher_encoding(teacher, inputs: Dict[str, torch.Tensor], device: torch.device):
    """The teacher's clean AV encoding of ``inputs`` (the view its PLs come from)."""
    with torch.no_grad(), autocast(device):
        return teacher.encode(**inputs, modalities=[PL_MODALITY], augment=False)[PL_MODALITY]


# ----------------------------------------------------------------------------- 1. training step
def peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def prepare_training(args, device: torch.device, model, batch) -> torch.optim.Optimizer:
    """Realistic PL lengths from the teacher's encoding of the unlabelled half of ``batch``
    (see the module docstring), train mode, and the AdamW optimiser of the timed steps."""
    teacher = model.teacher.model
    enc, enc_lens = teacher_encoding(teacher, unlabelled_part(batch, args.batch), device)
    force_realistic_pl_lengths(teacher, enc.float(), enc_lens, TOKENS_PER_FRAME)
    del enc, enc_lens
    model.train()
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)


def train_section(args, device: torch.device, model, objectives, batch) -> Dict[str, Dict]:
    """Per mode: median step time, frames/s, peak memory and MFU (see the module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    optimizer = prepare_training(args, device, model, batch)
    peak = (
        args.peak_flops
        if args.peak_flops
        else (peak_bf16_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None)
    )
    video_frames = int(batch["video_lengths"].sum())

    def step() -> Dict[str, torch.Tensor]:
        with autocast(device):
            loss, stats, _ = model(**batch)
        loss.backward()
        optimizer.step()
        model.update_teacher()  # what USR2Trainer does after every optimiser step
        model.zero_grad(set_to_none=True)
        return stats

    results = {}
    for mode, objective in objectives.items():
        model.unlabelled_objective = objective
        counter = FlopCounterMode(display=False)
        with counter:  # also the warm-up step (kernels, allocator, optimiser state): not timed
            step()
        flops = counter.get_total_flops()
        peak_memory_reset(device)
        times, cpu_peaks, modes_run, pl_lens = [], [], [], []
        for _ in range(args.steps):
            measured = Measured(lambda: timed(step, device))
            stats, seconds = measured.result
            times.append(seconds)
            cpu_peaks.append(measured.peak_mb)
            modes_run.append(float(stats["pl_mode_ar"]) if "pl_mode_ar" in stats else None)  # USR v1: none
            pl_lens.append(float(stats["pl_att_len"]))
        expected_ar = {"usr2_ctc": 0.0, "usr2_ar": 1.0}.get(mode)
        if any(m != expected_ar for m in modes_run):
            raise RuntimeError(f"{mode}: the objective ran pl_mode_ar {modes_run}, expected {expected_ar}")
        seconds = statistics.median(times)
        memory_mb, memory_kind = step_peak_memory(device, cpu_peaks)
        results[mode] = {
            "name": MODES[mode],
            "step_s": seconds,
            "step_times_s": times,
            "video_frames_per_s": video_frames / seconds,
            "peak_memory_mb": memory_mb,
            "memory_kind": memory_kind,
            "flops_per_step": flops,
            "achieved_flops_per_s": flops / seconds,
            "mfu": flops / seconds / peak if peak else None,
            "pl_att_len": statistics.median(pl_lens),
        }
    model.unlabelled_objective = objectives["usr2_ctc"]
    return {
        "modes": results,
        "peak_flops": peak,
        "video_frames_per_step": video_frames,
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "step": "forward + backward + AdamW step + EMA teacher update",
    }


def step_peak_memory(device: torch.device, cpu_peaks: List[Optional[float]]) -> Tuple[float, str]:
    """(MB, what it is) of the mode's steps."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    known = [x for x in cpu_peaks if x is not None]
    if known:
        return max(known), "process peak RSS during the steps (VmHWM, reset per mode)"
    return max_rss_mb(), "process peak RSS so far (resource ru_maxrss)"


# ----------------------------------------------------------------------------- 2. PL generation
def pl_section(args, device: torch.device, model, batch) -> Dict[str, object]:
    """CTC-driven vs AR greedy PL generation after one shared teacher encoding."""
    from espnet_usr2.semi.ar_pseudo_labels import ARDecodingConfig, ar_greedy_pseudo_labels
    from espnet_usr2.semi.confidence import ConfidenceConfig
    from espnet_usr2.semi.ctc_pseudo_labels import ctc_pseudo_labels
    from espnet_usr2.semi.teacher_forcing import ctc_driven_teacher_forcing

    teacher = model.teacher.model
    (enc, enc_lens), t_enc = timed(
        lambda: teacher_encoding(teacher, unlabelled_part(batch, args.batch), device), device
    )
    force_realistic_pl_lengths(teacher, enc.float(), enc_lens, TOKENS_PER_FRAME)
    head, decoder, sos, eos = teacher.ctc_head(PL_MODALITY), teacher.decoder, teacher.sos, teacher.eos
    threshold = model.unlabelled_objective.threshold

    def ctc_driven():
        with torch.no_grad(), autocast(device):
            ctc_pl = ctc_pseudo_labels(head.log_softmax(enc).float(), enc_lens, ConfidenceConfig(threshold=threshold))
            att = ctc_driven_teacher_forcing(
                decoder, enc, enc_lens, ctc_pl.tokens, ctc_pl.lengths, sos, eos, threshold, modality=PL_MODALITY
            )
        return int(att.tokens.size(1))

    ar_limit = ARDecodingConfig(max_len_ratio=TOKENS_PER_FRAME)  # T // 5 steps, USR's

    def ar_greedy():
        with torch.no_grad(), autocast(device):
            ar = ar_greedy_pseudo_labels(
                decoder, enc, enc_lens, sos, eos, ar_limit, threshold, modality=PL_MODALITY, use_cache=True
            )
        return int(ar.tokens.size(1))

    calls = {"ctc_driven": ctc_driven, "ar_greedy": ar_greedy}
    for fn in calls.values():  # warm-up
        fn()
    runs: Dict[str, List[float]] = {k: [] for k in calls}
    positions = {}
    for _ in range(args.steps):  # alternate: the same machine state for both
        for key, fn in calls.items():
            positions[key], seconds = timed(fn, device)
            runs[key].append(seconds)
    ctc, ar = statistics.median(runs["ctc_driven"]), statistics.median(runs["ar_greedy"])
    return {
        "utterances": args.batch,
        "frames": args.frames,
        "teacher_encoder_s": t_enc,
        "ctc_driven_s": ctc,
        "ar_greedy_s": ar,
        "ar_over_ctc": ar / ctc,
        "ctc_driven_decoder_positions": positions["ctc_driven"],
        "ar_greedy_steps": positions["ar_greedy"],
        "repeats_s": runs,
    }


# ----------------------------------------------------------------------------- 3. decoding RTF
def decode_section(args, device: torch.device, model) -> Dict[str, object]:
    """Fast batched beam search vs ESPnet's, same encoder output, fp32."""
    from espnet_usr2.decode.hyps import DecodeOptions

    net = model.teacher.model
    inputs = {
        k: v.to(device) for k, v in random_av(lengths_for(args.decode_utts, *args.decode_frames), args.seed + 3).items()
    }
    with torch.no_grad():
        enc, enc_lens = net.encode(**inputs, modalities=[args.decode_modality], augment=False)[args.decode_modality]
    opts = DecodeOptions(beam_size=args.beam, ctc_weight=0.1, maxlenratio=TOKENS_PER_FRAME)
    sos = eos = args.vocab - 1
    with torch.no_grad():
        time_searches(net, enc[:1], enc_lens[:1], args.decode_modality, opts, sos, eos, args.vocab, None)  # warm-up
        cuda_synchronize(device)
        t_fast, t_ref, agree, hyp_lens = time_searches(
            net, enc, enc_lens, args.decode_modality, opts, sos, eos, args.vocab, None
        )
    audio_s = float(enc_lens.sum()) / FPS
    return {
        "utterances": args.decode_utts,
        "frames": enc_lens.tolist(),
        "input_s": audio_s,
        "beam": args.beam,
        "modality": args.decode_modality,
        "precision": "fp32",
        "fast_s": t_fast,
        "espnet_s": t_ref,
        "rtf_fast": t_fast / audio_s,
        "rtf_espnet": t_ref / audio_s,
        "espnet_over_fast": t_ref / t_fast,
        "identical_1best": sum(agree),
        "hyp_lengths": hyp_lens,
    }


# ----------------------------------------------------------------------------- report
def fmt(x: Optional[float], spec: str = ".3f", unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{unit}"


# ----------------------------------------------------------------------------- 4. layout check
def layout_section(args, device: torch.device, model, batch) -> Dict[str, float]:
    """With --channels_last: the video front-end's output and its stem's gradient on this
    batch with and without the channels-last layout (same weights), the largest differences."""
    frontend = model.video_frontend
    outputs = {}
    for channels_last in (False, True):
        frontend.channels_last = channels_last
        frontend.zero_grad(set_to_none=True)
        with autocast(device):
            features, _ = frontend(batch["video"], batch["video_lengths"])
        features.float().square().mean().backward()
        outputs[channels_last] = (features.detach().float(), frontend.stem[0].weight.grad.detach().clone())
    frontend.channels_last = args.channels_last
    frontend.zero_grad(set_to_none=True)
    (out, grad), (out_cl, grad_cl) = outputs[False], outputs[True]
    return {
        "max_abs_output": float(out.abs().max()),
        "max_abs_output_diff": float((out_cl - out).abs().max()),
        "max_abs_stem_grad": float(grad.abs().max()),
        "max_abs_stem_grad_diff": float((grad_cl - grad).abs().max()),
        "applied": device.type == "cuda",
    }


# ----------------------------------------------------------------------------- 5. default vs optimised
GRAD_CLIP = 3.0  # the paper configs' grad_clip
PATH_STEPS_TIMED_FROM = 5  # steps before this one are warm-up in the step-time median (allocator, autotuning)


def set_channels_last(model: torch.nn.Module, on: bool) -> None:
    """The channels-last option of every video front-end (the student's and the teacher's)."""
    from espnet_usr2.model.frontends import ResNet3DVideoFrontend

    for module in model.modules():
        if isinstance(module, ResNet3DVideoFrontend):
            module.channels_last = on


def path_options(optimised: bool, device: torch.device, backend: str) -> Dict[str, object]:
    """What each path turns on. Default: what a config gets without asking (no compilation,
    default layout, cuDNN heuristics) with PyTorch's default (foreach) AdamW, as the
    2026-11-29 H200 check ran; optimised: every issue-23 option."""
    return {
        "compile": backend if optimised else None,
        "channels_last": optimised,
        "cudnn_benchmark": optimised,
        "adamw": ("fused" if device.type == "cuda" else "foreach") if optimised else "foreach (PyTorch default)",
        "deferred_stats": optimised,
    }


def run_path(args, device: torch.device, mode: str, options: Dict[str, object], batch) -> Dict[str, object]:
    """``--path_steps`` training steps of ``mode`` from the seed's weights: losses, step times,
    peak memory. Each step draws its augmentation and dropout from ``seed + step`` (the
    compiled path draws them as eager mode does: inductor's ``fallback_random``), so the
    two paths' losses differ by arithmetic only."""
    import torch._dynamo
    import torch._inductor.config as inductor_config
    from espnet2.train.reporter import Reporter

    from espnet_usr2.train.compilation import compile_for_training
    from espnet_usr2.train.deferred_stats import defer_reads

    model, objectives = build_model(args, device)
    model.unlabelled_objective = objectives[mode]
    set_channels_last(model, bool(options["channels_last"]))
    torch.backends.cudnn.benchmark = bool(options["cudnn_benchmark"])
    optimizer = prepare_training(args, device, model, batch)
    if options["adamw"] == "fused":
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, fused=True)
    if options["compile"]:
        torch._dynamo.reset()  # each mode's compilation measured from an empty cache
        compile_for_training(model, backend=str(options["compile"]))

    reporter = Reporter().start_epoch("train", 1)
    if options["deferred_stats"]:
        defer_reads(reporter)
    parameters = [p for p in model.parameters() if p.requires_grad]

    def step(k: int) -> torch.Tensor:
        """What ESPnet's training loop does per step: forward, statistics to the reporter,
        backward, gradient clipping and its finiteness check, optimiser, EMA (our hook)."""
        torch.manual_seed(args.seed + k)
        with autocast(device):
            loss, stats, weight = model(**batch)
        reporter.register({k: v for k, v in stats.items() if v is not None}, weight)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm=GRAD_CLIP)
        if torch.isfinite(grad_norm):
            reporter.register({"grad_norm": grad_norm})
            optimizer.step()
            model.update_teacher()
        model.zero_grad(set_to_none=True)
        reporter.next()
        return loss.detach()

    peak_memory_reset(device)
    losses, times = [], []
    with mock.patch.object(inductor_config, "fallback_random", True):
        for k in range(args.path_steps):
            loss, seconds = timed(functools.partial(step, k), device)
            losses.append(loss)  # read after the steps: no extra wait inside them
            times.append(seconds)
    losses = [float(x) for x in losses]
    reporter.log_message()  # the statistics are read (the deferred ones here, once)
    timed_steps = times[PATH_STEPS_TIMED_FROM:] or times[-1:]
    result = {
        "options": options,
        "losses": losses,
        "step_times_s": times,
        "step_s": statistics.median(timed_steps),
        "first_step_s": times[0],
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    return result


def paths_section(args, device: torch.device, batch, flops: Dict[str, float], peak: Optional[float]) -> Dict:
    """Per mode: the default and the optimised path from the same weights on the same batch,
    their median step time, speed-up, MFU (FLOPs of the training section), peak memory and
    the largest relative loss difference over the steps."""
    results = {}
    for mode in args.path_modes:
        paths = {
            name: run_path(args, device, mode, path_options(name == "optimised", device, args.compile_backend), batch)
            for name in ("default", "optimised")
        }
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the two paths' models are gone: their cached blocks too
        for path in paths.values():
            path["mfu"] = flops[mode] / path["step_s"] / peak if peak else None
        default, optimised = paths["default"], paths["optimised"]
        results[mode] = {
            "name": MODES[mode],
            **paths,
            "speedup": default["step_s"] / optimised["step_s"],
            "max_rel_loss_diff": max(abs(a - b) / abs(a) for a, b in zip(default["losses"], optimised["losses"])),
        }
        print(
            f"paths {mode}: default {default['step_s']:.3f} s, optimised {optimised['step_s']:.3f} s "
            f"(first step {optimised['first_step_s']:.1f} s), x{results[mode]['speedup']:.2f}, "
            f"MFU {fmt(default['mfu'], '.1%')} -> {fmt(optimised['mfu'], '.1%')}, peak MB "
            f"{fmt(default['peak_memory_mb'], '.0f')} -> {fmt(optimised['peak_memory_mb'], '.0f')}, "
            f"max rel. loss diff {results[mode]['max_rel_loss_diff']:.2e}",
            flush=True,
        )
    return {"modes": results, "steps": args.path_steps, "timed_from_step": PATH_STEPS_TIMED_FROM}


def paths_markdown(paths: Dict) -> List[str]:
    lines = [
        f"## Default vs optimised training path (same weights and batch, {paths['steps']} steps each, "
        f"median from step {paths['timed_from_step'] + 1})",
        "",
        "| mode | default step (s) | optimised step (s) | speed-up | MFU default | MFU optimised "
        "| peak MB default | peak MB optimised | max rel. loss diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in paths["modes"].values():
        d, o = m["default"], m["optimised"]
        lines.append(
            f"| {m['name']} | {d['step_s']:.3f} | {o['step_s']:.3f} | **{m['speedup']:.2f}x** | "
            f"{fmt(d['mfu'], '.1%')} | {fmt(o['mfu'], '.1%')} | {fmt(d['peak_memory_mb'], '.0f')} | "
            f"{fmt(o['peak_memory_mb'], '.0f')} | {m['max_rel_loss_diff']:.2e} |"
        )
    first = next(iter(paths["modes"].values()))
    options = first["optimised"]["options"]
    lines += [
        "",
        f"Optimised: compile {options['compile']}, channels-last {options['channels_last']}, "
        f"cudnn.benchmark {options['cudnn_benchmark']}, AdamW {options['adamw']}, statistics read "
        f"{'once per log interval' if options['deferred_stats'] else 'every step'}; first optimised step "
        f"(compilation) {first['optimised']['first_step_s']:.1f} s.",
        "",
        f"Losses of {first['name']}, step by step (default / optimised):",
        "",
        "| step | " + " | ".join(str(k + 1) for k in range(len(first["default"]["losses"]))) + " |",
        "|---|" + "---|" * len(first["default"]["losses"]),
        "| default | " + " | ".join(f"{x:.4f}" for x in first["default"]["losses"]) + " |",
        "| optimised | " + " | ".join(f"{x:.4f}" for x in first["optimised"]["losses"]) + " |",
        "",
    ]
    return lines


def markdown(result: Dict) -> str:
    env, train, pl, dec = result["environment"], result["train"], result["pl"], result["decode"]
    lines = [
        f"# GPU check: {Path(result['options']['config']).name}, {result['parameters_m']:.1f} M parameters",
        "",
        f"{env['device_name']} ({env['device']}), torch {env['torch']}, CUDA {env['cuda']}; "
        f"cudnn.benchmark {'on' if env.get('cudnn_benchmark') else 'off'}, "
        f"channels-last front-end {'on' if result['options'].get('channels_last') else 'off'}; "
        f"whole run {result['total_s']:.0f} s",
        "",
        f"## Training step ({train['step']}, {train['precision']}), "
        f"{result['options']['batch']} labelled + {result['options']['batch']} unlabelled x "
        f"{result['options']['frames']} frames, median of {result['options']['steps']}",
        "",
        "| mode | step (s) | video frames/s | peak memory (MB) | TFLOP / step | MFU |",
        "|---|---|---|---|---|---|",
    ]
    for m in train["modes"].values():
        lines.append(
            f"| {m['name']} | {m['step_s']:.3f} | {m['video_frames_per_s']:.0f} | "
            f"{m['peak_memory_mb']:.0f} | {m['flops_per_step'] / 1e12:.3f} | {fmt(m['mfu'], '.1%')} |"
        )
    kind = next(iter(train["modes"].values()))["memory_kind"]
    peak = (
        f"MFU against a peak of {train['peak_flops']:.3g} FLOP/s"
        if train["peak_flops"]
        else "MFU n/a: no peak FLOP/s known for this device (--peak_flops)"
    )
    lines += [
        "",
        f"Peak memory: {kind}. {peak}.",
        "",
        f"## Pseudo-label generation ({pl['utterances']} x {pl['frames']} frames, after the shared "
        f"teacher encoding of {pl['teacher_encoder_s'] * 1e3:.1f} ms)",
        "",
        "| CTC-driven (one decoder pass) | AR greedy | AR / CTC-driven |",
        "|---|---|---|",
        f"| {pl['ctc_driven_s'] * 1e3:.1f} ms ({pl['ctc_driven_decoder_positions']} positions) | "
        f"{pl['ar_greedy_s'] * 1e3:.1f} ms ({pl['ar_greedy_steps']} steps) | **{pl['ar_over_ctc']:.1f}x** |",
        "",
        f"## Decoding, beam {dec['beam']}, {dec['utterances']} utterances ({dec['input_s']:.1f} s of input, "
        f"modality {dec['modality']}, {dec['precision']})",
        "",
        "| search | seconds | RTF |",
        "|---|---|---|",
        f"| ESPnet beam search | {dec['espnet_s']:.3f} | {dec['rtf_espnet']:.4f} |",
        f"| fast batched beam search | {dec['fast_s']:.3f} | {dec['rtf_fast']:.4f} |",
        "",
        f"ESPnet / fast: **{dec['espnet_over_fast']:.1f}x**; identical 1-best {dec['identical_1best']}"
        f"/{dec['utterances']}.",
        "",
    ]
    if "paths" in result:
        lines += paths_markdown(result["paths"])
    if "layout" in result:
        lay = result["layout"]
        lines += [
            "## Channels-last video front-end vs the default layout (same weights, this batch)",
            "",
            f"max |output difference| {lay['max_abs_output_diff']:.3g} (max |output| {lay['max_abs_output']:.3g}); "
            f"max |stem gradient difference| {lay['max_abs_stem_grad_diff']:.3g} (max {lay['max_abs_stem_grad']:.3g})"
            + ("" if lay["applied"] else "; not applied on CPU (the front-end ignores the option there)"),
            "",
        ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    """Run the three checks; write and return the summary."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device(args.device)
    t_start = time.perf_counter()
    env = environment(device)
    print("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    model, objectives = build_model(args, device)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    batch = semi_batch(args, device)
    result = {"environment": env, "options": vars(args), "parameters_m": n_params}
    sections = [
        ("train", lambda: train_section(args, device, model, objectives, batch)),
        ("pl", lambda: pl_section(args, device, model, batch)),
        ("decode", lambda: decode_section(args, device, model)),
    ]
    if args.compare_paths:
        sections.append(
            (
                "paths",
                lambda: paths_section(
                    args,
                    device,
                    batch,
                    {m: r["flops_per_step"] for m, r in result["train"]["modes"].items()},
                    result["train"]["peak_flops"],
                ),
            )
        )
    if args.channels_last:
        sections.append(("layout", lambda: layout_section(args, device, model, batch)))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, section in sections:
        t0 = time.perf_counter()
        result[name] = section()
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
        result["total_s"] = time.perf_counter() - t_start
        # after every section: a run stopped by its time limit keeps what it measured
        (out_dir / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    report = markdown(result)
    (out_dir / "gpu_check.md").write_text(report)
    print(report)
    return result


if __name__ == "__main__":
    main()
