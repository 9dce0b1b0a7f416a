"""`mixnas translate`: translate sentences with a trained translation model.

    mixnas translate --model runs/multi30k_hat/model < sources.en > translations.de
    mixnas translate --model runs/multi30k_hat --input test.en --output test.hyp --beam 1

One sentence per input line (UTF-8; lines split on "\\n" only, as the corpus reader does), one
detokenized translation per output line, in order. The model directory holds its SentencePiece
model and beam settings (`mixnas train` writes them); --beam/--lenpen/--max-len-a/--max-len-b
override those settings.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixnas.errors import UsageError


def _read_lines(args: argparse.Namespace) -> list[str]:
    if args.input is None:
        text = sys.stdin.read()
    else:
        path = Path(args.input)
        if not path.is_file():
            raise UsageError(f"--input {path} does not exist")
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            raise UsageError(f"{path} line {line} is not valid UTF-8; re-encode the file as UTF-8") from None
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def run(args: argparse.Namespace) -> int:
    from mixnas.fileio import atomic_write_text
    from mixnas.models.io import load_inference

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    translator = load_inference(args.model, task="translation")
    translator.settings(beam=args.beam, lenpen=args.lenpen, max_len_a=args.max_len_a,
                        max_len_b=args.max_len_b)  # bad values fail before the input is read
    lines = _read_lines(args)
    options = dict(beam=args.beam, lenpen=args.lenpen, max_len_a=args.max_len_a, max_len_b=args.max_len_b,
                   batch_size=args.batch_size)
    if args.output is None:
        for start in range(0, len(lines), args.batch_size):  # stream: one batch at a time
            for hyp in translator.translate(lines[start:start + args.batch_size], **options):
                sys.stdout.write(hyp + "\n")
            sys.stdout.flush()
    else:
        hyps = translator.translate(lines, **options)
        atomic_write_text(args.output, "".join(h + "\n" for h in hyps))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate sentences with a trained translation model")
    p.add_argument("--model", required=True,
                   help="a saved model directory (as `mixnas train` writes run/model) or its run directory")
    p.add_argument("--input", default=None, help="file of source sentences, one per line (default: stdin)")
    p.add_argument("--output", default=None, help="write the translations here (default: stdout)")
    p.add_argument("--beam", type=int, default=None, help="beam size; 1 is greedy (default: the model's, as trained)")
    p.add_argument("--lenpen", type=float, default=None, help="length penalty (default: the model's)")
    p.add_argument("--max-len-a", type=float, default=None, help="max output length a * source length + b: a")
    p.add_argument("--max-len-b", type=int, default=None, help="max output length a * source length + b: b")
    p.add_argument("--batch-size", type=int, default=32, help="sentences decoded together (default 32)")
    p.set_defaults(func=run)
