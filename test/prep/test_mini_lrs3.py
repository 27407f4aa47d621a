"""The embedded mini corpus generator: layout, LRS3 .txt format, timings, A/V sync,
determinism, mouth animation, face detectability and intelligibility."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from espnet_usr2.bin import usr2_make_mini_lrs3 as cli
from espnet_usr2.prep import mini_lrs3 as m
from espnet_usr2.prep.talking_face import (
    PHONE_VISEMES,
    VISEMES,
    FaceStyle,
    TalkingFace,
    mouth_track,
    random_style,
    visemes_of,
)
from espnet_usr2.prep.tts import Voice, synthesize

av = pytest.importorskip("av")

TINY = dict(
    n_pretrain=3,
    n_trainval=3,
    n_test=2,
    n_long=1,
    n_speakers=2,
    n_test_speakers=1,
    long_min_words=14,
    long_max_words=16,
)
TINY_ARGS = [f"--{k}={v}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A tiny corpus written through the command line."""
    root = tmp_path_factory.mktemp("mini") / "lrs3"
    assert cli.main(["--out", str(root), "--seed", "3", *TINY_ARGS, "--log_level", "WARNING"]) == 0
    return root


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(frames (T, H, W, 3) uint8, audio float32 mono, video frame rate)."""
    with av.open(str(path)) as c:
        rate = float(c.streams.video[0].average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        assert stream.rate == 16000 and stream.channels == 1
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return frames, audio.astype(np.float32), rate


def _read_txt(path: Path) -> tuple[list[str], list[tuple[str, float, float, float]]]:
    """(words of the Text: line, rows of the word table)."""
    lines = path.read_text().splitlines()
    rows = [(w, float(s), float(e), float(a)) for w, s, e, a in (ln.split() for ln in lines[4:])]
    return lines[0][len("Text:  ") :].split(), rows


def _clips(root: Path, split: str = "*") -> list[Path]:
    return sorted(root.glob(f"{split}/*/*.mp4"))


# ------------------------------------------------------------------ layout and format
def test_layout_is_lrs3(corpus: Path) -> None:
    assert sorted(p.name for p in corpus.iterdir()) == ["corpus_info.json", "pretrain", "test", "test_long", "trainval"]
    speakers = {}
    for split, base, count in (("pretrain", 1, 3), ("trainval", 50001, 3), ("test", 1, 2), ("test_long", 90001, 1)):
        mp4s = _clips(corpus, split)
        assert len(mp4s) == count
        txts = sorted(corpus.glob(f"{split}/*/*.txt"))
        assert sorted(p.with_suffix(".txt") for p in mp4s) == txts
        for p in mp4s:
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{10}", p.parent.name)
            assert re.fullmatch(r"\d{5}", p.stem) and int(p.stem) >= base
        speakers[split] = {p.parent.name for p in mp4s}
    assert not speakers["test"] & (speakers["pretrain"] | speakers["trainval"])
    assert speakers["test_long"] <= speakers["test"]
    assert not list(corpus.rglob("*.partial"))


def test_txt_format_exact(corpus: Path) -> None:
    for txt in corpus.glob("*/*/*.txt"):
        content = txt.read_text()
        assert content.endswith("\n")
        lines = content.splitlines()
        assert re.fullmatch(r"Text:  [A-Z']+( [A-Z']+)*", lines[0])
        assert re.fullmatch(r"Conf:  \d", lines[1])
        assert lines[2] == "" and lines[3] == "WORD START END ASDSCORE"
        for line in lines[4:]:
            assert re.fullmatch(r"[A-Z']+ \d+\.\d\d \d+\.\d\d \d+\.\d", line), line
        words, rows = _read_txt(txt)
        assert [r[0] for r in rows] == words and set(words) <= set(m.VOCABULARY)


def test_lrs3_text_string() -> None:
    text = m.lrs3_text(["WE", "DON'T"], [(0.12, 0.4), (0.4, 0.815)], [5.2, 6.0])
    assert text == ("Text:  WE DON'T\nConf:  4\n\nWORD START END ASDSCORE\nWE 0.12 0.40 5.2\nDON'T 0.40 0.81 6.0\n")


def test_sentence_lengths_and_grammar() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        words = m.make_sentence(rng, 3, 8)
        assert 3 <= len(words) <= 8 and set(words) <= set(m.VOCABULARY)
        assert words[-1] in m.NOUNS + m.PLURALS + m.ADVERBS
    long = m.make_long_text(rng, 24, 32)
    assert len(long) >= 24


# ------------------------------------------------------------------ timings and A/V
def test_audio_video_agree_and_timings_inside(corpus: Path) -> None:
    info = json.loads((corpus / "corpus_info.json").read_text())
    for mp4 in _clips(corpus):
        frames, audio, rate = _decode(mp4)
        assert rate == 25 and frames.shape[1:] == (192, 192, 3)
        # Exactly frames x 640 samples (allowed: one frame), AAC delay removed.
        assert abs(len(audio) - len(frames) * 640) <= 640
        duration = len(frames) / 25
        _, rows = _read_txt(mp4.with_suffix(".txt"))
        prev_end = 0.0
        for _, start, end, _ in rows:
            assert prev_end <= start < end <= duration
            prev_end = end
    assert info["splits"]["pretrain"]["clips"] == 3


def test_speech_energy_sits_in_the_word_segments(corpus: Path) -> None:
    """Timings are true: loud inside words, near-silent in the lead-in before them."""
    for mp4 in _clips(corpus):
        _, audio, _ = _decode(mp4)
        _, rows = _read_txt(mp4.with_suffix(".txt"))
        lead = audio[: int((rows[0][1] - 0.06) * 16000)]
        rms_lead = np.sqrt(np.mean(lead**2))
        for word, start, end, _ in rows:
            seg = audio[int(start * 16000) : int(end * 16000)]
            assert np.sqrt(np.mean(seg**2)) > 8 * rms_lead, (mp4, word)
        tail = audio[int((rows[-1][2] + 0.06) * 16000) :]
        assert np.sqrt(np.mean(tail**2)) < np.sqrt(np.mean(audio**2)) / 8


def test_long_utterances_are_longer_than_labelled(corpus: Path) -> None:
    info = json.loads((corpus / "corpus_info.json").read_text())["splits"]
    labelled = max(info[s]["max_s"] for s in ("pretrain", "trainval", "test"))
    assert info["test_long"]["min_s"] > labelled
    for mp4 in _clips(corpus, "test_long"):
        assert len(_read_txt(mp4.with_suffix(".txt"))[0]) >= TINY["long_min_words"]


def test_tts_timings_cover_merged_words() -> None:
    """espeak-ng speaks "on the" / "with the" as one word: both still get phones."""
    words = "PUSH A BALL ON THE DOOR WITH THE CUP".split()
    utt = synthesize(words, Voice("en-us+f2", rate=170, word_gap=1))
    assert [w.word for w in utt.words] == words
    prev = 0.0
    for w in utt.words:
        assert w.phones and prev <= w.start < w.end <= utt.duration
        assert all(w.start <= p.start < p.end <= w.end for p in w.phones)
        prev = w.end
    assert utt.sample_rate == 16000 and np.abs(utt.waveform).max() > 0.1


def test_every_vocabulary_phone_has_a_viseme() -> None:
    """No phone of the vocabulary falls back on the default shape, in US or UK voices."""
    for voice in ("en-us", "en"):
        utt = synthesize(list(m.VOCABULARY), Voice(voice))
        for w in utt.words:
            for p in w.phones:
                core = p.symbol.strip("'`,;%=")
                assert core == "" or core in PHONE_VISEMES, (voice, w.word, p.symbol)


# ------------------------------------------------------------------ determinism
def test_plan_is_deterministic_from_seed() -> None:
    cfg = m.CorpusConfig(**TINY, seed=11)
    assert m.plan_corpus(cfg) == m.plan_corpus(cfg)
    other = m.plan_corpus(m.CorpusConfig(**TINY, seed=12))
    assert [s.words for s in other] != [s.words for s in m.plan_corpus(cfg)]


def test_long_unlabelled_clips_leave_every_other_clip_as_it_was() -> None:
    """pretrain_long_share re-words a share of pretrain/ as several sentences (longer than any
    labelled clip, no test sentence among them); every other clip is planned as without it."""
    base = m.CorpusConfig(**{**TINY, "n_pretrain": 40}, seed=5)
    longer = m.CorpusConfig(**{**TINY, "n_pretrain": 40}, seed=5, pretrain_long_share=0.5)
    before, after = m.plan_corpus(base), m.plan_corpus(longer)
    assert [(s.split, s.clip, s.seed) for s in before] == [(s.split, s.clip, s.seed) for s in after]
    changed = [(b, a) for b, a in zip(before, after) if a.words != b.words]
    assert all(a.split == "pretrain" for _, a in changed) and 10 <= len(changed) <= 30
    test = {s.words for s in after if s.split == "test"}
    for _, a in changed:
        assert len(a.words) >= longer.pretrain_long_min_words > longer.max_words
        assert not any(a.words[i : i + len(t)] == t for t in test for i in range(len(a.words)))
    with pytest.raises(ValueError, match="pretrain_long_share"):
        m.CorpusConfig(pretrain_long_share=1.5).check()


def test_a_corpus_recorded_before_a_new_setting_is_still_recognised(tmp_path: Path) -> None:
    """corpus_info.json written before pretrain_long_* existed: the same corpus at their defaults."""
    cfg = m.CorpusConfig(**TINY, seed=3)
    recorded = {k: v for k, v in m.asdict(cfg).items() if not k.startswith("pretrain_long")}
    assert m.same_config(recorded, cfg)
    assert not m.same_config(recorded, m.CorpusConfig(**TINY, seed=3, pretrain_long_share=0.2))


def test_rendering_is_deterministic_and_independent_of_nj(tmp_path: Path, corpus: Path) -> None:
    """Same seed, other worker count: the same clips (test_long is planned last)."""
    cfg = m.CorpusConfig(**{**TINY, "n_long": 0}, seed=3)
    m.write_corpus(cfg, tmp_path / "a", nj=2)
    first = json.loads((corpus / "corpus_info.json").read_text())
    txts = sorted((tmp_path / "a").glob("*/*/*.txt"))
    assert [t.relative_to(tmp_path / "a") for t in txts] == [
        t.relative_to(corpus) for t in sorted(corpus.glob("*/*/*.txt")) if "test_long" not in str(t)
    ]
    for txt in txts:
        twin = corpus / txt.relative_to(tmp_path / "a")  # same seed: same clips
        assert txt.read_text() == twin.read_text()
        mp4, twin_mp4 = txt.with_suffix(".mp4"), twin.with_suffix(".mp4")
        assert mp4.read_bytes() == twin_mp4.read_bytes(), "encoder output not reproducible"
    assert first["config"]["seed"] == 3


def test_cli_reuses_finished_corpus_and_refuses_to_clobber(corpus: Path, capsys) -> None:
    info_before = (corpus / "corpus_info.json").read_text()
    assert cli.main(["--out", str(corpus), "--seed", "3", *TINY_ARGS, "--log_level", "WARNING"]) == 0
    assert (corpus / "corpus_info.json").read_text() == info_before
    assert "clips in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--out", str(corpus), "--seed", "4", *TINY_ARGS, "--log_level", "WARNING"])


# ------------------------------------------------------------------ the face
def test_mouth_moves_and_the_rest_of_the_face_stays_put() -> None:
    face = TalkingFace(random_style(np.random.default_rng(5)), 192)
    closed, opened = face.render(VISEMES["closed"]), face.render(VISEMES["open"])
    rounded, spread = face.render(VISEMES["round"]), face.render(VISEMES["spread"])
    x0, y0, x1, y1 = face.mouth_box()
    diff = np.abs(closed.astype(int) - opened.astype(int))
    assert diff[y0:y1, x0:x1].mean() > 15
    assert np.abs(rounded.astype(int) - spread.astype(int))[y0:y1, x0:x1].mean() > 5
    # Above the mouth (eyes, nose, hair, background) nothing changes at all ...
    assert diff[: y0 - 4].max() == 0
    # ... and beside or below it only the jaw moves: most of the frame is identical.
    assert (diff.max(axis=2) == 0).mean() > 0.75


def test_mouth_track_follows_phones() -> None:
    phones = [("p", 0.0, 0.12), ("A:", 0.12, 0.40), ("m", 0.40, 0.52), ("u:", 0.52, 0.8)]
    shapes = mouth_track(phones, n_frames=24, fps=25)
    assert len(shapes) == 24
    assert shapes[1].opening < 0.2 and shapes[6].opening > 0.8  # p, then wide-open A:
    assert shapes[11].opening < 0.3  # m closes again
    assert shapes[16].rounding > 0.8 and shapes[16].width < 0.8  # rounded u:
    assert shapes[-1].opening < 0.05  # rest after speech
    assert visemes_of("aI") == ("open", "spread") and visemes_of("_:") == ("rest",)


def test_mediapipe_finds_the_face_and_sees_the_mouth(corpus: Path) -> None:
    mp = pytest.importorskip("mediapipe")
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    try:
        frames = []
        for mp4 in _clips(corpus, "t*"):  # test and trainval speakers
            video, _, _ = _decode(mp4)
            frames += [video[0], video[len(video) // 2], video[-1]]
        for frame in frames:
            assert mesh.process(frame).multi_face_landmarks, "no face found"
        face = TalkingFace(FaceStyle(), 192)
        gaps = {}
        for name in ("closed", "open"):
            lm = mesh.process(face.render(VISEMES[name])).multi_face_landmarks[0].landmark
            gaps[name] = abs(lm[13].y - lm[14].y) * 192  # inner lips, in pixels
        assert gaps["open"] > gaps["closed"] + 4
    finally:
        mesh.close()


# ------------------------------------------------------------------ intelligibility
def _jsgf() -> str:
    """The corpus grammar as JSGF, for a constrained recogniser."""

    def alt(words):
        return "( " + " | ".join(w.lower() for w in words) + " )"

    det, adj = alt(m.DETERMINERS), alt(m.ADJECTIVES)
    return (
        "#JSGF V1.0;\ngrammar mini;\n"
        f"<np> = {det} [{adj}] {alt(m.NOUNS)} | {alt(m.NUMBERS)} [{adj}] {alt(m.PLURALS)};\n"
        f"public <s> = [ please | {alt(m.SUBJECTS)} [don't] ] {alt(m.VERBS)} <np> "
        f"[ {alt(m.PREPOSITIONS)} {det} [{adj}] {alt(m.NOUNS)} ] [{alt(m.ADVERBS)}];\n"
    )


def test_speech_is_recognisable_and_aligned_by_pocketsphinx(corpus: Path) -> None:
    """An independent recogniser understands the speech and agrees with the timings."""
    ps = pytest.importorskip("pocketsphinx")
    decoder = ps.Decoder(lm=None, loglevel="FATAL", samprate=16000)
    decoder.add_jsgf_string("mini", _jsgf())
    errors = total = 0
    boundary_err = []
    for mp4 in _clips(corpus, "[pt]*[!g]"):  # labelled splits, not test_long
        _, audio, _ = _decode(mp4)
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        words, rows = _read_txt(mp4.with_suffix(".txt"))
        decoder.activate_search("mini")
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp().hypstr.upper().split() if decoder.hyp() else []
        errors += _edit_distance(words, hyp)
        total += len(words)
        decoder.set_align_text(" ".join(words).lower())
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        segs = [s for s in decoder.seg() if s.word.upper() in set(words)]
        if len(segs) == len(rows):
            for seg, (_, start, end, _) in zip(segs, rows):
                boundary_err += [abs(seg.start_frame / 100 - start), abs((seg.end_frame + 1) / 100 - end)]
    assert errors / total < 0.4
    assert len(boundary_err) >= 20 and np.mean(boundary_err) < 0.06


def _edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]
