"""Two-process DDP (gloo, CPU): disjoint unlabelled batches, identical teachers after every step.

The ranks run the real pieces -- the semi-supervised iterator factory, the model with its
USR 2.0 objective wrapped in DistributedDataParallel, and USR2Trainer's EMA hook on the
optimiser -- for every step of one epoch.
"""

from pathlib import Path

import torch
from ddp_teachers import assert_teachers_identical, join_group, leave_group, run_ranks, train_epoch


def _worker(rank: int, root: str, port: int, tiny_config: str, token_list: list) -> None:
    from espnet2.train.distributed_utils import DistributedOption

    from espnet_usr2.tasks.config import parse_training_args
    from espnet_usr2.tasks.usr2 import USR2Task

    join_group(rank, port)
    root = Path(root)
    data = []
    for option, name, with_text in (
        ("--train_data_path_and_name_and_type", "lab", True),
        ("--unlabelled_data_path_and_name_and_type", "unl", False),
    ):
        data += [option, f"{root / name}/wav.scp,speech,sound", option, f"{root / name}/video.scp,video,roi_video"]
        data += [option, f"{root / name}/text,text,text"] if with_text else []
    args = parse_training_args(
        tiny_config,
        token_list,
        [
            "--token_type",
            "char",
            "--semi",
            "usr2",
            "--semi_conf",
            "threshold=0.0",
            "--semi_conf",
            "p_ar=0.5",
            "--batch_type",
            "semi_supervised",
            "--labelled_batch_frames",
            "40",
            "--unlabelled_batch_frames",
            "60",
            "--train_shape_file",
            str(root / "lab" / "video_shape"),
            "--unlabelled_shape_file",
            str(root / "unl" / "video_shape"),
            *data,
        ],
    )
    torch.manual_seed(0)  # same initial student on both ranks (DDP also broadcasts it)
    model = USR2Task.build_model(args)
    factory = USR2Task.build_iter_factory(args, DistributedOption(distributed=True), "train")
    record = train_epoch(
        model,
        factory,
        rank,
        lambda keys, batch, stats: {
            "keys": [k for k, flag in zip(keys, batch["labelled"].flatten().tolist()) if flag == 0],
            "modes": float(stats["pl_mode_ar"]),
        },
    )
    leave_group(root, rank, record)


def test_two_rank_ddp_keeps_teachers_identical(
    write_toy_corpus, write_video_shapes, free_port, tiny_config, token_list, tmp_path
):
    write_toy_corpus(tmp_path / "lab", num_utts=12, seed=0)
    write_toy_corpus(tmp_path / "unl", num_utts=16, seed=3, prefix="unl")
    (tmp_path / "unl" / "text").unlink()
    for name in ("lab", "unl"):
        write_video_shapes(tmp_path / name)
    records = run_ranks(_worker, tmp_path, free_port, str(tiny_config), token_list)
    assert_teachers_identical(records)
    assert records[0]["modes"] == records[1]["modes"]  # the mixed-sampling draw agrees across ranks
