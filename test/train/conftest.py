"""Fixtures of the training tests: interrupting a run mid-epoch (resume tests), a free TCP
port and video shape files (DDP tests)."""
import socket
import subprocess
from pathlib import Path
from typing import Sequence

import pytest

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
def kill_mid_epoch(usr2_train):
    """``kill_mid_epoch(args, exp, cwd, epoch=2)`` starts ``usr2_train args --output_dir exp`` and kills
    it right after the first logged step of ``epoch`` (needs ``--log_interval 1``), before that
    epoch's checkpoint exists -- the state a crash leaves for ``--resume true``."""
    def run(args: Sequence[str], exp: Path, cwd: Path, epoch: int = 2) -> None:
        proc = subprocess.Popen([*usr2_train.cmd, *args, "--output_dir", str(exp)], cwd=cwd,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        killed_mid_epoch = False
        for line in proc.stderr:
            if f"{epoch}epoch:train:" in line:  # the first step of the epoch has run
                proc.kill()
                killed_mid_epoch = True
                break
        proc.wait()
        assert killed_mid_epoch, "training finished before it could be interrupted"
        assert not (exp / f"{epoch}epoch.pth").exists()

    return run
