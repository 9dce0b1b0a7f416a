"""The `mixnas` command line. Each subcommand lives in its own module and registers itself
through `COMMANDS` (name -> "module:function" adding its parser); errors the user can fix
are `UsageError`s, printed as one line with exit code 2."""
from __future__ import annotations

import argparse
import importlib
import sys


class UsageError(Exception):
    """A problem in the user's input (config, path, value): one line, exit code 2."""


# name -> (module, function that adds the subparser and sets `func`)
COMMANDS: dict[str, str] = {
    "train": "mixnas.commands.train:add_train_parser",
    "evaluate": "mixnas.commands.train:add_evaluate_parser",
    "cost": "mixnas.cost.command:add_parser",
    "train-supernet": "mixnas.pipeline.commands:add_train_supernet_parser",
    "collect": "mixnas.pipeline.commands:add_collect_parser",
    "rank-check": "mixnas.pipeline.commands:add_rank_check_parser",
    "fit-predictor": "mixnas.pipeline.run:add_fit_predictor_parser",
    "search": "mixnas.pipeline.run:add_search_parser",
    "run": "mixnas.pipeline.run:add_run_parser",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixnas", description="Neural architecture search over Transformers whose attention kind is searched per layer.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, target in COMMANDS.items():
        module, func = target.split(":")
        getattr(importlib.import_module(module), func)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError) as e:
        print(f"mixnas {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
