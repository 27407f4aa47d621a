"""The out-of-distribution test recipes on tiny trees in their corpora's real layouts:
egs2/librispeech/usr2 (flac + <speaker>-<chapter>.trans.txt, audio only) and egs2/wildvsr/usr2
(videos/ + labels.json, or a Kaldi-style list; video only): local/data.sh, preparation,
decoding of a given tiny model (--model_dir) in the corpus's modality, scoring, RESULTS.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytestmark = pytest.mark.recipe  # slow: leave out of a quick run with -m "not recipe"


def _run(recipe: Path, args: list, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "USR2_CMD_BACKEND": "local",
        "OMP_NUM_THREADS": "1",
    }
    for var in ("LIBRISPEECH", "WILDVSR", "WILDVSR_LIST"):
        full_env.pop(var, None)
    proc = subprocess.run(args, cwd=recipe, env={**full_env, **env}, capture_output=True, text=True, timeout=600)
    (recipe / "run.log").write_text(proc.stdout + proc.stderr)
    return proc


def _keys(path: Path) -> list:
    return [line.split(maxsplit=1)[0] for line in path.read_text().splitlines() if line.strip()]


def _flac(path: Path, seconds: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    soundfile.write(
        str(path), (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000, format="FLAC"
    )


def _librispeech_tree(root: Path) -> Path:
    """test-clean: speakers 1089 (chapter 134686, 2 utterances) and 121 (chapter 121726, 1 + a
    flac without a transcript line); test-other: speaker 1688, 1 utterance."""
    corpus = root / "LibriSpeech"
    rows = {
        ("test-clean", "1089", "134686"): {"0000": "HE HOPED THERE WOULD BE STEW", "0001": "STUFF IT INTO YOU"},
        ("test-clean", "121", "121726"): {"0000": "ALSO A POPULAR CONTRIVANCE"},
        ("test-other", "1688", "142285"): {"0000": "THERE WAS A SOUND"},
    }
    for n, ((split, spk, chapter), utts) in enumerate(rows.items()):
        d = corpus / split / spk / chapter
        for k, utt in enumerate(utts):
            _flac(d / f"{spk}-{chapter}-{utt}.flac", 0.8 + 0.2 * k, seed=n * 10 + k)
        (d / f"{spk}-{chapter}.trans.txt").write_text("".join(f"{spk}-{chapter}-{u} {t}\n" for u, t in utts.items()))
    _flac(corpus / "test-clean" / "121" / "121726" / "121-121726-0009.flac", 0.5, seed=99)  # no transcript
    return corpus


def test_librispeech_test_sets_decode_audio_only(tiny_model_dir, tmp_path, recipe_copy):
    corpus = _librispeech_tree(tmp_path)
    recipe = recipe_copy("librispeech", tmp_path / "recipe")
    proc = _run(
        recipe,
        ["./run.sh", "--model_dir", str(tiny_model_dir), "--nj", "2", "--inference_nj", "2"],
        LIBRISPEECH=str(corpus),
    )
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    clean = ["1089-134686-0000", "1089-134686-0001", "121-121726-0000"]
    data = recipe / "data" / "test_clean"
    assert _keys(data / "video_src.scp") == _keys(data / "text") == clean
    assert (data / "utt2spk").read_text().splitlines()[2] == "121-121726-0000 121-121726"
    assert "left out 1 flac files without a transcript" in proc.stderr
    for s, utts in (("test_clean", clean), ("test_other", ["1688-142285-0000"])):
        dump = recipe / "dump" / s
        assert _keys(dump / "wav.scp") == _keys(dump / "utt2num_frames") == utts
        assert (dump / "video.scp").read_text() == ""  # audio only
        out = recipe / "exp" / "given_model" / "decode_ood_model" / s
        assert sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != "logdir") == ["audio"]
        assert _keys(out / "audio" / "text") == utts
        assert f"Stage 13: scored {s} audio ({len(utts)} of {len(utts)} utterances)" in proc.stdout
    results = (recipe / "exp" / "given_model" / "RESULTS.md").read_text()
    assert "|decode_ood_model/test_clean|3|-|-|" in results
    assert "|decode_ood_model/test_other|1|-|-|" in results


def test_librispeech_decodes_a_model_another_recipe_trained(tiny_model_dir, tmp_path, recipe_copy):
    """--model_dir <other recipe>/exp/<tag>: its config.yaml names bpe.model relative to the
    recipe that trained it (data/token_list/...); stage 12 finds it from here."""
    import yaml

    from espnet_usr2.data.unit_tokenizer import write_sentencepiece_model

    other = tmp_path / "mini_lrs3" / "usr2"
    bpe = other / "data" / "token_list" / "bpe_unigram8" / "bpe.model"
    bpe.parent.mkdir(parents=True)
    write_sentencepiece_model(["<unk>", *"ABCDEF", "\u2581"], bpe)
    exp = other / "exp" / "usr2_tiny"
    exp.mkdir(parents=True)
    config = yaml.safe_load((tiny_model_dir / "config.yaml").read_text())
    config.update(token_type="bpe", bpemodel="data/token_list/bpe_unigram8/bpe.model")
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(tiny_model_dir / "model.pth", exp / "valid.loss.best.pth")
    corpus = _librispeech_tree(tmp_path)
    recipe = recipe_copy("librispeech", tmp_path / "recipe")
    proc = _run(
        recipe,
        ["./run.sh", "--model_dir", "../mini_lrs3/usr2/exp/usr2_tiny", "--nj", "1", "--inference_nj", "1"],
        LIBRISPEECH=str(corpus),
    )
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    assert "Stage 13: scored test_clean audio (3 of 3 utterances)" in proc.stdout


def test_librispeech_without_corpus_names_the_variable(tiny_model_dir, tmp_path, recipe_copy):
    recipe = recipe_copy("librispeech", tmp_path / "recipe")
    proc = _run(recipe, ["./run.sh", "--model_dir", str(tiny_model_dir)])
    assert proc.returncode != 0 and "LIBRISPEECH is not set" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def wildvsr_tree(clips, tmp_path_factory):
    """WildVSR as released: videos/0000.mp4 (the synthetic talking face, with its audio
    track) and videos/0001.mp4 (without audio), labels.json with both and a missing clip."""
    from espnet_usr2.testing.roi_synth import make_clip

    root = tmp_path_factory.mktemp("wildvsr") / "WildVSR"
    (root / "videos").mkdir(parents=True)
    shutil.copy(clips["short"], root / "videos" / "0000.mp4")
    make_clip(root / "videos" / "0001.mp4", seconds=1.2, size=128, seed=2, with_audio=False)
    labels = {"0000.mp4": "to a maximum of four", "0001.mp4": "SO NEXT LET'S TALK", "0002.mp4": "GONE"}
    (root / "labels.json").write_text(json.dumps(labels))
    return root


def test_wildvsr_release_layout_decodes_video_only(wildvsr_tree, tiny_model_dir, tmp_path, recipe_copy):
    recipe = recipe_copy("wildvsr", tmp_path / "recipe")
    proc = _run(
        recipe,
        ["./run.sh", "--model_dir", str(tiny_model_dir), "--nj", "2", "--inference_nj", "1"],
        WILDVSR=str(wildvsr_tree),
    )
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    data = recipe / "data" / "test"
    utts = ["wildvsr_0000", "wildvsr_0001"]
    assert _keys(data / "video_src.scp") == utts
    assert (data / "text").read_text().splitlines()[0] == "wildvsr_0000 TO A MAXIMUM OF FOUR"
    assert "left out 1 clips without a video file" in proc.stderr
    dump = recipe / "dump" / "test"
    assert _keys(dump / "video.scp") == utts and _keys(dump / "wav.scp") == ["wildvsr_0000"]
    out = recipe / "exp" / "given_model" / "decode_ood_model" / "test"
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != "logdir") == ["video"]
    assert _keys(out / "video" / "text") == utts
    assert "|decode_ood_model/test|-|2|-|" in (recipe / "exp" / "given_model" / "RESULTS.md").read_text()


def test_wildvsr_kaldi_list_is_accepted(wildvsr_tree, tmp_path, recipe_copy):
    recipe = recipe_copy("wildvsr", tmp_path / "recipe")
    listing = tmp_path / "wildvsr.list"
    listing.write_text(
        f"clip_b {wildvsr_tree / 'videos' / '0001.mp4'} SO NEXT\nclip_a {wildvsr_tree}/videos/0000.mp4 HELLO THERE\n"
    )
    proc = _run(recipe, ["local/data.sh"], WILDVSR_LIST=str(listing))
    assert proc.returncode == 0, proc.stderr
    assert (recipe / "data" / "test" / "text").read_text() == "clip_a HELLO THERE\nclip_b SO NEXT\n"
    assert (recipe / "data" / "test" / "spk2utt").read_text() == "clip_a clip_a\nclip_b clip_b\n"


@pytest.mark.parametrize("corpus", ["librispeech", "wildvsr"])
def test_ood_recipe_needs_a_model(corpus, tmp_path, recipe_copy):
    proc = _run(recipe_copy(corpus, tmp_path / "recipe"), ["./run.sh"])
    assert proc.returncode != 0 and "--model_dir is required" in proc.stderr
