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
    install_requires=[
        # Tested together (see tools/install.sh): torch/torchaudio 2.11 + espnet 202511.
        "espnet==202511",
        "torch>=2.5,<2.12",
        "torchaudio>=2.5,<2.12",
        "sentencepiece>=0.2",
        "kaldiio>=2.18",
        "pyyaml>=6",
        "jiwer>=3",
        "numpy>=1.24",
        "soundfile>=0.12",
        "av>=12",  # PyAV: video decoding/encoding (torchvision dropped read_video)
        "matplotlib>=3.7",  # ESPnet's --use_matplotlib defaults to true
        # ESPnet's --use_tensorboard defaults to true; tensorboard 2.20+ needs protobuf>=6,
        # which breaks mediapipe 0.10.21 (protobuf<5), the last release with offline models
        "tensorboard>=2.14,<2.20",
        "protobuf<5",
        "typeguard>=4",
        "configargparse>=1.5",
        # mouth-ROI preparation and the generated mini corpus
        "opencv-python-headless>=4.8,<4.11",
        "scikit-image>=0.22",
        "scipy>=1.10",
    ],
    extras_require={
        # pocketsphinx bundles an English model: the mini corpus intelligibility test
        "test": ["pytest>=7", "pytest-timeout>=2", "pocketsphinx>=5"],
    },
    entry_points={
        "console_scripts": [
            "usr2-train=espnet_usr2.bin.usr2_train:main",
        ],
    },
)
