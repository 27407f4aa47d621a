"""``usr2_train`` whose second write of ``checkpoint.pth`` is slow: it writes half the bytes, prints
``SLOW WRITE <temporary file>`` on stderr and sleeps, so a test can kill the process while the
resume point is being written (what a preemption during a 15 GB write does)."""

import io
import sys
import time

import espnet_usr2.train.checkpoints as checkpoints
from espnet_usr2.bin.usr2_train import main

_writes = {"checkpoint": 0}
_fast = checkpoints._serialize


def _slow_second_checkpoint(obj, stream) -> None:
    if ".checkpoint.pth.tmp" in getattr(stream, "name", ""):
        _writes["checkpoint"] += 1
        if _writes["checkpoint"] == 2:
            buffer = io.BytesIO()
            _fast(obj, buffer)
            data = buffer.getvalue()
            stream.write(data[: len(data) // 2])
            stream.flush()
            print(f"SLOW WRITE {stream.name}", file=sys.stderr, flush=True)
            time.sleep(600)
            stream.write(data[len(data) // 2 :])
            return
    _fast(obj, stream)


checkpoints._serialize = _slow_second_checkpoint

if __name__ == "__main__":
    main()
