#!/usr/bin/env python3
"""Beam search speed on CPU: the fast batched path vs ESPnet's BatchBeamSearch, same inputs,
without and with shallow fusion of an ESPnet LM.

    python bench/bench_decoding.py                      # Base config, beam 30, ctc_weight 0.1
    python bench/bench_decoding.py --num_utts 6 --modality av
    python bench/bench_decoding.py --config egs2/TEMPLATE/usr2/conf/train_usr2_tiny.yaml \
        --lm_config egs2/TEMPLATE/usr2/conf/train_lm_tiny.yaml --vocab 100 --num_utts 2 --beam_size 5

Model: ``train_usr2_base.yaml`` (86 M parameters) with random weights and a 1000-token list.
Inputs: random audio/video of realistic lengths (75-150 frames at 25 fps, 3-6 s); the
encoder runs once and both searches decode the same encoder output (encoder time is shown
separately: it is the same for both).

Hypothesis length: a randomly initialised model has no trained ``<eos>``, so left alone its
search would stop at a random length. ``--maxlenratio 0.2`` (0.2 tokens per frame = 5 tokens
per second, about the rate of LRS3 transcripts in 1000 BPE units) bounds it: with a
1000-token vocabulary the beam never runs empty, so both searches run exactly
``int(0.2 * frames)`` steps (15-30 tokens) -- the work a trained model does to emit a
sentence of that length. End detection is therefore off in this benchmark; it is exercised
by the tests.

LM: ``--lm_config`` (default ``conf/train_lm_transformer.yaml``, 12 layers) with random
weights and the same token list, fused with ``--lm_weight``; the fast path scores all
utterances x hypotheses with one ``batch_score`` call per step, ESPnet's one utterance's
hypotheses per call.

Reported per implementation, without and with the LM: search seconds per utterance,
real-time factor (search time / input duration) and whether the 1-best of every utterance
is identical.
Also reported: the process's peak RSS while encoding (one utterance at a time) and what
the encoder pass adds to the RSS of the loaded model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_common import FPS, SAMPLES_PER_FRAME, Measured, random_av, token_list, write_lm_run_config  # noqa: E402

from espnet_usr2.decode.espnet_beam import espnet_beam_search  # noqa: E402
from espnet_usr2.decode.fast_beam import fast_beam_search  # noqa: E402
from espnet_usr2.decode.hyps import DecodeOptions  # noqa: E402
from espnet_usr2.tasks.config import build_model_from_config  # noqa: E402
from espnet_usr2.utils.espnet_lm import load_lm  # noqa: E402


def lengths_for(n: int, lo: int = 75, hi: int = 150) -> List[int]:
    """``n`` lengths spread evenly over [lo, hi] frames."""
    return [lo] if n == 1 else [round(lo + (hi - lo) * i / (n - 1)) for i in range(n)]


def random_lm(lm_config: Path, tokens: List[str]) -> torch.nn.Module:
    """An ESPnet LM of ``lm_config`` with random weights, built as decoding loads one."""
    with tempfile.TemporaryDirectory() as tmp:
        return load_lm(write_lm_run_config(lm_config, tokens, Path(tmp)), None, tokens)


def time_searches(
    model,
    enc,
    enc_lens,
    modality: str,
    opts: DecodeOptions,
    sos: int,
    eos: int,
    vocab: int,
    lm: Optional[torch.nn.Module],
):
    """(fast seconds, ESPnet seconds, per-utterance 1-best agreement, 1-best lengths)."""
    t0 = time.perf_counter()
    fast = fast_beam_search(model, enc, enc_lens, modality, opts, sos, eos, lm=lm)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = espnet_beam_search(model, enc, enc_lens, modality, opts, sos, eos, vocab, lm=lm)
    t_ref = time.perf_counter() - t0
    return t_fast, t_ref, [f[0].yseq == r[0].yseq for f, r in zip(fast, ref)], [len(f[0].yseq) - 2 for f in fast]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "egs2/TEMPLATE/usr2/conf/train_usr2_base.yaml"))
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--num_utts", type=int, default=4)
    parser.add_argument(
        "--modality",
        default="v",
        choices=("v", "a", "av"),
        help="the encoder stream the searches decode; all three fit on a small machine: "
        "with the Base config a 6 s utterance peaks at about 1.2 GB of RSS in each "
        "(measured on CPU: about 1.1 GB is the loaded model, the encoder pass adds "
        "0.1-0.2 GB; printed below the model line)",
    )
    parser.add_argument("--beam_size", type=int, default=30)
    parser.add_argument("--ctc_weight", type=float, default=0.1)
    parser.add_argument("--maxlenratio", type=float, default=0.2)
    parser.add_argument(
        "--lm_config",
        default=str(REPO / "egs2/TEMPLATE/usr2/conf/train_lm_transformer.yaml"),
        help="ESPnet LM config of the fused LM (random weights)",
    )
    parser.add_argument("--lm_weight", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tokens = token_list(args.vocab)
    model = build_model_from_config(Path(args.config), tokens).eval()
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    inputs = random_av(lengths_for(args.num_utts), args.seed)
    speech, video, lens = inputs["speech"], inputs["video"], inputs["video_lengths"]
    n, T = len(lens), int(lens.max())
    audio_s = float(lens.sum()) / FPS

    t0 = time.perf_counter()
    enc = None
    peaks: List[Measured] = []
    with torch.no_grad():  # one utterance at a time: bounded memory, no padding effects
        for i, t in enumerate(lens.tolist()):
            peaks.append(
                Measured(
                    lambda i=i, t=t: model.encode(
                        speech[i : i + 1, : t * SAMPLES_PER_FRAME],
                        lens[i : i + 1] * SAMPLES_PER_FRAME,
                        video[i : i + 1, :t],
                        lens[i : i + 1],
                        modalities=[args.modality],
                        augment=False,
                    )[args.modality]
                )
            )
            out, _ = peaks[-1].result
            if enc is None:
                enc = torch.zeros(n, T, out.size(-1))
            enc[i, :t] = out[0]
    enc_lens = lens
    t_enc = time.perf_counter() - t0

    opts = DecodeOptions(beam_size=args.beam_size, ctc_weight=args.ctc_weight, maxlenratio=args.maxlenratio)
    sos = eos = len(tokens) - 1
    lm = random_lm(Path(args.lm_config), tokens)
    lm_params = sum(p.numel() for p in lm.parameters()) / 1e6
    runs = {"no LM": time_searches(model, enc, enc_lens, args.modality, opts, sos, eos, len(tokens), None)}
    lm_opts = DecodeOptions(**{**vars(opts), "lm_weight": args.lm_weight})
    runs[f"LM x {args.lm_weight}"] = time_searches(
        model, enc, enc_lens, args.modality, lm_opts, sos, eos, len(tokens), lm
    )
    hyp_lens = runs["no LM"][3]
    print(
        f"model {Path(args.config).name}: {n_params:.1f} M parameters, vocab {len(tokens)}, "
        f"modality {args.modality}, beam {opts.beam_size}, ctc_weight {opts.ctc_weight}, "
        f"maxlenratio {opts.maxlenratio}, torch threads {torch.get_num_threads()}"
    )
    print(
        f"{n} utterances, frames {lens.tolist()} ({audio_s:.1f} s of input), "
        f"1-best lengths {hyp_lens} tokens; encoder (shared, not in the figures below): {t_enc:.2f} s"
    )
    if peaks[-1].peak_mb is not None:
        print(
            f"encoder pass of the longest utterance ({T} frames): process peak RSS {peaks[-1].peak_mb:.0f} MB, "
            f"{peaks[-1].extra_mb:.0f} MB above the loaded model"
        )
    print(f"LM {Path(args.lm_config).name}: {lm_params:.2f} M parameters ({type(lm).__name__}), random weights")
    print(f"{'search':<36}{'s / utt':>10}{'RTF':>9}{'speed-up':>10}")
    for name, (t_fast, t_ref, agree, _) in runs.items():
        print(f"{f'ESPnet BatchBeamSearch, {name}':<36}{t_ref / n:>10.3f}{t_ref / audio_s:>9.3f}{1.0:>9.1f}x")
        print(
            f"{f'fast (batched B x beam), {name}':<36}{t_fast / n:>10.3f}{t_fast / audio_s:>9.3f}"
            f"{t_ref / t_fast:>9.1f}x"
        )
        print(
            f"  identical 1-best ({name}): {sum(agree)}/{n} utterances"
            + ("" if all(agree) else f" (differ: {[i for i, a in enumerate(agree) if not a]})")
        )


if __name__ == "__main__":
    main()
