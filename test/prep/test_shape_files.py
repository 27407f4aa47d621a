"""Stage 10's shape files from the lists: the same bytes as ``usr2_train --collect_stats``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

from espnet_usr2.data.roi_io import save_roi
from espnet_usr2.prep.shape_files import DataSource, ShapeSourceError, write_shape_files


def _data_args(option: str, data_dir: Path, with_text: bool) -> List[str]:
    args = [option, f"{data_dir}/wav.scp,speech,sound", option, f"{data_dir}/video.scp,video,roi_video"]
    return args + ([option, f"{data_dir}/text,text,text"] if with_text else [])


def _stats_args(tiny_config: Path, tokens: Path, train: Path, valid: Path, train_text: bool, out: Path) -> List[str]:
    return [
        "--config",
        str(tiny_config),
        "--token_list",
        str(tokens),
        "--token_type",
        "char",
        *_data_args("--train_data_path_and_name_and_type", train, train_text),
        *_data_args("--valid_data_path_and_name_and_type", valid, True),
        "--train_shape_file",
        str(train / "wav.scp"),
        "--valid_shape_file",
        str(valid / "wav.scp"),
        "--output_dir",
        str(out),
    ]


@pytest.fixture(scope="module")
def corpus(write_toy_corpus, token_list, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    write_toy_corpus(root / "train", num_utts=12, seed=1, prefix="train", roi_format="mkv", max_symbols=6)
    write_toy_corpus(root / "valid", num_utts=5, seed=2, prefix="valid")  # npz ROIs
    write_toy_corpus(root / "unl", num_utts=7, seed=3, prefix="unl", roi_format="mkv")
    (root / "unl" / "text").unlink()
    (root / "tokens.txt").write_text("".join(f"{t}\n" for t in token_list))
    return root


@pytest.mark.parametrize("train_set,train_text", [("train", True), ("unl", False)])
def test_shape_files_equal_collect_stats_byte_for_byte(corpus, tiny_config, usr2_train, train_set, train_text):
    """A labelled set (text shapes, .mkv ROIs) and an unlabelled one (no text): every file
    --collect_stats writes, and the samplers read, is the same."""
    stats = _stats_args(
        tiny_config,
        corpus / "tokens.txt",
        corpus / train_set,
        corpus / "valid",
        train_text,
        corpus / f"collect_{train_set}",
    )
    usr2_train(["--collect_stats", "true", *stats], cwd=corpus)
    lists = _stats_args(
        tiny_config,
        corpus / "tokens.txt",
        corpus / train_set,
        corpus / "valid",
        train_text,
        corpus / f"lists_{train_set}",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "espnet_usr2.bin.usr2_shape_files", *lists], cwd=corpus, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for mode in ("train", "valid"):
        expected, written = (corpus / f"{kind}_{train_set}" / mode for kind in ("collect", "lists"))
        names = sorted(p.name for p in expected.iterdir())
        assert names == sorted(p.name for p in written.iterdir())
        assert ("text_shape" in names) == (train_text or mode == "valid")
        for name in names:
            assert (written / name).read_bytes() == (expected / name).read_bytes(), f"{mode}/{name}"
    assert (corpus / f"lists_{train_set}" / "config.yaml").is_file()


def _sources(data_dir: Path) -> List[DataSource]:
    return [
        DataSource(data_dir / "wav.scp", "speech", "sound"),
        DataSource(data_dir / "video.scp", "video", "roi_video"),
        DataSource(data_dir / "text", "text", "text"),
    ]


def _copy_lists(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("wav.scp", "video.scp", "text", "utt2num_frames"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_missing_frame_counts_name_stage_3(corpus, tmp_path):
    data = _copy_lists(corpus / "train", tmp_path / "d")
    (data / "utt2num_frames").unlink()
    with pytest.raises(ShapeSourceError, match="utt2num_frames not found: stage 3 writes it"):
        write_shape_files(_sources(data), data / "wav.scp", tmp_path / "out", 640, lambda uid, text: len(text))


def test_an_utterance_missing_from_a_list_is_named(corpus, tmp_path):
    data = _copy_lists(corpus / "train", tmp_path / "d")
    lines = (data / "text").read_text().splitlines()
    (data / "text").write_text("".join(f"{line}\n" for line in lines[1:]))
    missing = lines[0].split()[0]
    with pytest.raises(ShapeSourceError, match=f"lists no transcript for 1 utterance.*{missing}"):
        write_shape_files(_sources(data), data / "wav.scp", tmp_path / "out", 640, lambda uid, text: len(text))


def test_rois_of_two_sizes_are_refused_naming_both(corpus, tmp_path):
    data = _copy_lists(corpus / "train", tmp_path / "d")
    rows = (data / "video.scp").read_text().splitlines()
    uid = rows[-1].split()[0]
    odd = save_roi(tmp_path / f"{uid}.mkv", np.zeros((5, 64, 80), dtype=np.uint8))
    (data / "video.scp").write_text("".join(f"{r}\n" for r in rows[:-1]) + f"{uid} {odd}\n")
    with pytest.raises(ShapeSourceError, match=r"differ in size .*96x96.*64x80"):
        write_shape_files(_sources(data), data / "wav.scp", tmp_path / "out", 640, lambda uid, text: len(text))
