"""COMAT through ``python -m espnet_usr2.bin.usr2_train``: a tiny run with an ESPnet LM as the
PLM lowers the COMAT loss, and the saved model reloads for decoding without the PLM's weights."""

import torch
from espnet2.train.reporter import Reporter

from espnet_usr2.tasks.usr2 import USR2Task


def test_tiny_run_with_an_espnet_lm_lowers_the_comat_loss(
    tiny_config, token_list, write_toy_corpus, usr2_train, write_espnet_lm, tmp_path
):
    root = tmp_path
    write_toy_corpus(root / "train", num_utts=16, seed=0)
    write_toy_corpus(root / "valid", num_utts=4, seed=1, prefix="val")
    (root / "tokens.txt").write_text("\n".join(token_list) + "\n")
    lm_config, lm_file = write_espnet_lm(root / "lm", token_list, seed=3)
    common = [
        "--config",
        str(tiny_config),
        "--token_list",
        str(root / "tokens.txt"),
        "--token_type",
        "char",
        *usr2_train.data_args(root),
        *usr2_train.quiet,
    ]
    usr2_train(
        [
            *common,
            "--collect_stats",
            "true",
            "--output_dir",
            str(root / "stats"),
            "--train_shape_file",
            str(root / "train" / "text"),
            "--valid_shape_file",
            str(root / "valid" / "text"),
        ],
        root,
    )
    shapes = [
        "--train_shape_file",
        str(root / "stats" / "train" / "video_shape"),
        "--valid_shape_file",
        str(root / "stats" / "valid" / "video_shape"),
    ]
    comat = f"{{plm: espnet_lm, lm_train_config: {lm_config}, lm_file: {lm_file}, weight: 1.0}}"
    usr2_train(
        [
            *common,
            *shapes,
            "--output_dir",
            str(root / "exp"),
            "--max_epoch",
            "3",
            "--batch_size",
            "4",
            "--scheduler_conf",
            "warmup_steps=10",
            "--comat_conf",
            comat,
        ],
        root,
    )

    reporter = Reporter()
    reporter.load_state_dict(torch.load(root / "exp" / "checkpoint.pth", weights_only=False)["reporter"])
    for m in ("v", "a", "av"):
        first, last = (reporter.get_value("train", f"loss_comat_{m}", e) for e in (1, 3))
        assert last < 0.8 * first, (m, first, last)
        assert reporter.get_value("train", f"comat_skipped_{m}", 3) == 0.0
        assert reporter.get_value("valid", f"loss_comat_{m}", 3) < reporter.get_value("valid", f"loss_comat_{m}", 1)

    (root / "lm").rename(root / "lm_elsewhere")  # decoding on a machine without the PLM
    model, _ = USR2Task.build_model_from_file(root / "exp" / "config.yaml", root / "exp" / "valid.loss.best.pth", "cpu")
    assert model.comat is not None and model.comat.plm.module is None  # building for decoding reads no PLM
    state = torch.load(root / "exp" / "valid.loss.best.pth", map_location="cpu")
    assert not any(k.startswith("comat.plm") for k in state)
