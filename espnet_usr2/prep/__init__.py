"""Data preparation: talking-face videos -> mouth ROIs (25 fps, 96x96 gray) + 16 kHz audio.

Mouth-ROI modules (importing this package imports none of them):

* :mod:`~espnet_usr2.prep.roi_pipeline` -- per-utterance chain, shards, merge (the library
  behind ``python -m espnet_usr2.bin.usr2_prepare_roi``)
* :mod:`~espnet_usr2.prep.media` -- PyAV decoding, 25 fps resampling, 16 kHz audio
* :mod:`~espnet_usr2.prep.landmarks` / :mod:`~espnet_usr2.prep.landmark_sets` -- MediaPipe
  face mesh, precomputed iBUG-68 / MediaPipe landmark files, stable and mouth points
* :mod:`~espnet_usr2.prep.align` -- gap filling, smoothing, similarity alignment, crops
* :mod:`~espnet_usr2.prep.roi_lists` / :mod:`~espnet_usr2.prep.roi_errors` -- Kaldi lists,
  sharding, the skip report and its reason codes

Synthetic face clips for the tests and benchmarks are in :mod:`espnet_usr2.testing.roi_synth`.
"""
