"""`mixnas sample`: generate text with an exported language model.

    mixnas sample --model runs/shakespeare_char/model --prompt "ROMEO:" --tokens 500 --temperature 0.8 --top-k 20

The model directory (arch.yaml + model.pt, as `mixnas train` exports it; a run directory
holding model/ works too) carries its vocabulary in its config, so nothing else is needed.
The prompt defaults to a newline; characters outside the vocabulary are an error (exit 2).
It prints what `mixnas.load(model_dir).generate(...)` returns (mixnas/families/lm/inference.py).
"""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from mixnas.models.io import load_inference

    generator = load_inference(args.model, task="language-modeling")
    print(generator.generate(args.prompt, args.tokens, temperature=args.temperature, top_k=args.top_k,
                             seed=args.seed))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate text with a trained language model")
    p.add_argument("--model", required=True, help="an exported model directory (arch.yaml + model.pt) or its run directory")
    p.add_argument("--prompt", default=None, help="text to continue (default: a newline)")
    p.add_argument("--tokens", type=int, default=500, help="characters to generate (default 500)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; 0 picks the most likely (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely characters only")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.set_defaults(func=run)
