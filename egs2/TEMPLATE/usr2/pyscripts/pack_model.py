#!/usr/bin/env python3
"""Stage 14: pack a trained model into one zip, as ESPnet's ``pack`` does.

The archive keeps the files at their recipe-relative paths (exp/..., data/token_list/...)
and rewrites ``token_list`` and ``bpemodel`` in the packed config.yaml to those paths, so
that after ``unzip`` in an empty directory::

    python -m espnet_usr2.bin.usr2_inference --train_config exp/<model>/config.yaml \
        --model_file exp/<model>/<model_file> ...

works from there. ``meta.yaml`` lists the files as ESPnet's ``pack`` does (``yaml_files:
train_config``, ``files: model_file``, so ESPnet's ``unpack`` reads the archive) and records
versions and the packing time.
"""

import argparse
import datetime
import os
import sys
import zipfile
from pathlib import Path

import yaml


def _rel(path: str) -> str:
    p = Path(path)
    return os.path.relpath(p.resolve(), Path.cwd().resolve()) if p.is_absolute() else os.path.normpath(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_config", required=True)
    p.add_argument("--model_file", required=True)
    p.add_argument("--outpath", required=True)
    p.add_argument("--option", action="append", default=[], help="further files to pack (RESULTS.md, ...)")
    args = p.parse_args(argv)

    with open(args.train_config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    files = {_rel(args.model_file): args.model_file}
    for key in ("token_list", "bpemodel"):
        value = config.get(key)
        if isinstance(value, str) and value:
            if not Path(value).is_file():
                print(f"pack_model.py: {key} {value} (from {args.train_config}) does not exist", file=sys.stderr)
                return 1
            config[key] = _rel(value)
            files[config[key]] = value
    for extra in args.option:
        if not Path(extra).is_file():
            print(f"pack_model.py: {extra} does not exist", file=sys.stderr)
            return 1
        files[_rel(extra)] = extra
    try:
        from importlib.metadata import version

        versions = {m: version(m) for m in ("espnet", "torch", "espnet_usr2")}
    except Exception:  # a package without metadata: record what is known
        versions = {}
    # ESPnet's meta.yaml keys: espnet2.main_funcs.pack_funcs.unpack (used by
    # USR2Speech2Text.from_pretrained and usr2_transcribe) finds the files through them.
    meta = {
        "yaml_files": {"train_config": _rel(args.train_config)},
        "files": {"model_file": _rel(args.model_file)},
        "versions": versions,
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
    }

    Path(args.outpath).parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(args.outpath, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(_rel(args.train_config), yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        for arc, src in files.items():
            z.write(src, arc)
        z.writestr("meta.yaml", yaml.safe_dump(meta, sort_keys=False))
    print(f"pack_model.py: {args.outpath}: " + ", ".join([_rel(args.train_config), *files, "meta.yaml"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
