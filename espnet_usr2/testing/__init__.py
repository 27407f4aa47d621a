"""Generated test material for this package's tests and benchmarks.

Nothing in the library, the command-line tools or the recipes imports this package; it
lives inside ``espnet_usr2`` (not under ``test/``) only because the benchmarks in
``bench/`` use it too (``bench/bench_roi.py`` times ROI extraction on its clips).

* :mod:`~espnet_usr2.testing.roi_synth` -- jittered synthetic talking-face clips (a real
  public-domain photo) with the ground truth of every frame's transform
"""
