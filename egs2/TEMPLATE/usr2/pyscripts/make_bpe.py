#!/usr/bin/env python3
"""Stage 5: train a SentencePiece model on transcripts and write ESPnet's token list.

tokens.txt, one token per line, line number = id: ``<blank>`` (0, CTC blank), ``<unk>``
(1), every piece of the model in SentencePiece's order (its own <unk>/<s>/</s> left out),
``<sos/eos>`` last, as ESPnet's asr.sh does it.
"""

import argparse
import sys
from pathlib import Path

import sentencepiece as spm


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", required=True, nargs="+", help="Kaldi text file(s): uttid WORDS")
    p.add_argument("--outdir", required=True, type=Path)
    p.add_argument("--nbpe", type=int, default=1000)
    p.add_argument("--model_type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    p.add_argument("--character_coverage", type=float, default=1.0)
    p.add_argument("--input_sentence_size", type=int, default=100000000)
    args = p.parse_args(argv)

    args.outdir.mkdir(parents=True, exist_ok=True)
    train_txt = args.outdir / "train.txt"
    n = 0
    with train_txt.open("w", encoding="utf-8") as out:
        for path in args.text:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                parts = line.split(maxsplit=1)
                if len(parts) == 2 and parts[1].strip():
                    out.write(parts[1].strip() + "\n")
                    n += 1
    if n == 0:
        print(f"make_bpe.py: no transcripts in {' '.join(args.text)}", file=sys.stderr)
        return 1
    # hard_vocab_limit=false: on a small corpus (the mini recipe) --nbpe is an upper
    # bound instead of an error when the text cannot support that many pieces.
    spm.SentencePieceTrainer.train(
        input=str(train_txt),
        model_prefix=str(args.outdir / "bpe"),
        vocab_size=args.nbpe,
        model_type=args.model_type,
        character_coverage=args.character_coverage,
        input_sentence_size=args.input_sentence_size,
        shuffle_input_sentence=True,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(args.outdir / "bpe.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_unknown(i) or sp.is_control(i))]
    tokens = ["<blank>", "<unk>", *pieces, "<sos/eos>"]
    (args.outdir / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    print(
        f"make_bpe.py: {n} sentences -> {args.outdir}/bpe.model ({sp.get_piece_size()} pieces), "
        f"{args.outdir}/tokens.txt ({len(tokens)} tokens)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
