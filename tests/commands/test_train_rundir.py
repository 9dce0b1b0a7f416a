"""`mixnas train` on a run directory: one run at a time, no silent reuse of another config,
a finished run rerun changes nothing, Ctrl-C checkpoints and resumes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mixnas.cli import main

TINY = ["train.warmup_updates=2", "train.tensorboard=false", "train.progress=false", "data.batch_size=32",
        "train.log_every=5"]


def _train(run, *extra):
    return ["train", "--config", "digits_vit", f"train.save_dir={run}", *TINY, *extra]


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".mixnas.lock"}


def test_rerun_is_a_no_op_and_a_changed_config_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train(run, "train.max_updates=6", "train.checkpoint_every=3")) == 0
    before = _snapshot(run)
    results = json.loads((run / "results.json").read_text())
    assert results["train"]["train"], "the summary of the finished run"

    capsys.readouterr()
    assert main(_train(run, "train.max_updates=6", "train.checkpoint_every=3")) == 0
    assert _snapshot(run) == before  # no new log row, results.json untouched
    assert "test: accuracy" in capsys.readouterr().out

    # Another learning rate or another model shape: refused before anything is written.
    for override, key in (("train.lr=0.01", "train.lr"), ("model.arch=vit_digits_cosformer", "arch.layers")):
        assert main(_train(run, "train.max_updates=6", "train.checkpoint_every=3", override)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and key in err and "--restart" in err, err
        assert _snapshot(run) == before
    assert main(["evaluate", "--checkpoint", str(run / "model")]) == 0  # the old run still evaluates

    # Only the evaluation changed: re-evaluated, not retrained.
    assert main(_train(run, "train.max_updates=6", "train.checkpoint_every=3", "eval.split=val")) == 0
    again = json.loads((run / "results.json").read_text())
    assert again["eval"]["split"] == "val" and again["train"] == results["train"]
    assert (run / "metrics.jsonl").read_bytes() == before["metrics.jsonl"][0]

    # --restart trains anew with the new config.
    assert main(["train", "--restart", *_train(run, "train.max_updates=4", "train.lr=0.01")[1:]]) == 0
    assert yaml.safe_load((run / "experiment.yaml").read_text())["train"]["lr"] == 0.01
    assert json.loads((run / "results.json").read_text())["train"]["step"] == 4
    assert not (run / "checkpoint_00000006.pt").exists()


def test_second_run_is_refused_then_ctrl_c_checkpoints_and_resume_finishes(tmp_path, capsys):
    run = tmp_path / "run"
    argv = _train(run, "train.max_updates=200", "train.checkpoint_every=1000")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mixnas.cli", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").is_file():  # training has started (the lock is held)
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert f"in use by process {proc.pid}" in err and len(err.splitlines()) == 1
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped by SIGINT after update" in lines[0] and "resume" in lines[0], stderr
    saved = sorted(run.glob("checkpoint_*.pt"))
    assert len(saved) == 1
    step = int(saved[0].stem.split("_")[1])
    assert 5 <= step < 200
    assert main(argv) == 0  # the same command resumes and finishes
    assert json.loads((run / "results.json").read_text())["train"]["step"] == 200
