"""The YAML that the comparison harness (egs2/mini_lrs3/usr2/run_compare.sh) reads, as shell words::

    python -m espnet_usr2.bin.usr2_compare_conf options conf/compare/usr2.yaml usr2_train --set seed=1
    python -m espnet_usr2.bin.usr2_compare_conf value conf/compare/usr2.yaml usr2_sh.semi_type
    python -m espnet_usr2.bin.usr2_compare_conf fuses_lm conf/decode_mini_lm.yaml

A method's conf (``conf/compare/<method>.yaml``) has two mappings: ``usr2_sh``, options of usr2.sh,
and ``usr2_train``, arguments of usr2_train added after the harness's own. ``options`` prints one
of them as a line of options in the file's order; a nested mapping becomes ESPnet's
``--semi_conf p_ar=0.5`` form, one option per leaf (``unlabelled_weights.a=0.5`` for a deeper one).
``${name}`` in a value is a harness setting given with ``--set name=value`` (the run's seed, ...).
"""

from __future__ import annotations

import argparse
import string
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

PARTS = ("usr2_sh", "usr2_train")


def load_mapping(path: str) -> dict[str, Any]:
    """The YAML file at ``path`` as a mapping (an empty file is an empty one)."""
    conf = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(conf, dict):
        raise TypeError(f"{path}: not a YAML mapping")
    return conf


def scalar_word(value: Any, settings: Mapping[str, str], where: str) -> str:
    """One option value as the shell word the harness passes on: YAML booleans as true / false
    (as ESPnet's parsers read them), ``${name}`` replaced by the harness setting."""
    if isinstance(value, (dict, list)):
        raise TypeError(f"{where}: a value must be a scalar, got {value!r}")
    if isinstance(value, bool):
        word = str(value).lower()
    elif value is None:
        word = "null"
    else:
        try:
            word = string.Template(str(value)).substitute(settings)
        except KeyError as e:
            raise ValueError(f"{where}: no harness setting {e} (given: {', '.join(settings) or 'none'})") from None
    if not word or any(c.isspace() for c in word):  # the harness splits the options at whitespace
        raise ValueError(f"{where}: {word!r} must be one non-empty word")
    return word


def leaves(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested mapping, in the file's order."""
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def usr2_sh_options(opts: Mapping[str, Any], settings: Mapping[str, str]) -> list[str]:
    """usr2.sh options; an empty value as ``--name=`` (the one form of it that survives the
    harness's word splitting, e.g. ``--unlabelled_sets=``: no unlabelled data)."""
    words = []
    for name, value in opts.items():
        if value == "" or value is None:
            words.append(f"--{name}=")
        else:
            words += [f"--{name}", scalar_word(value, settings, f"usr2_sh.{name}")]
    return words


def usr2_train_options(opts: Mapping[str, Any], settings: Mapping[str, str]) -> list[str]:
    """usr2_train arguments: ``--name value``, and ``--name key=value`` per leaf of a mapping."""
    words = []
    for name, value in opts.items():
        if isinstance(value, dict):
            for key, leaf in leaves(value):
                words += [f"--{name}", f"{key}={scalar_word(leaf, settings, f'usr2_train.{name}.{key}')}"]
        else:
            words += [f"--{name}", scalar_word(value, settings, f"usr2_train.{name}")]
    return words


def method_options(path: str, part: str, settings: Mapping[str, str]) -> list[str]:
    """The ``part`` (usr2_sh or usr2_train) of the method conf at ``path`` as option words."""
    conf = load_mapping(path)
    unknown = set(conf) - set(PARTS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (a method conf has {' and '.join(PARTS)})")
    opts = conf.get(part) or {}
    if not isinstance(opts, dict):
        raise TypeError(f"{path}: {part} must be a mapping of options")
    render = usr2_sh_options if part == "usr2_sh" else usr2_train_options
    return render(opts, settings)


def dotted_value(path: str, key: str, default: str | None) -> Any:
    """The value at a dotted ``key`` of the YAML mapping at ``path``; ``default`` where it is absent."""
    node: Any = load_mapping(path)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is None:
                raise ValueError(f"{path}: no {key}")
            return default
        node = node[part]
    return node


def fuses_lm(path: str) -> bool:
    """Whether the decoding config at ``path`` fuses an LM (lm_weight > 0; absent or null is 0)."""
    return float(load_mapping(path).get("lm_weight") or 0) > 0


def parse_settings(pairs: Sequence[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--set {pair!r} is not NAME=VALUE")
        settings[name] = value
    return settings


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m espnet_usr2.bin.usr2_compare_conf",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    op = sub.add_parser("options", help="a method conf's usr2.sh or usr2_train options, one line")
    op.add_argument("conf")
    op.add_argument("part", choices=PARTS)
    op.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a harness setting that ${NAME} in the conf stands for (repeatable)",
    )
    vp = sub.add_parser("value", help="the value at a dotted key of a YAML mapping")
    vp.add_argument("conf")
    vp.add_argument("key")
    vp.add_argument("--default", default=None, help="printed when the key is absent (else an error)")
    fp = sub.add_parser("fuses_lm", help="true if a decoding config sets lm_weight > 0, else false")
    fp.add_argument("conf")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        if args.command == "options":
            print(" ".join(method_options(args.conf, args.part, parse_settings(args.settings))))
        elif args.command == "value":
            value = dotted_value(args.conf, args.key, args.default)
            print(str(value).lower() if isinstance(value, bool) else value)
        else:
            print(str(fuses_lm(args.conf)).lower())
    except (OSError, TypeError, ValueError, yaml.YAMLError) as e:
        print(f"usr2_compare_conf: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
