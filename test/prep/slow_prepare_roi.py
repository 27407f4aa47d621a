"""usr2_prepare_roi with a slow-down and a decode counter, for the kill-and-resume test.

Usage: python slow_prepare_roi.py COUNTER DELAY <usr2_prepare_roi arguments...>

Every utterance the job decodes is first appended to COUNTER (one uttid per line, flushed),
then the job sleeps DELAY seconds, so a test can SIGKILL it between utterances and count
what was decoded across runs.
"""

import sys
import time

from espnet_usr2.bin import usr2_prepare_roi
from espnet_usr2.prep import roi_pipeline


def main() -> int:
    counter, delay, args = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    original = roi_pipeline.prepare_utterance

    def counted(utt, media_dir, cfg):
        with open(counter, "a", encoding="utf-8") as fh:
            fh.write(utt.uttid + "\n")
        time.sleep(delay)
        return original(utt, media_dir, cfg)

    roi_pipeline.prepare_utterance = counted
    return usr2_prepare_roi.main(args)


if __name__ == "__main__":
    sys.exit(main())
