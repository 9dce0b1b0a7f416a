"""`mixnas sample`: generate text with an exported language model.

    mixnas sample --model runs/shakespeare_char/model --prompt "ROMEO:" --tokens 500 --temperature 0.8 --top-k 20

The model directory (arch.yaml + model.pt, as `mixnas train` exports it; a run directory
holding model/ works too) carries its vocabulary in its config, so nothing else is needed.
The prompt defaults to a newline; characters outside the vocabulary are an error (exit 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _model_dir(path: str) -> Path:
    d = Path(path)
    if not (d / "model.pt").is_file() and (d / "model" / "model.pt").is_file():
        return d / "model"  # a run directory
    return d


def run(args: argparse.Namespace) -> int:
    import torch

    from mixnas.models import load_model

    if args.tokens < 0:
        raise ValueError(f"--tokens must be >= 0, got {args.tokens}")
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0 (0: always the most likely character), got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    model = load_model(_model_dir(args.model))
    config = getattr(model, "config", None)
    if not hasattr(model, "generate") or not hasattr(config, "vocab"):
        raise ValueError(f"{args.model} holds a {type(model).__name__}, not a character language model")
    prompt = args.prompt if args.prompt is not None else ("\n" if "\n" in config.vocab else config.vocab[0])
    if not prompt:
        raise ValueError("--prompt must hold at least one character")
    ids = torch.tensor([config.encode(prompt)], dtype=torch.long)
    generator = torch.Generator().manual_seed(args.seed)
    out = model.generate(ids, args.tokens, temperature=args.temperature, top_k=args.top_k, generator=generator)
    print(config.decode(out[0].tolist()))
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
