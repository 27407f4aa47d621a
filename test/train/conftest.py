"""Fixtures of the training tests: a run interrupted mid-epoch and resumed (resume tests), a free TCP
port and video shape files (DDP tests)."""

import socket
import subprocess
from pathlib import Path
from typing import Dict, Sequence

import pytest
import torch

from espnet_usr2.data.roi_io import load_roi


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the DDP rendezvous of spawned ranks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def write_video_shapes():
    """``write_video_shapes(data_dir)`` writes ``data_dir/video_shape`` (uid T,H,W) from video.scp."""

    def write(data_dir: Path) -> Path:
        lines = []
        for line in (data_dir / "video.scp").read_text().splitlines():
            uid, path = line.split(maxsplit=1)
            lines.append(f"{uid} {','.join(map(str, load_roi(path).shape))}\n")
        out = data_dir / "video_shape"
        out.write_text("".join(lines))
        return out

    return write


@pytest.fixture(scope="session")
def resumed_matches_uninterrupted(usr2_train):
    """``check(args, root, full_exp, epoch=2)`` runs ``usr2_train args`` into ``root/exp_resumed``, kills
    it right after the first logged step of ``epoch`` (needs ``--log_interval 1``), before that
    epoch's checkpoint exists -- what a crash leaves -- resumes it with ``--resume true``, and
    asserts that every tensor of the final model equals ``full_exp``'s (the uninterrupted run's).
    Returns that model's state dict."""

    def check(args: Sequence[str], root: Path, full_exp: Path, epoch: int = 2) -> Dict[str, torch.Tensor]:
        exp = root / "exp_resumed"
        proc = subprocess.Popen(
            [*usr2_train.cmd, *args, "--output_dir", str(exp)],
            cwd=root,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        killed_mid_epoch = False
        for line in proc.stderr:
            if f"{epoch}epoch:train:" in line:  # the first step of the epoch has run
                proc.kill()
                killed_mid_epoch = True
                break
        proc.wait()
        assert killed_mid_epoch, "training finished before it could be interrupted"
        assert not (exp / f"{epoch}epoch.pth").exists()
        usr2_train([*args, "--output_dir", str(exp), "--resume", "true"], root)
        full = torch.load(full_exp / "checkpoint.pth", weights_only=False)["model"]
        resumed = torch.load(exp / "checkpoint.pth", weights_only=False)["model"]
        assert full.keys() == resumed.keys()
        different = [k for k in full if not torch.equal(full[k], resumed[k])]
        assert not different, f"{len(different)} tensors differ, e.g. {different[:5]}"
        return full

    return check
