"""The real-corpus recipes (egs2/{lrs3,lrs2,vox2,avspeech}/usr2) on tiny trees in each
corpus's real layout and file formats: local/data.sh + usr2.sh stages 1-5, then the data
directories are validated (sorted, the same ids in every list, counts as expected).
A handful of 1-2.4 s synthetic clips (espnet_usr2.testing.roi_synth) stand in for the videos.

Marked ``recipe``: ``pytest -m "not recipe"`` leaves it out of a quick run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.recipe  # slow: leave out of a quick run with -m "not recipe"


# ------------------------------------------------------------------ helpers


def _env(**extra: str) -> dict:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "USR2_CMD_BACKEND": "local"}
    for var in ("LRS3", "LRS2", "VOXCELEB2", "AVSPEECH", "VOX2_EN_LIST", "VOX2_TEXT", "AVSPEECH_CSV", "AVSPEECH_TEXT"):
        env.pop(var, None)
    env.update(extra)
    return env


def _run(recipe: Path, args: list[str], env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=recipe, env=env, capture_output=True, text=True, timeout=timeout)
    (recipe / "run.log").write_text(proc.stdout + proc.stderr)
    return proc


def _keys(path: Path) -> list[str]:
    return [line.split(maxsplit=1)[0] for line in path.read_text().splitlines() if line.strip()]


def _check_dump_dir(d: Path, n: int, labelled: bool) -> list[str]:
    """Every list sorted with the same ids; n utterances; text present iff labelled."""
    ids = _keys(d / "video.scp")
    assert len(ids) == n, (d, ids)
    assert ids == sorted(ids) and len(set(ids)) == n, d
    for f in ("wav.scp", "utt2spk", "utt2num_frames"):
        assert _keys(d / f) == ids, (d, f)
    if labelled:
        assert _keys(d / "text") == ids, d
        assert all(len(line.split()) > 1 for line in (d / "text").read_text().splitlines()), d
    spk = {}
    for line in (d / "utt2spk").read_text().splitlines():
        u, s = line.split()
        assert u.startswith(s), (u, s)  # speaker-prefixed ids: Kaldi's sort order
        spk.setdefault(s, []).append(u)
    assert {line.split()[0]: line.split()[1:] for line in (d / "spk2utt").read_text().splitlines()} == spk
    recipe = d.parents[1]  # paths are relative to the recipe directory
    for f in ("video.scp", "wav.scp"):
        for line in (d / f).read_text().splitlines():
            assert (recipe / line.split(maxsplit=1)[1]).is_file(), (d, f, line)
    return ids


WORDS = ["SO", "WHAT", "DO", "WE", "DO", "NOW"]
TIMES = [(0.10, 0.40), (0.45, 0.80), (0.85, 1.20), (1.25, 1.60), (1.65, 2.00), (2.05, 2.30)]


def _lrs_txt(words, times=None) -> str:
    """An LRS2/LRS3 transcript file: "Text:" line, "Conf:" line, optional word-timing table."""
    out = f"Text:  {' '.join(words)}\nConf:  4\n"
    if times is not None:
        out += "\nWORD START END ASDSCORE\n" + "".join(f"{w} {s:.2f} {e:.2f} 5.1\n" for w, (s, e) in zip(words, times))
    return out


def _put(clips, kind: str, mp4: Path, txt: str | None = None, lm_root: Path | None = None, rel: Path | None = None):
    mp4.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(clips[kind], mp4)
    if txt is not None:
        mp4.with_suffix(".txt").write_text(txt)
    if lm_root is not None:
        from espnet_usr2.prep.landmarks import save_landmarks_pickle

        save_landmarks_pickle((lm_root / rel).with_suffix(".pkl"), clips["landmarks"][kind])


# ------------------------------------------------------------------ LRS3
def _lrs3_tree(clips, root: Path, lm: Path) -> Path:
    corpus = root / "lrs3"
    short_words, short_times = WORDS[:2], TIMES[:2]  # ends at 0.8 s: never split
    rows = [
        ("pretrain", "0Fi83BHQsMA", "00002", "long", WORDS, TIMES),
        ("pretrain", "5ZOg-2_eA9k", "00001", "short", short_words, short_times),
        ("trainval", "0Fi83BHQsMA", "00002", "short", short_words, short_times),
        ("trainval", "5ZOg-2_eA9k", "00004", "short", ["HELLO", "THERE"], [(0.1, 0.5), (0.6, 1.0)]),
        ("trainval", "aBcD_efGh12", "00001", "short", ["WE", "DO"], [(0.1, 0.5), (0.6, 1.0)]),
        ("test", "zzTestSpk01", "00001", "short", ["WHAT", "NOW"], [(0.1, 0.5), (0.6, 1.0)]),
    ]
    for split, spk, clip, kind, words, times in rows:
        rel = Path(split) / spk / f"{clip}.mp4"
        _put(clips, kind, corpus / rel, _lrs_txt(words, times), lm, rel)
    return corpus


def test_lrs3_stages_1_to_5(clips, tmp_path, recipe_copy):
    corpus = _lrs3_tree(clips, tmp_path, tmp_path / "lrs3_landmarks")
    recipe = recipe_copy("lrs3", tmp_path / "recipe")
    proc = _run(
        recipe,
        [
            "./run.sh",
            "--setting",
            "low",
            "--model",
            "base",
            "--nj",
            "2",
            "--max_len",
            "1.0",
            "--valid_size",
            "1",
            "--landmarks_dir",
            str(tmp_path / "lrs3_landmarks"),
            "--stop_stage",
            "5",
            "--nbpe",
            "20",
        ],
        _env(LRS3=str(corpus)),
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    # stage 1: the 2.4 s pretrain clip is split at word boundaries into <= 1 s segments
    segs = (recipe / "data" / "pretrain" / "segments").read_text().splitlines()
    assert [s.split()[0] for s in segs] == [f"0Fi83BHQsMA_pretrain_00002_0{k}" for k in (1, 2, 3)]
    for line in segs:
        _, rec, start, end = line.split()
        assert rec == "0Fi83BHQsMA_pretrain_00002" and 0 < float(end) - float(start) <= 1.0
        assert abs(float(start) * 25 - round(float(start) * 25)) < 1e-6  # on the frame grid
    text = dict(line.split(maxsplit=1) for line in (recipe / "data" / "pretrain" / "text").read_text().splitlines())
    assert " ".join(text[f"0Fi83BHQsMA_pretrain_00002_0{k}"] for k in (1, 2, 3)) == " ".join(WORDS)
    lm = _keys(recipe / "data" / "lm.scp")
    assert len(lm) == 4 + 1 + 2 + 1  # 3 segments + 1 whole pretrain, train, valid, test
    # stages 2-4: everything extracted (from the precomputed landmarks) and kept
    _check_dump_dir(recipe / "dump" / "pretrain", 4, labelled=False)
    _check_dump_dir(recipe / "dump" / "trainval", 2, labelled=True)
    _check_dump_dir(recipe / "dump" / "valid", 1, labelled=True)
    _check_dump_dir(recipe / "dump" / "test", 1, labelled=True)
    frames = dict(line.split() for line in (recipe / "dump" / "pretrain" / "utt2num_frames").read_text().splitlines())
    for line in segs:
        u, _, start, end = line.split()
        assert abs(int(frames[u]) - round((float(end) - float(start)) * 25)) <= 1
    # stage 5
    tokens = (recipe / "data" / "token_list" / "bpe_unigram20" / "tokens.txt").read_text().splitlines()
    assert tokens[0] == "<blank>" and tokens[-1] == "<sos/eos>"


# ------------------------------------------------------------------ LRS2
def _lrs2_tree(clips, top: Path) -> Path:
    """LRS2 as downloaded: mvlrs_v1/{main,pretrain}/ and the split lists next to it."""
    root = top / "mvlrs_v1"
    two = (["HELLO", "THERE"], [(0.1, 0.5), (0.6, 1.0)])
    rows = [
        ("pretrain", "5535415699068794046", "00001", "long", WORDS, TIMES),
        ("main", "5535415699068794046", "00002", "short", *two),
        ("main", "5535415699068794046", "00003", "short", ["WE", "DO"], None),
        ("main", "6300370419826092098", "00001", "short", *two),
        ("main", "6331559613336179781", "00001", "short", ["WHAT", "NOW"], None),
    ]
    for sub, vid, clip, kind, words, times in rows:
        _put(clips, kind, root / sub / vid / f"{clip}.mp4", _lrs_txt(words, times))
    # split lists next to mvlrs_v1/, as in the download; test.txt lines carry a tag
    (top / "pretrain.txt").write_text("5535415699068794046/00001\n")
    (top / "train.txt").write_text("5535415699068794046/00002\n5535415699068794046/00003\n")
    (top / "val.txt").write_text("6300370419826092098/00001\n")
    (top / "test.txt").write_text("6331559613336179781/00001 NF\n")
    return root


def test_lrs2_stages_1_to_5(clips, tmp_path, recipe_copy):
    root = _lrs2_tree(clips, tmp_path / "lrs2")
    recipe = recipe_copy("lrs2", tmp_path / "recipe")
    proc = _run(
        recipe, ["./run.sh", "--nj", "2", "--max_len", "1.0", "--stop_stage", "5", "--nbpe", "20"], _env(LRS2=str(root))
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert len(_keys(recipe / "data" / "pretrain" / "segments")) == 3
    _check_dump_dir(recipe / "dump" / "pretrain", 3, labelled=False)
    _check_dump_dir(recipe / "dump" / "train", 2, labelled=True)
    _check_dump_dir(recipe / "dump" / "val", 1, labelled=True)
    assert _check_dump_dir(recipe / "dump" / "test", 1, labelled=True) == ["6331559613336179781_test_00001"]
    assert (recipe / "data" / "token_list" / "bpe_unigram20" / "tokens.txt").is_file()


# ------------------------------------------------------------------ VoxCeleb2
def test_vox2_stages_1_to_4_and_length_buckets(clips, tmp_path, recipe_copy):
    root = tmp_path / "voxceleb2"
    for rel, kind in (
        ("id00012/21Uxsk56VDQ/00001", "long"),
        ("id00012/21Uxsk56VDQ/00002", "short"),
        ("id00015/0a1B2c3D4e5/00001", "short"),
    ):
        _put(clips, kind, root / "dev" / "mp4" / f"{rel}.mp4")
    en = tmp_path / "vox2_en.lst"  # English ids only (AV-HuBERT format); one listed clip is missing
    en.write_text("id00012/21Uxsk56VDQ/00001\nid00012/21Uxsk56VDQ/00002\nid00099/zzzzzzzzzzz/00001\n")
    asr = tmp_path / "vox2_text.txt"
    asr.write_text("id00012/21Uxsk56VDQ/00001 SO WHAT DO WE DO NOW\n")
    recipe = recipe_copy("vox2", tmp_path / "recipe")
    proc = _run(recipe, ["./run.sh", "--nj", "2"], _env(VOXCELEB2=str(root), VOX2_EN_LIST=str(en), VOX2_TEXT=str(asr)))
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "1 listed but missing" in proc.stdout
    ids = _check_dump_dir(recipe / "dump" / "vox2", 2, labelled=False)
    assert ids == ["id00012_21Uxsk56VDQ_00001", "id00012_21Uxsk56VDQ_00002"]  # id00015 is not English
    bucket = recipe / "data" / "vox2_test_len50_100"  # the 2.4 s clip: 60 frames
    assert _keys(bucket / "text") == ["id00012_21Uxsk56VDQ_00001"] == _keys(bucket / "video_src.scp")
    assert sorted(p.name for p in (recipe / "data").iterdir() if p.name.startswith("vox2_test_len")) == [bucket.name]
    # a --landmarks_dir that is not a directory stops with its name (it used to give an empty lm.scp)
    env = _env(VOXCELEB2=str(root), VOX2_EN_LIST=str(en), VOX2_TEXT=str(asr))
    proc = _run(recipe, ["./local/data.sh", "--nj", "2", "--landmarks_dir", str(tmp_path / "nowhere")], env)
    assert proc.returncode != 0 and f"'{tmp_path / 'nowhere'}' is not a directory" in proc.stderr, proc.stderr
    assert not (recipe / "data" / "lm.scp").exists()


# ------------------------------------------------------------------ db.sh errors
@pytest.mark.parametrize("corpus,var", [("lrs3", "LRS3"), ("lrs2", "LRS2"), ("vox2", "VOXCELEB2")])
def test_missing_db_path_names_the_variable(corpus, var, tmp_path, recipe_copy):
    recipe = recipe_copy(corpus, tmp_path / "recipe")
    proc = _run(recipe, ["./local/data.sh"], _env())
    assert proc.returncode != 0
    assert f"{var} is not set" in proc.stderr and "Expected layout" in proc.stderr, proc.stderr
    (tmp_path / "empty").mkdir()
    proc = _run(recipe, ["./local/data.sh"], _env(**{var: str(tmp_path / "empty")}))
    assert proc.returncode != 0 and f"{var}='{tmp_path / 'empty'}' (db.sh) has no" in proc.stderr, proc.stderr
    proc = _run(recipe, ["./local/data.sh"], _env(**{var: str(tmp_path / "nowhere")}))
    assert proc.returncode != 0 and "is not a directory" in proc.stderr, proc.stderr
