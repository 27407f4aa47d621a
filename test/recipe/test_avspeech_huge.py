"""AVSpeech (egs2/avspeech/usr2) and the Huge setting (egs2/lrs2_lrs3_vox2_avspeech/usr2)
on tiny trees in the corpora's real formats, plus VoxCeleb2's real English id list.

* AVSpeech: the released CSV format (no header, ``id,start,end,x,y``), whole videos and an
  already cut clip, rows without a usable video (each listed with its reason), a
  transcribed row (the OOD test set), and a video with two faces whose rows point at
  different faces: the CSV's face position must decide which mouth is cropped.
* VoxCeleb2: AV-HuBERT's ``vox-en.id`` lines are ``dev/<id>/<video>/<clip>`` (see
  scripts/vox2_data.sh); the list is read gzipped, with test-split and odd lines.
* Huge: four corpora at once, set names prefixed where they would collide, labelled and
  unlabelled sets combined by usr2.sh, precomputed landmarks for LRS3 only (the other
  corpora fall back to face detection, listed).

The generated clips and helpers are those of test_corpus_recipes.py (imported, not
copied; the clips fixture is in conftest.py). Marked ``recipe``: ``pytest -m "not recipe"``
leaves these out of a quick run.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from test_corpus_recipes import _check_dump_dir, _env, _keys, _lrs2_tree, _lrs3_tree, _put, _run

pytestmark = pytest.mark.recipe  # slow: leave out of a quick run with -m "not recipe"

FACE = 128  # side of each face of the two-face video


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> Path:
    """2.4 s, two talking faces side by side: left mouth closed, right mouth wide open."""
    from espnet_usr2.prep.talking_face import MouthShape, TalkingFace
    from espnet_usr2.testing.roi_synth import tone, write_clip

    left = TalkingFace(size=FACE).render(MouthShape(opening=0.0))
    right = TalkingFace(size=FACE).render(MouthShape(opening=1.0, teeth=0.6))
    frames = np.repeat(np.concatenate([left, right], axis=1)[None], 60, axis=0)
    path = tmp_path_factory.mktemp("two_faces") / "two.mp4"
    write_clip(path, frames, 25, tone(2.4, 16000, 1), sample_rate=16000)
    return path


def _avspeech_tree(clips, two_faces: Path, root: Path, with_test: bool = True) -> tuple[Path, list[str]]:
    """An AVSpeech copy: clips/ (whole videos, a cut clip one folder down) and the CSV.
    Returns the root and the expected reason of every skipped CSV line (by line number)."""
    corpus = root / "avspeech"
    (corpus / "clips" / "part1").mkdir(parents=True)
    (corpus / "clips" / "AvWWVOgaMlk.mp4").write_bytes(two_faces.read_bytes())
    _put(clips, "long", corpus / "clips" / "Kp3_dQ-9vLs.mp4")  # 2.4 s
    _put(clips, "short", corpus / "clips" / "part1" / "zY-x_8Qw3Rk_10.500000-11.700000.mp4")  # a cut clip
    rows = [
        "AvWWVOgaMlk,0.000000,1.200000,0.250000,0.500000",  # 1: left face (mouth closed)
        "AvWWVOgaMlk,1.200000,2.400000,0.750000,0.480000",  # 2: right face (mouth open)
        "zY-x_8Qw3Rk,10.500000,11.700000,0.500000,0.500000",  # 3: the cut clip
        "Kp3_dQ-9vLs,0.200000,1.400000,0.500000,0.500000",  # 4: transcribed -> test set
        "Kp3_dQ-9vLs,0.000000,9.000000,0.500000,0.500000",  # 5: longer than the video
        "notDownload,5.000000,8.000000,0.500000,0.500000",  # 6: no video
        "AvWWVOgaMlk,0.000000,1.200000,0.250000,0.500000",  # 7: repeats line 1
        "Kp3_dQ-9vLs,3.0",
    ]  # 8: malformed
    (corpus / "avspeech_train.csv").write_text("\r\n".join(rows) + "\r\n")  # CRLF, as some copies have
    skipped = {5: "segment_beyond_video", 6: "no_video", 7: "duplicate_row", 8: "bad_row"}
    if with_test:
        (root / "avspeech_text.txt").write_text("Kp3_dQ-9vLs_0.2_1.4 SO WHAT DO WE\n")
    return corpus, skipped


def _mouth_darkness(roi_file: Path) -> float:
    from espnet_usr2.data.roi_io import load_roi

    return 255.0 - float(load_roi(str(roi_file))[:, 40:60, 32:64].mean())


# ------------------------------------------------------------------ AVSpeech
def test_avspeech_stages_1_to_4_and_the_ood_test_set(clips, two_faces, tmp_path, recipe_copy):  # noqa: F811
    corpus, skipped = _avspeech_tree(clips, two_faces, tmp_path)
    # precomputed landmarks for the cut clip only (by its file name): the rest falls back
    from espnet_usr2.prep.landmarks import save_landmarks_pickle

    save_landmarks_pickle(tmp_path / "lm" / "zY-x_8Qw3Rk_10.500000-11.700000.pkl", clips["landmarks"]["short"])
    recipe = recipe_copy("avspeech", tmp_path / "recipe")
    proc = _run(
        recipe,
        ["./run.sh", "--nj", "2", "--test_sets", "avspeech_test", "--landmarks_dir", str(tmp_path / "lm")],
        _env(AVSPEECH=str(corpus), AVSPEECH_TEXT=str(tmp_path / "avspeech_text.txt")),
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "8 rows = 3 utterances in data/avspeech + 1 transcribed in data/avspeech_test + 4 skipped" in proc.stdout

    data = recipe / "data" / "avspeech"
    ids = _keys(data / "video_src.scp")
    assert ids == ["AvWWVOgaMlk_0000000_0001200", "AvWWVOgaMlk_0001200_0002400", "zY-x_8Qw3Rk_0010500_0011700"]
    for f in ("utt2spk", "utt2dur", "face_hint.scp"):
        assert _keys(data / f) == ids, f
    assert _keys(data / "segments") == ids[:2]  # the cut clip is used as it is
    assert (data / "video_src.scp").read_text().splitlines()[2].endswith("part1/zY-x_8Qw3Rk_10.500000-11.700000.mp4")
    assert [line.split()[1] for line in (data / "utt2spk").read_text().splitlines()] == [
        "AvWWVOgaMlk",
        "AvWWVOgaMlk",
        "zY-x_8Qw3Rk",
    ]
    assert (data / "face_hint.scp").read_text().splitlines()[1] == "AvWWVOgaMlk_0001200_0002400 0.750000 0.480000"
    report = [line.split("\t") for line in (data / "skipped_rows.tsv").read_text().splitlines()]
    assert report[0] == ["line", "youtube_id", "start", "end", "reason", "detail"]
    assert {int(r[0]): r[4] for r in report[1:]} == skipped
    test = recipe / "data" / "avspeech_test"
    assert (test / "text").read_text() == "Kp3_dQ-9vLs_0000200_0001400 SO WHAT DO WE\n"
    assert _keys(test / "video_src.scp") == ["Kp3_dQ-9vLs_0000200_0001400"]
    assert sorted(_keys(recipe / "data" / "face_hint.scp")) == sorted(ids + ["Kp3_dQ-9vLs_0000200_0001400"])

    assert _keys(recipe / "data" / "lm.scp") == [ids[2]]

    # stages 2-4: everything extracted (the cut clip from its landmarks, the others by
    # detection, listed); each segment of the two-face video shows the face its CSV row
    # points at (left: closed mouth, right: open mouth)
    _check_dump_dir(recipe / "dump" / "avspeech", 3, labelled=False)
    _check_dump_dir(recipe / "dump" / "avspeech_test", 1, labelled=True)
    assert _keys(recipe / "dump" / "extract" / "avspeech" / "landmark_fallback.list") == ids[:2]
    roi = {
        u: recipe / p
        for u, p in (line.split() for line in (recipe / "dump" / "avspeech" / "video.scp").read_text().splitlines())
    }
    left, right = _mouth_darkness(roi[ids[0]]), _mouth_darkness(roi[ids[1]])
    assert right > left + 15, (left, right)


def test_avspeech_missing_db_paths_name_the_variable(tmp_path, recipe_copy):
    recipe = recipe_copy("avspeech", tmp_path / "recipe")
    proc = _run(recipe, ["./local/data.sh"], _env())
    assert proc.returncode != 0 and "AVSPEECH is not set" in proc.stderr and "Expected layout" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = _run(recipe, ["./local/data.sh"], _env(AVSPEECH=str(tmp_path / "empty")))
    assert proc.returncode != 0 and f"AVSPEECH='{tmp_path / 'empty'}' (db.sh) has no 'clips'" in proc.stderr
    (tmp_path / "empty" / "clips").mkdir()
    proc = _run(recipe, ["./local/data.sh"], _env(AVSPEECH=str(tmp_path / "empty")))
    csv = tmp_path / "empty" / "avspeech_train.csv"
    assert proc.returncode != 0 and f"AVSPEECH_CSV='{csv}' (db.sh) is not a file" in proc.stderr, proc.stderr
    csv.write_text("abcdefghijk,1.0,2.0,0.5,0.5\n")  # a row, but no video: nothing to prepare
    proc = _run(recipe, ["./local/data.sh"], _env(AVSPEECH=str(tmp_path / "empty")))
    assert proc.returncode != 0 and "no row of" in proc.stderr, proc.stderr
    assert "no_video" in (recipe / "data" / "avspeech" / "skipped_rows.tsv").read_text()


# ------------------------------------------------------------------ VoxCeleb2 English list
def _vox2_tree(clips, root: Path) -> tuple[Path, Path]:
    """VoxCeleb2 dev + test, and the English list in AV-HuBERT's vox-en.id format, gzipped."""
    corpus = root / "voxceleb2"
    for rel, kind in (
        ("dev/mp4/id00012/21Uxsk56VDQ/00001", "short"),
        ("dev/mp4/id00012/21Uxsk56VDQ/00002", "short"),
        ("test/mp4/id00017/aBcD_eFgH-1/00001", "short"),
        ("dev/mp4/id00015/0a1B2c3D4e5/00001", "short"),
    ):
        _put(clips, kind, corpus / f"{rel}.mp4")
    lines = [
        "dev/id00012/21Uxsk56VDQ/00001",  # the real format
        "dev/mp4/id00012/21Uxsk56VDQ/00002.mp4",  # AV-HuBERT file.list style, with a suffix
        "test/id00017/aBcD_eFgH-1/00001",  # a test-split clip
        "dev/id00099/zzzzzzzzzzz/00001",  # listed, not on disk
        "not-an-id",
    ]  # a bad line (reported)
    en = root / "vox-en.id.gz"
    en.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return corpus, en


def test_vox2_reads_the_real_english_list(clips, tmp_path, recipe_copy):  # noqa: F811
    corpus, en = _vox2_tree(clips, tmp_path)
    recipe = recipe_copy("vox2", tmp_path / "recipe")
    proc = _run(recipe, ["./scripts/vox2_data.sh", "--corpus", str(corpus), "--list", str(en), "data/vox2"], _env())
    assert proc.returncode == 0, proc.stderr
    assert "3 clips (1 listed but missing, 1 bad lines)" in proc.stdout
    assert "not-an-id" in proc.stderr
    rec = dict(line.split() for line in (recipe / "data" / "vox2" / "recordings.scp").read_text().splitlines())
    assert sorted(rec) == ["id00012_21Uxsk56VDQ_00001", "id00012_21Uxsk56VDQ_00002", "id00017_aBcD_eFgH-1_00001"]
    assert rec["id00017_aBcD_eFgH-1_00001"] == str(corpus / "test/mp4/id00017/aBcD_eFgH-1/00001.mp4")
    assert _keys(recipe / "data" / "vox2" / "utt2spk") == sorted(rec)  # whole clips (< 16 s)


# ------------------------------------------------------------------ Huge
def test_huge_stages_1_to_5(clips, two_faces, tmp_path, recipe_copy):  # noqa: F811
    lrs2 = _lrs2_tree(clips, tmp_path / "lrs2")
    lrs3 = _lrs3_tree(clips, tmp_path, tmp_path / "lrs3_landmarks")
    vox2, en = _vox2_tree(clips, tmp_path)
    avspeech, _ = _avspeech_tree(clips, two_faces, tmp_path, with_test=False)
    recipe = recipe_copy("lrs2_lrs3_vox2_avspeech", tmp_path / "recipe")
    env = _env(LRS2=str(lrs2), LRS3=str(lrs3), VOXCELEB2=str(vox2), VOX2_EN_LIST=str(en), AVSPEECH=str(avspeech))
    proc = _run(
        recipe,
        [
            "./run.sh",
            "--nj",
            "2",
            "--max_len",
            "1.0",
            "--valid_size",
            "1",
            "--lrs3_landmarks_dir",
            str(tmp_path / "lrs3_landmarks"),
            "--stop_stage",
            "5",
            "--nbpe",
            "20",
        ],
        env,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])

    # stage 1: every corpus's sets, published without name clashes
    sets = {p.name for p in (recipe / "data").iterdir() if (p / "video_src.scp").is_file()}
    assert sets == {
        "lrs2_pretrain",
        "lrs2_train",
        "lrs2_val",
        "lrs2_test",
        "lrs3_pretrain",
        "lrs3_trainval",
        "lrs3_valid",
        "lrs3_test",
        "vox2",
        "avspeech",
    }
    assert len(_keys(recipe / "data" / "lm.scp")) == 8  # LRS3 only: 4 pretrain, 2 trainval, valid, test
    # stages 2-4: the labelled and the unlabelled sets combined, the others on their own
    dump = recipe / "dump"
    lab = _check_dump_dir(dump / "lrs2_pretrain+lrs2_train+lrs3_pretrain+lrs3_trainval", 3 + 2 + 4 + 2, labelled=True)
    assert sum(u.startswith("5535415699068794046_pretrain_") for u in lab) == 3
    # --max_len 1.0: each 1.2 s VoxCeleb2 clip is two chunks; AVSpeech has no test set here
    unlab = _check_dump_dir(dump / "vox2+avspeech", 2 * 3 + 4, labelled=False)
    assert "id00017_aBcD_eFgH-1_00001_02" in unlab and "AvWWVOgaMlk_0001200_0002400" in unlab
    for s in ("lrs3_valid", "lrs3_test", "lrs2_test"):
        _check_dump_dir(dump / s, 1, labelled=True)
    # LRS3 from its landmarks; the other corpora by face detection, and listed as such
    extract = dump / "extract"
    assert not (extract / "lrs3_pretrain" / "landmark_fallback.list").exists()
    assert _keys(extract / "vox2" / "landmark_fallback.list") == _keys(dump / "vox2" / "video.scp")
    assert len(_keys(extract / "avspeech" / "landmark_fallback.list")) == 4
    # stage 5: one tokenizer over all labelled text
    tokens = (recipe / "data" / "token_list" / "bpe_unigram20" / "tokens.txt").read_text().splitlines()
    assert tokens[0] == "<blank>" and tokens[-1] == "<sos/eos>"


def test_huge_stops_at_once_on_a_missing_corpus(tmp_path, recipe_copy):
    recipe = recipe_copy("lrs2_lrs3_vox2_avspeech", tmp_path / "recipe")
    for var in ("LRS2", "LRS3", "VOXCELEB2"):
        (tmp_path / var).mkdir()
    for sub in ("LRS2/main", "LRS2/pretrain", "LRS3/pretrain", "LRS3/trainval", "LRS3/test", "VOXCELEB2/dev/mp4"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    (tmp_path / "en.id").write_text("dev/id00012/21Uxsk56VDQ/00001\n")
    proc = _run(
        recipe,
        ["./local/data.sh"],
        _env(
            LRS2=str(tmp_path / "LRS2"),
            LRS3=str(tmp_path / "LRS3"),
            VOXCELEB2=str(tmp_path / "VOXCELEB2"),
            VOX2_EN_LIST=str(tmp_path / "en.id"),
        ),
    )
    assert proc.returncode != 0 and "AVSPEECH is not set" in proc.stderr, proc.stderr
    assert not (recipe / "data" / "local").exists()  # checked before any corpus was prepared
