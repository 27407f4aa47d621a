"""Where one semi-supervised training step would wait for the GPU: every call that reads a
tensor's value on the host, by the line of espnet_usr2 that made it (issue 23, item 3).

On a GPU each of these stops the host until the device has caught up (the H200 profile in
bench/results/h200_2026-11-29/ counts ~230 stream synchronisations a Base step); on the CPU
they cost nothing, so the step runs here on the tiny config and the calls are counted, not
timed:

* Python level (a ``TorchFunctionMode``): ``item``, ``tolist``, ``bool()`` / ``int()`` /
  ``float()`` of a tensor, ``cpu``, ``numpy``, ``nonzero``;
* ATen level (a ``TorchDispatchMode``): ``_local_scalar_dense`` (what those become),
  ``nonzero``, ``masked_select``, ``unique``, ``repeat_interleave`` and indexing with a
  boolean mask -- the ones whose output shape depends on the data, which the Python-level
  count misses when ESPnet's code makes them.

A CPU tensor read on the host (a crop offset drawn from the CPU generator) is counted too:
the report names the line, and the reader decides.

    python bench/count_host_syncs.py                 # USR 2.0, CTC-driven mode (p_AR 0)
    python bench/count_host_syncs.py --p_ar 1.0      # AR mode
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
with contextlib.redirect_stdout(io.StringIO()):  # ESPnet's flash_attn notice
    from espnet_usr2.tasks.config import build_model_from_config  # noqa: E402
    from espnet_usr2.testing.host_syncs import TOKENS, count_training_step, semi_batch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "egs2/TEMPLATE/usr2/conf/train_usr2_tiny.yaml")
    parser.add_argument("--semi", default="usr2", choices=["usr2", "usr1"])
    parser.add_argument("--p_ar", default="0.0")
    args = parser.parse_args()
    torch.manual_seed(0)
    extra = ["--semi", args.semi] + (["--semi_conf", f"p_ar={args.p_ar}"] if args.semi == "usr2" else [])
    model = build_model_from_config(args.config, TOKENS, extra)
    model.ensure_teacher_initialized()
    model.train()
    batch = semi_batch()
    model(**batch)[0].backward()  # the first step initialises lazily; count a later one
    model.zero_grad()
    host, ops = count_training_step(model, batch)
    print(
        f"{args.config.name}, --semi {args.semi}"
        + (f" p_AR {args.p_ar}" if args.semi == "usr2" else "")
        + ": one step (forward, backward, EMA update), 2 labelled + 2 unlabelled clips"
    )
    for title, counter in (("host reads (Python level)", host), ("data-dependent ATen ops", ops)):
        print(f"\n{title}: {sum(counter.values())}")
        for site, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {n:4d}  {site}")


if __name__ == "__main__":
    main()
