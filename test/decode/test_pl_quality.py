"""Pseudo-label quality against transcripts training never reads (usr2_pl_quality)."""

import json

import pytest

from espnet_usr2.analysis.pseudo_labels import UtterancePL, bucket_of, score
from espnet_usr2.bin import usr2_pl_quality


def _utt(key, frames, ctc, att_tf, ar, keep=1.0):
    return UtterancePL(key, frames, {"ctc": ctc, "att_tf": att_tf, "ar": ar}, {"ctc": keep, "att_tf": keep, "ar": keep})


def test_scores_per_bucket_with_loops_omissions_and_kept_share():
    refs = {"u1": "the cat sat", "u2": "a b c d e f", "u3": "one two"}
    utts = [
        _utt("u1", 40, "the cat sat", "the cat", "the the the the", keep=0.0),
        _utt("u2", 120, "a b c d e f", "a b c d e x", "a", keep=1.0),
        _utt("u3", 130, "one two", "one two", "one two"),
    ]
    table = score(utts, refs, bucket_frames=50)
    assert list(table) == ["0-49", "100-149", "all"]
    assert table["0-49"]["ctc"] == {"utterances": 1, "wer": 0.0, "loops": 0, "omissions": 0, "kept": 0.0}
    assert table["0-49"]["att_tf"]["wer"] == pytest.approx(100 / 3) and table["0-49"]["att_tf"]["omissions"] == 0
    assert table["0-49"]["ar"]["loops"] == 1  # "the" four times, once in the reference
    assert table["100-149"]["ar"]["omissions"] == 1 and table["100-149"]["ar"]["wer"] == pytest.approx(500 / 8)
    assert table["all"]["att_tf"]["wer"] == pytest.approx(200 / 11)
    assert table["all"]["ctc"]["kept"] == pytest.approx(2 / 3)
    assert bucket_of(99, 50) == (50, 100)


def test_a_clip_without_transcript_is_named():
    with pytest.raises(ValueError, match="u9"):
        score([_utt("u9", 10, "a", "a", "a")], {"u1": "a"}, 50)


def test_the_forced_teachers_labels_of_each_kind(decode_setup, tmp_path, capsys):
    """The forced tiny model: every CTC frame says "c", the decoder says a -> b -> <eos>
    after <sos> whatever it is fed; so the CTC label is "c", the AR label "ab", and teacher
    forcing on [sos, c] gives "a" then what follows "c" (nothing: the first id, the blank)."""
    config, model_file = decode_setup["forced"]
    out = tmp_path / "pl"
    usr2_pl_quality.main(
        [
            "--train_config",
            str(config),
            "--model_file",
            str(model_file),
            "--data_dir",
            str(decode_setup["data"]),
            "--out_dir",
            str(out),
            "--batch_size",
            "2",
            "--batch_norm",
            "batch",
            "running",
            "--ar_limit_over",
            "utterance",
            "batch",
            "--log_level",
            "WARNING",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 4  # batch norm x AR limit
    texts = decode_setup["texts"]
    for table in results.values():
        overall = table["all"]
        assert overall["ctc"]["utterances"] == len(texts)
        # one-word references (the toy symbols are not space separated): WER 0 where equal, else 100
        assert overall["ctc"]["wer"] == pytest.approx(100.0 * sum(t != "c" for t in texts.values()) / len(texts))
        assert overall["ar"]["wer"] == pytest.approx(100.0 * sum(t != "ab" for t in texts.values()) / len(texts))
    assert (out / "wer_vs_length.png").stat().st_size > 0
    assert "ar_limit=batch" in (out / "results.md").read_text()
    assert capsys.readouterr().out.strip().endswith("wer_vs_length.png")


def test_a_semi_supervised_runs_ema_teacher_makes_the_labels(semi_teacher_setup, decode_setup, tmp_path):
    """--model_role teacher scores the EMA teacher's network (forced here), not the student's."""
    config, model_file = semi_teacher_setup
    out = tmp_path / "pl"
    common = ["--train_config", str(config), "--model_file", str(model_file), "--data_dir", str(decode_setup["data"])]
    usr2_pl_quality.main(common + ["--out_dir", str(out), "--model_role", "teacher", "--log_level", "WARNING"])
    (table,) = json.loads((out / "results.json").read_text()).values()  # one teacher setting
    overall = table["all"]
    texts = decode_setup["texts"]
    assert overall["ctc"]["wer"] == pytest.approx(100.0 * sum(t != "c" for t in texts.values()) / len(texts))
    assert overall["ar"]["wer"] == pytest.approx(100.0 * sum(t != "ab" for t in texts.values()) / len(texts))
