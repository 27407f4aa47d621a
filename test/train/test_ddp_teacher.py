"""Two-process DDP (gloo, CPU): disjoint unlabelled batches, identical teachers after every step.

The ranks run the real pieces -- the semi-supervised iterator factory, the model with its
USR 2.0 objective wrapped in DistributedDataParallel, and USR2Trainer's EMA hook on the
optimiser -- for every step of one epoch.
"""
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def _worker(rank: int, root: str, port: int, tiny_config: str, token_list: list) -> None:
    from espnet2.train.distributed_utils import DistributedOption
    from torch.nn.parallel import DistributedDataParallel

    from espnet_usr2.tasks.usr2 import USR2Task
    from espnet_usr2.train.trainer import _ema_hook
    from espnet_usr2.tasks.config import parse_training_args

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    root = Path(root)
    data = []
    for option, name, with_text in (("--train_data_path_and_name_and_type", "lab", True),
                                    ("--unlabelled_data_path_and_name_and_type", "unl", False)):
        data += [option, f"{root / name}/wav.scp,speech,sound", option, f"{root / name}/video.scp,video,roi_video"]
        data += [option, f"{root / name}/text,text,text"] if with_text else []
    args = parse_training_args(tiny_config, token_list, [
        "--token_type", "char", "--semi", "usr2", "--semi_conf", "threshold=0.0", "--semi_conf", "p_ar=0.5",
        "--batch_type", "semi_supervised", "--labelled_batch_frames", "40", "--unlabelled_batch_frames", "60",
        "--train_shape_file", str(root / "lab" / "video_shape"),
        "--unlabelled_shape_file", str(root / "unl" / "video_shape"), *data])
    torch.manual_seed(0)  # same initial student on both ranks (DDP also broadcasts it)
    model = USR2Task.build_model(args)
    factory = USR2Task.build_iter_factory(args, DistributedOption(distributed=True), "train")
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    optimizer.register_step_post_hook(_ema_hook(model))
    record = {"keys": [], "teachers_equal": [], "modes": []}
    for keys, batch in factory.build_iter(1):
        torch.manual_seed(100 * rank + len(record["keys"]))  # ranks augment differently, as in real runs
        loss, stats, _ = ddp(**batch)
        loss.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        flat = torch.cat([p.detach().flatten() for p in model.teacher.model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(WORLD)]
        dist.all_gather(gathered, flat)
        record["teachers_equal"].append(all(torch.equal(gathered[0], g) for g in gathered))
        record["keys"].append([k for k, flag in zip(keys, batch["labelled"].flatten().tolist()) if flag == 0])
        record["modes"].append(float(stats["pl_mode_ar"]))
    record["num_updates"] = int(model.teacher.num_updates)
    (root / f"rank{rank}.json").write_text(json.dumps(record))
    # both ranks leave together: a rank tearing gloo down while the other still talks to it
    # aborted the process now and then ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


def test_two_rank_ddp_keeps_teachers_identical(write_toy_corpus, write_video_shapes, free_port, tiny_config,
                                               token_list, tmp_path):
    write_toy_corpus(tmp_path / "lab", num_utts=12, seed=0)
    write_toy_corpus(tmp_path / "unl", num_utts=16, seed=3, prefix="unl")
    (tmp_path / "unl" / "text").unlink()
    for name in ("lab", "unl"):
        write_video_shapes(tmp_path / name)
    mp.spawn(_worker, args=(str(tmp_path), free_port, str(tiny_config), token_list), nprocs=WORLD, join=True)
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    steps = [len(r["keys"]) for r in records]
    assert steps[0] == steps[1] > 0
    assert all(all(r["teachers_equal"]) for r in records)
    assert records[0]["num_updates"] == records[1]["num_updates"] == steps[0]
    assert records[0]["modes"] == records[1]["modes"]  # the mixed-sampling draw agrees across ranks
    seen = [set(k for step in r["keys"] for k in step) for r in records]
    assert not seen[0] & seen[1]
    all_unlabelled = {line.split()[0] for line in (tmp_path / "unl" / "wav.scp").read_text().splitlines()}
    assert seen[0] | seen[1] == all_unlabelled
