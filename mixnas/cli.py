"""The `mixnas` command line.

Each subcommand lives in its own module; `COMMANDS` maps its name to its one-line help and the
"module:function" that adds its parser. Only the module of the command being run is imported,
so `mixnas --help`, `mixnas --version` and argument errors answer at once, without torch.

Every failure ends as one line on stderr and an exit code (see `describe_error`):
2 for input the user can fix (`UsageError`, any `ValueError`, a missing file, a full or
read-only disk, out of memory), 128 + signal for SIGINT/SIGTERM (finished work is saved), and
1, after the traceback, for anything else: a bug.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading
import traceback
from typing import Any, Callable

# UsageError is re-exported: commands raise it as `from mixnas.cli import UsageError`.
from mixnas.errors import Interrupted, UsageError  # noqa: F401

# name -> (one-line help, "module:function" adding the subparser and setting `func`)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train one architecture from scratch, then evaluate it",
              "mixnas.commands.train:add_train_parser"),
    "evaluate": ("the task's metrics (BLEU, accuracy, loss...) of a trained model",
                 "mixnas.commands.train:add_evaluate_parser"),
    "cost": ("parameters, FLOPs and latency of an exported model",
             "mixnas.cost.command:add_parser"),
    "train-supernet": ("train the weight-sharing supernet of a search space",
                       "mixnas.pipeline.commands:add_train_supernet_parser"),
    "collect": ("score random sub-networks with inherited weights; FLOPs, params, latency",
                "mixnas.pipeline.commands:add_collect_parser"),
    "rank-check": ("Kendall tau between inherited and briefly retrained scores",
                   "mixnas.pipeline.commands:add_rank_check_parser"),
    "fit-predictor": ("fit the score and latency predictors on run_dir/collect.csv",
                      "mixnas.pipeline.run:add_fit_predictor_parser"),
    "search": ("constrained evolutionary search (mixed, all-softmax, all-cosFormer)",
               "mixnas.pipeline.run:add_search_parser"),
    "run": ("the whole pipeline into run_dir, then report.md, pareto.png, results.json",
            "mixnas.pipeline.run:add_run_parser"),
    "export": ("write a trained model as an ONNX graph or a torch.export program",
               "mixnas.export:add_parser"),
}



def _family_commands() -> dict[str, tuple[str, str]]:
    """Commands a model family adds (e.g. `sample` for language models): the COMMANDS dict of
    its optional commands.py, read without importing the family (so without torch)."""
    import importlib.util
    from pathlib import Path
    found: dict[str, tuple[str, str]] = {}
    root = Path(__file__).resolve().parent / "families"
    for path in sorted(root.glob("*/commands.py")):
        spec = importlib.util.spec_from_file_location(f"_mixnas_family_commands_{path.parent.name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, entry in getattr(module, "COMMANDS", {}).items():
            if name in COMMANDS or name in found:
                raise RuntimeError(f"{path} defines command {name!r}, which exists already")
            found[name] = entry
    return found


COMMANDS.update(_family_commands())

EXIT_BUG = 1
EXIT_USAGE = 2
INTERRUPTED_BY_CTRL_C = "interrupted (SIGINT); finished work is saved; run the same command again to continue"
BUG = ("unexpected error; this is a bug in mixnas, please report it with the command line and the "
       "traceback above")


def _entry(name: str) -> tuple[str, str]:
    """(help, "module:function") of a command; a bare "module:function" string is accepted too."""
    entry = COMMANDS[name]
    return ("", entry) if isinstance(entry, str) else entry


def version() -> str:
    """The installed distribution's version, or "unknown" (e.g. run from a source tree)."""
    try:
        from importlib.metadata import PackageNotFoundError, version as dist_version
        try:
            return dist_version("mixnas")
        except PackageNotFoundError:
            return "unknown"
    except Exception:  # noqa: BLE001  (a broken metadata install must not break --version)
        return "unknown"


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"mixnas {version()}")  # on stdout, as argparse's own "version" action does
        parser.exit()


def command_in(argv: list[str]) -> str | None:
    """The subcommand argv runs: its first argument, if that is a known command. An option
    before it (the top-level parser has only -h/--help and --version) ends in help, the version
    or an argument error, none of which needs the command's module."""
    for arg in argv:
        if arg == "--":
            continue
        return arg if arg in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported, the others get a stub with their help."""
    parser = argparse.ArgumentParser(prog="mixnas", description="Neural architecture search over Transformers "
                                     "whose attention kind is searched per layer.")
    parser.add_argument("--version", action=_VersionAction, help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        help_text, target = _entry(name)
        if name == command:
            module, func = target.split(":")
            getattr(importlib.import_module(module), func)(sub)
        else:
            sub.add_parser(name, help=help_text).set_defaults(func=None)
    return parser


# ---------------------------------------------------------------- errors -> one line + exit code
_NO_SPACE = "free space or set run_dir/save_dir to another filesystem"
_PERMISSIONS = "fix its permissions, or choose a run_dir/save_dir you can write"
_FS_ERRORS: dict[int, tuple[str, str, str]] = {  # errno -> (verb, what happened, the fix)
    errno.EROFS: ("write", "read-only file system", "choose a writable run_dir/save_dir"),
    errno.ENOSPC: ("write", "no space left on device", _NO_SPACE),
    errno.EACCES: ("access", "permission denied", _PERMISSIONS),
    errno.EPERM: ("access", "operation not permitted", _PERMISSIONS),
}
if hasattr(errno, "EDQUOT"):  # not on Windows
    _FS_ERRORS[errno.EDQUOT] = ("write", "disk quota exceeded", _NO_SPACE)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0].strip() if lines else type(e).__name__


def _path_of(e: OSError) -> str:
    path = str(e.filename)
    if e.filename2 is not None:
        path += f" -> {e.filename2}"
    return path


def _is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":  # torch's CUDA OOM
        return True
    if isinstance(e, RuntimeError):  # older torch: RuntimeError("CUDA out of memory ..."), CPU allocator
        text = _first_line(e).lower()
        return "out of memory" in text or "can't allocate memory" in text
    return False


def describe_error(e: BaseException) -> tuple[str, int]:
    """(one line for stderr, after "mixnas CMD: ", exit code) for an exception that ended a
    command. Exit code `EXIT_BUG` means a bug: the caller prints the traceback first."""
    if isinstance(e, Interrupted):
        return _first_line(e), e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return INTERRUPTED_BY_CTRL_C, 128 + signal.SIGINT
    if _is_out_of_memory(e):
        detail = _first_line(e) if str(e).strip() else ""
        detail = f" ({detail})" if detail and detail != type(e).__name__ else ""
        return f"error: out of memory{detail}; lower the batch size / max_tokens", EXIT_USAGE
    if isinstance(e, (ValueError, FileNotFoundError)):  # UsageError, dataconf.ConfigError
        return f"error: {_first_line(e)}", EXIT_USAGE
    if isinstance(e, OSError) and e.errno in _FS_ERRORS:
        verb, what, fix = _FS_ERRORS[e.errno]
        target = f"{verb} {_path_of(e)}" if e.filename is not None else verb
        return f"error: cannot {target}: {what}; {fix}", EXIT_USAGE
    if isinstance(e, OSError) and e.filename is not None:
        what = ((e.strerror or "").strip() or _first_line(e)).splitlines()[0]
        return f"error: {_path_of(e)}: {what[:1].lower() + what[1:]}", EXIT_USAGE
    return BUG, EXIT_BUG


def report_error(e: BaseException, command: str | None) -> int:
    """Print `e` as one line on stderr (a bug: its traceback first) and return the exit code."""
    line, code = describe_error(e)
    sys.stdout.flush()
    if code == EXIT_BUG:
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    print(f"mixnas {command}: {line}" if command else f"mixnas: {line}", file=sys.stderr, flush=True)
    return code


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _install_sigterm() -> Callable[[], None]:
    """SIGTERM raises `Interrupted` (so `finally` blocks run and locks are released) until the
    returned function restores the previous handler. A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupted)

    def restore() -> None:  # None: a handler not installed from Python; the default is closest
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return restore


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_in(argv)
    restore = _install_sigterm()
    try:
        args = build_parser(command).parse_args(argv)
        if args.func is None:  # a stub was chosen after all: parse again with the real parser
            args = build_parser(args.command).parse_args(argv)
        command = args.command
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`mixnas cost DIR | head -2`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit-time flush does not fail again
        return 128 + signal.SIGPIPE
    except (Exception, KeyboardInterrupt, Interrupted) as e:
        return report_error(e, command)
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
