"""The command line's contract: every failure is one stderr line and an exit code (a bug: the
traceback, then one line, exit 1); SIGTERM unwinds through `finally`; --help, --version and
argument errors import none of the heavy libraries."""
import argparse
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types

import pytest

from mixnas import cli
from mixnas.dataconf import ConfigError
from mixnas.errors import Interrupted, UsageError

FIX_SPACE = "free space or set run_dir/save_dir to another filesystem"


# ---------------------------------------------------------------- exception -> (line, exit code)
class OutOfMemoryError(RuntimeError):
    """Named like torch.OutOfMemoryError (CUDA), without importing torch's."""


@pytest.mark.parametrize("exc, line, code", [
    (UsageError("bad value 3 for x; use 1 or 2"), "error: bad value 3 for x; use 1 or 2", 2),
    (ValueError("first line\nsecond line\nthird"), "error: first line", 2),
    (ConfigError("unknown key 'bogus'"), "error: unknown key 'bogus'", 2),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/such"),
     "error: [Errno 2] No such file or directory: '/no/such'", 2),
    (Interrupted(signal.SIGTERM), "stopped by SIGTERM; finished work is saved, run the same command again to continue", 143),
    (Interrupted(signal.SIGINT, "stopped at update 7; checkpoint saved\nmore"), "stopped at update 7; checkpoint saved", 130),
    (KeyboardInterrupt(), "interrupted (SIGINT); finished work is saved; run the same command again to continue", 130),
    (OSError(errno.ENOSPC, "No space left on device", "/x/y"),
     f"error: cannot write /x/y: no space left on device; {FIX_SPACE}", 2),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/x/y"), f"error: cannot write /x/y: disk quota exceeded; {FIX_SPACE}", 2),
    (OSError(errno.EROFS, "Read-only file system", "runs/x/checkpoint_00000010.pt"),
     "error: cannot write runs/x/checkpoint_00000010.pt: read-only file system; choose a writable run_dir/save_dir", 2),
    (OSError(errno.ENOSPC, "No space left on device"), f"error: cannot write: no space left on device; {FIX_SPACE}", 2),
    (OSError(errno.ENOSPC, "No space left on device", "/d/.a.pt.tmp", None, "/d/a.pt"),
     f"error: cannot write /d/.a.pt.tmp -> /d/a.pt: no space left on device; {FIX_SPACE}", 2),
    (PermissionError(errno.EACCES, "Permission denied", "/root/run"),
     "error: cannot access /root/run: permission denied; fix its permissions, or choose a run_dir/save_dir you can write", 2),
    (PermissionError(errno.EPERM, "Operation not permitted", "/x"),
     "error: cannot access /x: operation not permitted; fix its permissions, or choose a run_dir/save_dir you can write", 2),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "runs/x"), "error: runs/x: is a directory", 2),
    (MemoryError(), "error: out of memory; lower the batch size / max_tokens", 2),
    (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\ndetails"),
     "error: out of memory (CUDA out of memory. Tried to allocate 2.00 GiB); lower the batch size / max_tokens", 2),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried"),
     "error: out of memory ([enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
     "you tried); lower the batch size / max_tokens", 2),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), cli.BUG, 1),  # OSError, no path
    (KeyError("x"), cli.BUG, 1),
    (RuntimeError("shape mismatch"), cli.BUG, 1),
])
def test_describe_error(exc, line, code):
    assert cli.describe_error(exc) == (line, code)


# ---------------------------------------------------------------- through main(), with fake commands
def _enospc():
    raise OSError(errno.ENOSPC, "No space left on device", "/x/y")


def _sigterm_self(state):
    try:
        assert signal.getsignal(signal.SIGTERM) is cli._raise_interrupted, "main installed no SIGTERM handler"
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(500):  # the handler runs at the next bytecode boundary
            time.sleep(0.01)
        state["finished"] = True
    finally:
        state["finally_ran"] = True


def _raise(exc):
    raise exc


@pytest.fixture
def fake(monkeypatch):
    """Command `fake KIND`, from a module registered in COMMANDS like the real ones."""
    state: dict = {}
    actions = {
        "ok": lambda: print("done"),
        "usage": lambda: _raise(UsageError("no pipeline config 'x'\nsecond line")),
        "enospc": _enospc,
        "memory": lambda: _raise(MemoryError()),
        "ctrl-c": lambda: _raise(KeyboardInterrupt()),
        "interrupted": lambda: _raise(Interrupted(signal.SIGINT, "stopped at update 3; checkpoint saved")),
        "sigterm": lambda: _sigterm_self(state),
        "bug": lambda: _raise(ZeroDivisionError("division by zero")),
    }

    def add(sub):
        p = sub.add_parser("fake", help="a test command")
        p.add_argument("kind", choices=sorted(actions))
        p.set_defaults(func=lambda args: actions[args.kind]())

    module = types.ModuleType("mixnas_fake_command")
    module.add = add
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("a test command", f"{module.__name__}:add"))
    return state


@pytest.mark.parametrize("kind, code, line", [
    ("ok", 0, None),
    ("usage", 2, "mixnas fake: error: no pipeline config 'x'"),
    ("enospc", 2, f"mixnas fake: error: cannot write /x/y: no space left on device; {FIX_SPACE}"),
    ("memory", 2, "mixnas fake: error: out of memory; lower the batch size / max_tokens"),
    ("ctrl-c", 130, "mixnas fake: interrupted (SIGINT); finished work is saved; run the same command again to continue"),
    ("interrupted", 130, "mixnas fake: stopped at update 3; checkpoint saved"),
])
def test_exit_paths_are_one_line(fake, capsys, kind, code, line):
    assert cli.main(["fake", kind]) == code
    err = capsys.readouterr().err
    assert err.splitlines() == ([line] if line else [])


def test_bug_prints_traceback_then_one_line(fake, capsys):
    assert cli.main(["fake", "bug"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Traceback (most recent call last):" and "ZeroDivisionError: division by zero" in err
    assert err[-1] == f"mixnas fake: {cli.BUG}"


def test_sigterm_unwinds_through_finally_and_handler_is_restored(fake, capsys):
    previous = signal.getsignal(signal.SIGTERM)
    sentinel = lambda signum, frame: None  # noqa: E731
    signal.signal(signal.SIGTERM, sentinel)
    try:
        assert cli.main(["fake", "sigterm"]) == 143
        assert signal.getsignal(signal.SIGTERM) is sentinel
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert fake == {"finally_ran": True}
    assert capsys.readouterr().err.splitlines() == [
        "mixnas fake: stopped by SIGTERM; finished work is saved, run the same command again to continue"]


def test_main_outside_the_main_thread_installs_no_handler(fake, capsys):
    result = []
    thread = threading.Thread(target=lambda: result.append(cli.main(["fake", "ok"])))
    thread.start()
    thread.join()
    assert result == [0] and capsys.readouterr().out == "done\n"


def test_real_command_bad_preset_is_one_line(capsys):
    assert cli.main(["train", "--config", "no_such_preset"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("mixnas train: error: no experiment config 'no_such_preset'")


def test_usage_error_is_reexported():
    from mixnas.cli import UsageError as FromCli
    assert FromCli is UsageError and issubclass(FromCli, ValueError)


# ---------------------------------------------------------------- parser
def test_command_in():
    assert cli.command_in(["--", "train", "--config", "x"]) == "train"
    assert cli.command_in(["collect", "--help"]) == "collect"
    for argv in (["-h"], ["--help", "train"], ["--version", "train"], ["trian"], []):
        assert cli.command_in(argv) is None, argv


def test_table_help_matches_each_command_parser():
    for name, (help_text, _) in cli.COMMANDS.items():
        sub = next(a for a in cli.build_parser(name)._actions if isinstance(a, argparse._SubParsersAction))
        shown = {choice.dest: choice.help for choice in sub._choices_actions}
        assert shown[name] == help_text, name
        assert sub.choices[name].get_default("func") is not None, name  # the real parser, not a stub


def test_command_help_shows_its_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--help"])
    assert exit_.value.code == 0 and "--config" in capsys.readouterr().out


def test_version(capsys, monkeypatch):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"mixnas {version('mixnas')}\n"

    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.version() == "unknown"


HEAVY = ("torch", "pymoo", "sacrebleu", "lightgbm", "matplotlib", "sklearn", "scipy", "tensorboard",
         "sentencepiece", "numpy")

PROBE = """
import json, sys
heavy = {heavy!r}
found = {{}}
import mixnas
found["import mixnas"] = sorted(m for m in heavy if m in sys.modules)
import mixnas.cli
for argv in {argvs!r}:
    sys.argv = ["mixnas", *argv]
    try:
        mixnas.cli.main()
    except SystemExit:
        pass
    found[" ".join(argv)] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(found))
"""


def test_help_version_and_bad_arguments_import_nothing_heavy():
    argvs = [["--help"], [], ["--version"], ["trian"], ["-x"], ["--help", "train"]]
    code = PROBE.format(heavy=HEAVY, argvs=argvs)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {key: [] for key in ["import mixnas", *(" ".join(a) for a in argvs)]}


def test_a_closed_pipe_is_not_a_bug(tmp_path):
    """`mixnas ... | head -1`: the reader leaving early ends quietly (exit 141), no traceback."""
    import subprocess
    import sys
    code = "import sys; from mixnas.cli import main; sys.exit(main(['cost', '--help']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads: the first write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait() in (0, 141) and "Traceback" not in err and "bug" not in err
