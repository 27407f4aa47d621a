"""Scoring the ESPnet way: trn files, sclite / the Python scorer, RESULTS.md."""

from __future__ import annotations

import logging
import random
import subprocess
from pathlib import Path
from typing import Sequence, Tuple

import pytest

from espnet_usr2.bin import usr2_score
from espnet_usr2.scoring import sclite
from espnet_usr2.scoring.results import TABLE_HEADER, collect_results, render_results_md, write_results_md
from espnet_usr2.scoring.sclite import (
    FallbackUnsupportedError,
    ScliteNotFoundError,
    ScoringInputError,
    align,
    count_errors,
    find_sclite,
    parse_result,
    python_sclite_report,
    score,
    sum_avg_line,
)

try:
    SCLITE = find_sclite()
except ScliteNotFoundError:  # $SCLITE set to something that is not a binary
    SCLITE = None
needs_sclite = pytest.mark.skipif(
    SCLITE is None,
    reason="sclite is not installed (apt-get install sctk); the comparison with the real scorer cannot run",
)

# A known pair, hand-scored:
#   u1 THE CAT SAT ON THE MAT -> THE CAT SAT ON MAT : 1 deletion (6 words)
#   u2 HELLO WORLD -> hello there world             : 1 insertion, case ignored (2 words)
#   u3 A B C D -> (empty)                          : 4 deletions (4 words)
# WER = (1 + 1 + 4) / 12 = 50.0 %, Corr 7/12 = 58.3, Del 5/12 = 41.7, Ins 1/12 = 8.3, all 3 sentences wrong.
# Characters (a space is the token <space>): 22 + 11 + 7 = 40 reference tokens;
#   u1 loses "THE " (4 deletions), u2 gains "there " (6 insertions), u3 loses 7 -> 17 / 40 = 42.5 %.
REF = "u1 THE CAT SAT ON THE MAT\nu2 HELLO WORLD\nu3 A B C D\n"
HYP = "u1 THE CAT SAT ON MAT\nu2 hello there world\nu3\n"
UTT2SPK = "u1 s1\nu2 s1\nu3 s2\n"
WER_FIELDS = ["3", "12", "58.3", "0.0", "41.7", "8.3", "50.0", "100.0"]
CER_FIELDS = ["3", "40", "72.5", "0.0", "27.5", "15.0", "42.5", "100.0"]


def _files(tmp_path: Path, ref: str = REF, hyp: str = HYP, utt2spk: str = UTT2SPK) -> Tuple[Path, Path, Path]:
    paths = tmp_path / "text", tmp_path / "hyp", tmp_path / "utt2spk"
    for p, content in zip(paths, (ref, hyp, utt2spk)):
        p.write_text(content, encoding="utf-8")
    return paths


BACKENDS = ["python", pytest.param("sclite", marks=needs_sclite)]


# ------------------------------------------------------------------ trn files and hand-computed scores


def test_trn_files_are_written_as_asr_sh_writes_them(tmp_path):
    ref, hyp, spk = _files(tmp_path)
    score(ref, hyp, spk, tmp_path / "out", metrics=("wer", "cer"), backend="python")
    wer_dir, cer_dir = tmp_path / "out" / "score_wer", tmp_path / "out" / "score_cer"
    assert (wer_dir / "ref.trn").read_text() == (
        "THE CAT SAT ON THE MAT\t(s1-u1)\nHELLO WORLD\t(s1-u2)\nA B C D\t(s2-u3)\n"
    )
    assert (wer_dir / "hyp.trn").read_text() == "THE CAT SAT ON MAT\t(s1-u1)\nhello there world\t(s1-u2)\n\t(s2-u3)\n"
    assert (cer_dir / "ref.trn").read_text().splitlines()[1] == "H E L L O <space> W O R L D\t(s1-u2)"
    assert (cer_dir / "hyp.trn").read_text().splitlines()[2] == "\t(s2-u3)"


@pytest.mark.parametrize("backend", BACKENDS)
def test_result_txt_matches_hand_computed_wer_and_cer(tmp_path, backend):
    ref, hyp, spk = _files(tmp_path)
    outcomes = score(ref, hyp, spk, tmp_path / "out", metrics=("wer", "cer"), backend=backend)
    assert parse_result(tmp_path / "out" / "score_wer" / "result.txt").fields == WER_FIELDS
    assert parse_result(tmp_path / "out" / "score_cer" / "result.txt").fields == CER_FIELDS
    assert outcomes["wer"].summary.err == 50.0 and outcomes["cer"].summary.err == 42.5
    assert outcomes["wer"].backend.startswith(backend)
    info = (tmp_path / "out" / "score_wer" / "scoring_info.txt").read_text()
    assert info.startswith(f"scorer: {backend}")


def test_alignment_breaks_ties_like_sclite():
    # "X Y A" vs "A B C": three substitutions cost 12, the same as matching A with 2 insertions
    # and 2 deletions; sclite prefers the diagonal, hence (C, S, D, I) = (0, 3, 0, 0).
    c = count_errors("A B C".split(), "X Y A".split())
    assert (c.corr, c.sub, c.dele, c.ins) == (0, 3, 0, 0)
    assert [op for op, _, _ in align("A B".split(), "B A".split())] == ["D", "C", "I"]
    assert count_errors(["Hello"], ["hELLO"]).corr == 1  # ASCII case is ignored, as sclite does
    assert count_errors(["É"], ["é"]).sub == 1  # non-ASCII case is not, as sclite does


# ------------------------------------------------------------------ the Python scorer against sclite


def _write_trn(path: Path, lines: Sequence[Tuple[Sequence[str], str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{' '.join(tokens)}\t({uid})\n" for tokens, uid in lines), encoding="utf-8")


def _run_real_sclite(workdir: Path, hyp_name: str = "hyp.trn") -> str:
    cmd = [str(SCLITE), "-r", "ref.trn", "trn", "-h", hyp_name, "trn", "-i", "rm", "-o", "all", "stdout"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, check=True).stdout.decode("utf-8")


def _case_mixed_errors():
    ref = [
        ("THE CAT SAT ON THE MAT".split(), "spk1-a"),
        ("HELLO WORLD".split(), "spk1-b"),
        ("A B C D".split(), "speakertwo-c"),
        ("X Y Z".split(), "speakertwo-d"),
    ]
    hyp = [
        ("THE CAT SAT ON MAT".split(), "spk1-a"),
        ("hello there world".split(), "spk1-b"),
        ([], "speakertwo-c"),
        ("X Q Z Z".split(), "speakertwo-d"),
    ]
    return ref, hyp


def _case_zero_word_speakers():
    # speakers whose references are all empty: sclite prints counts with '*', skips them in the mean
    ref = [([], "z0-1"), ([], "z0-2"), ("A".split(), "z1-1"), ([], "z2-1"), ("A B".split(), "z3-1")]
    hyp = [("B".split(), "z0-1"), ([], "z0-2"), ("A".split(), "z1-1"), ("C C".split(), "z2-1"), ([], "z3-1")]
    return ref, hyp


def _case_many_speakers_shuffled():
    rng = random.Random(7)
    ref, hyp = [], []
    for k in range(120):
        spk = f"Speaker{rng.randint(0, 45)}"
        words = [rng.choice("abcde") for _ in range(rng.randint(0, 14))]
        noisy = [rng.choice("abcdeX") if rng.random() < 0.25 else w for w in words if rng.random() < 0.9]
        if rng.random() < 0.2:
            noisy += ["extra"] * rng.randint(1, 3)
        ref.append((words, f"{spk}-Utt{k}"))
        hyp.append((noisy, f"{spk}-Utt{k}"))
    rng.shuffle(hyp)  # sclite orders speakers by their first hypothesis line
    return ref, hyp


def _case_wide_numbers_and_utf8():
    # 1000 % insertions widen the columns; UTF-8 names are laid out in bytes
    ref = [(["a"], "émile-1"), ("a b".split(), "ZOË-2")]
    hyp = [(["b"] * 11, "émile-1"), (["a"] * 25, "ZOË-2")]
    return ref, hyp


def _case_random(seed: int):
    rng = random.Random(seed)
    vocab = rng.choice([list("ab"), ["x", "y", "The", "the", "it's"], [f"w{i}" for i in range(20)]])
    ref, hyp = [], []
    for k in range(rng.randint(1, 25)):
        spk = f"s{rng.randint(0, 6)}"
        words = [rng.choice(vocab) for _ in range(rng.choice([0, 1, 3, 8, 20]))]
        mode = rng.random()
        if mode < 0.1:
            guess = []
        elif mode < 0.2:
            guess = [rng.choice(vocab) for _ in range(rng.randint(0, 30))]
        else:
            guess = [w if rng.random() < 0.7 else rng.choice(vocab) for w in words if rng.random() < 0.9]
        ref.append((words, f"{spk}-u{k}"))
        hyp.append((guess, f"{spk}-u{k}"))
    return ref, hyp


CASES = [
    ("mixed", _case_mixed_errors),
    ("zero-word speakers", _case_zero_word_speakers),
    ("many speakers", _case_many_speakers_shuffled),
    ("wide numbers, utf-8", _case_wide_numbers_and_utf8),
] + [(f"random {s}", (lambda s=s: _case_random(s))) for s in range(12)]


@needs_sclite
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_python_scorer_reproduces_sclite_byte_for_byte(tmp_path, name, make):
    ref, hyp = make()
    _write_trn(tmp_path / "ref.trn", ref)
    _write_trn(tmp_path / "hyp.trn", hyp)
    real = _run_real_sclite(tmp_path)
    mine = python_sclite_report(tmp_path / "ref.trn", tmp_path / "hyp.trn", "hyp.trn")
    assert sum_avg_line(mine) == sum_avg_line(real)
    # the summary tables and the alignment dump match too
    assert mine == real


@needs_sclite
def test_python_scorer_lays_out_a_title_wider_than_the_table_like_sclite(tmp_path):
    ref, hyp = _case_mixed_errors()
    title = "exp/a_rather_long_model_directory_name/decode_asr_beam30_ctc0.1/test/audiovisual/score_wer/hyp.trn"
    _write_trn(tmp_path / "ref.trn", ref)
    _write_trn(tmp_path / title, hyp)
    real = _run_real_sclite(tmp_path, title)
    assert python_sclite_report(tmp_path / "ref.trn", tmp_path / title, title) == real


def test_python_scorer_refuses_sclite_special_syntax(tmp_path):
    _write_trn(tmp_path / "ref.trn", [("A { B / C } D".split(), "s-1")])
    _write_trn(tmp_path / "hyp.trn", [("A B D".split(), "s-1")])
    with pytest.raises(FallbackUnsupportedError, match="install sclite"):
        python_sclite_report(tmp_path / "ref.trn", tmp_path / "hyp.trn")


# ------------------------------------------------------------------ bad input


def test_missing_and_extra_hypotheses_are_named(tmp_path):
    ref, hyp, spk = _files(tmp_path, hyp="u1 THE CAT\nu9 STRAY\n")
    with pytest.raises(ScoringInputError) as err:
        score(ref, hyp, spk, tmp_path / "out", backend="python")
    message = str(err.value)
    assert "'u2', 'u3'" in message and "'u9'" in message and "--missing_hyp empty" in message


def test_missing_hypotheses_can_be_scored_as_empty(tmp_path):
    ref, hyp, spk = _files(tmp_path, hyp="u1 THE CAT SAT ON THE MAT\nu9 STRAY\n")
    out = score(ref, hyp, spk, tmp_path / "out", backend="python", missing_hyp="empty", extra_hyp="ignore")
    # u1 correct (6), u2 and u3 all deleted (2 + 4): 6 / 12 errors
    assert out["wer"].summary.fields == ["3", "12", "50.0", "0.0", "50.0", "0.0", "50.0", "66.7"]
    notes = " ".join(out["wer"].notes)
    assert "scored as empty" in notes and "'u2', 'u3'" in notes and "'u9'" in notes
    assert "note:" in (tmp_path / "out" / "score_wer" / "scoring_info.txt").read_text()


@pytest.mark.parametrize("which", ["ref", "hyp", "utt2spk"])
def test_empty_files_are_refused(tmp_path, which):
    contents = {"ref": REF, "hyp": HYP, "utt2spk": UTT2SPK, which: "\n"}
    ref, hyp, spk = _files(tmp_path, contents["ref"], contents["hyp"], contents["utt2spk"])
    with pytest.raises(ScoringInputError, match="is empty"):
        score(ref, hyp, spk, tmp_path / "out", backend="python")


def test_duplicate_ids_and_missing_speakers_are_refused(tmp_path):
    ref, hyp, spk = _files(tmp_path, hyp=HYP + "u1 AGAIN\n")
    with pytest.raises(ScoringInputError, match="more than once: 'u1'"):
        score(ref, hyp, spk, tmp_path / "out", backend="python")
    ref, hyp, spk = _files(tmp_path, utt2spk="u1 s1\n")
    with pytest.raises(ScoringInputError, match="no speaker for these utterances: 'u2', 'u3'"):
        score(ref, hyp, spk, tmp_path / "out", backend="python")


def test_missing_sclite_is_reported_with_install_instructions(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sclite, "find_sclite", lambda: None)
    ref, hyp, spk = _files(tmp_path)
    with pytest.raises(ScliteNotFoundError, match="apt-get install sctk"):
        score(ref, hyp, spk, tmp_path / "out", backend="sclite")
    with caplog.at_level(logging.WARNING):
        out = score(ref, hyp, spk, tmp_path / "out", backend="auto")
    assert out["wer"].backend == "python" and "apt-get install sctk" in caplog.text
    assert out["wer"].summary.fields == WER_FIELDS


def test_sclite_env_var_must_point_at_an_executable(monkeypatch):
    monkeypatch.setenv("SCLITE", "/nonexistent/sclite")
    with pytest.raises(ScliteNotFoundError, match="not an executable"):
        find_sclite()


# ------------------------------------------------------------------ RESULTS.md and the CLI


def _decode_tree(tmp_path: Path) -> Path:
    ref, hyp, spk = _files(tmp_path)
    exp = tmp_path / "exp"
    for modality in ("audio", "video", "audiovisual"):
        out_dir = exp / "usr2_base" / "decode_beam30" / "test" / modality
        usr2_score.main(
            [
                "--ref_text",
                str(ref),
                "--hyp_text",
                str(hyp),
                "--utt2spk",
                str(spk),
                "--out_dir",
                str(out_dir),
                "--cer",
                "--backend",
                "python",
            ]
        )
    return exp


def test_results_md_collects_every_modality_and_metric(tmp_path):
    exp = _decode_tree(tmp_path)
    (exp / "usr2_base" / "decode_beam30" / "test" / "unrelated" / "score_wer").mkdir(parents=True)
    entries, problems = collect_results(exp)
    assert [(e.modality, e.metric) for e in entries] == [
        ("audio", "wer"),
        ("video", "wer"),
        ("audiovisual", "wer"),
        ("audio", "cer"),
        ("video", "cer"),
        ("audiovisual", "cer"),
    ]
    assert problems == []
    out = tmp_path / "RESULTS.md"
    usr2_score.main(["--results", str(exp), "--out", str(out)])
    md = out.read_text()
    assert md.startswith("<!-- Generated by")
    for line in (
        "# RESULTS",
        "## Environments",
        "- espnet version: `espnet ",
        "- pytorch version: `pytorch ",
        "- python version: `",
        "- Git hash: `",
        "## usr2_base",
        "### WER",
        "### CER",
        TABLE_HEADER,
        "|decode_beam30/test/audio|" + "|".join(WER_FIELDS) + "|",
        "|decode_beam30/test/audiovisual|" + "|".join(CER_FIELDS) + "|",
        "|decode/test set|audio (A)|video (V)|audiovisual (AV)|",
        "|decode_beam30/test|50.0|50.0|50.0|",
    ):
        assert line in md, line


def test_results_md_lists_broken_result_files_and_refuses_an_empty_tree(tmp_path):
    exp = _decode_tree(tmp_path)
    broken = exp / "usr2_base" / "decode_beam30" / "test2" / "video" / "score_wer" / "result.txt"
    broken.parent.mkdir(parents=True)
    broken.write_text("sclite crashed\n")
    entries, problems = collect_results(exp)
    assert len(entries) == 6 and len(problems) == 1 and "test2/video" in problems[0]
    assert "## Skipped result files" in render_results_md(entries, env=["- date: `x`"], problems=problems)
    (tmp_path / "empty_exp").mkdir()
    with pytest.raises(FileNotFoundError, match="no result.txt"):
        write_results_md(tmp_path / "empty_exp", tmp_path / "R.md")


def test_cli_reports_input_errors_in_one_line(tmp_path, capsys):
    ref, hyp, spk = _files(tmp_path, hyp="u1 A\n")
    with pytest.raises(SystemExit) as e:
        usr2_score.main(
            [
                "--ref_text",
                str(ref),
                "--hyp_text",
                str(hyp),
                "--utt2spk",
                str(spk),
                "--out_dir",
                str(tmp_path / "o"),
                "--backend",
                "python",
            ]
        )
    assert e.value.code == 1
    assert "usr2_score: error: 2 of 3 reference utterances have no hypothesis" in capsys.readouterr().err


def test_results_md_collects_a_decoding_dir_named_by_inference_tag(tmp_path):
    # usr2.sh --inference_tag greedy writes exp/<model>/greedy/<set>/<modality>/...: stage 13's
    # RESULTS.md must find it too, from the experiment dir and from exp/.
    exp = _decode_tree(tmp_path)
    (exp / "usr2_base" / "decode_beam30").rename(exp / "usr2_base" / "greedy")
    for root in (exp, exp / "usr2_base"):
        entries, problems = collect_results(root)
        assert len(entries) == 6 and problems == [] and {e.decode for e in entries} == {"greedy"}
