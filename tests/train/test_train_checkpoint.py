"""Atomic writes, safe loading, RNG round trip, pruning and checkpoint averaging."""
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mixnas.train import (average_checkpoints, averaging_sources, latest_checkpoint, list_checkpoints,
                          list_weight_files, load_checkpoint)
from mixnas.train.checkpoint import load_weights
from mixnas.train import checkpoint as ckpt_mod
from train_toy import run


def _complete(model, step=0, **extra):
    """The smallest checkpoint load_checkpoint accepts: every required key, one process."""
    return {"format": ckpt_mod.FORMAT, "version": 1, "step": step, "epoch": 1, "world_size": 1, "elapsed": 0.0,
            "skipped": 0, "stopped_by_task": False, "model": model, "optimizer": {}, "scheduler": {},
            "batches": {}, "rng": [{}], "config": {}, "task": {}, **extra}


def _fake_checkpoint(path, model, step=0):
    ckpt_mod.atomic_torch_save(_complete(model, step), path)


def test_crash_during_write_keeps_previous_checkpoint_latest(tmp_path, monkeypatch):
    run(tmp_path, max_updates=4, checkpoint_every=4)
    good = tmp_path / "checkpoint_00000004.pt"
    assert latest_checkpoint(tmp_path) == good

    real_save = torch.save

    def crash_halfway(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half the bytes are on disk when the "power fails"
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="simulated crash"):
        run(tmp_path, max_updates=8, checkpoint_every=8)  # resumes at 4, dies writing 8
    monkeypatch.undo()

    assert latest_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".pt", ".tmp")) == [good.name]
    assert load_checkpoint(good)["step"] == 4
    assert run(tmp_path, max_updates=8, checkpoint_every=8)["step"] == 8  # resumes from 4


def test_sigkill_during_write_leaves_no_truncated_checkpoint(tmp_path):
    # The process kills itself after writing half of checkpoint 8: no cleanup code runs.
    script = textwrap.dedent(f"""
        import os, signal, sys, torch
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from train_toy import run
        run({str(tmp_path)!r}, max_updates=4, checkpoint_every=4)
        real_fsync = os.fsync
        def die_halfway(fd):  # checkpoint 8's temporary is written: cut it, die before the rename
            name = os.readlink(f"/proc/self/fd/{{fd}}")
            if ".checkpoint_00000008.pt." in name:
                os.truncate(name, os.path.getsize(name) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            real_fsync(fd)
        os.fsync = die_halfway
        run({str(tmp_path)!r}, max_updates=8, checkpoint_every=8)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert [p.name for p in tmp_path.glob(".checkpoint_00000008.pt.*.tmp")]  # the half-written file
    assert latest_checkpoint(tmp_path).name == "checkpoint_00000004.pt"
    assert load_checkpoint(latest_checkpoint(tmp_path))["step"] == 4
    assert run(tmp_path, max_updates=8, checkpoint_every=8)["step"] == 8
    assert not list(tmp_path.glob(".*.tmp"))  # resuming removed the leftover


def test_truncated_or_foreign_files_give_one_line_errors(tmp_path):
    run(tmp_path, max_updates=2, checkpoint_every=0)
    data = (tmp_path / "checkpoint_00000002.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read checkpoint") as err:
        load_checkpoint(cut)
    assert "\n" not in str(err.value) and "truncated or corrupt" in str(err.value)
    assert str(cut) in str(err.value) and "weights_only=False" not in str(err.value)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "mixnas-train", "x": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="cannot read checkpoint .* outside the safe set") as err:
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()
    assert "weights_only=False" not in str(err.value) and "\n" not in str(err.value)

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a mixnas training checkpoint"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    random.gauss(0, 1)
    path = tmp_path / "rng.pt"
    torch.save(ckpt_mod.capture_rng_state(), path)
    draws = (random.random(), random.gauss(0, 1), np.random.randn(3).tolist(), torch.rand(3))
    ckpt_mod.restore_rng_state(torch.load(path, weights_only=True))
    again = (random.random(), random.gauss(0, 1), np.random.randn(3).tolist(), torch.rand(3))
    assert draws[:3] == again[:3] and torch.equal(draws[3], again[3])


def test_keep_last_prunes_old_checkpoints(tmp_path):
    run(tmp_path, max_updates=10, checkpoint_every=2, keep_last=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint_00000006.pt", "checkpoint_00000008.pt", "checkpoint_00000010.pt"]


def test_keep_weights_thins_old_checkpoints_to_weights_that_average_alike(tmp_path):
    # Reference: every full checkpoint kept. Thinned: one full checkpoint, weights of 3 more.
    run(tmp_path / "full", max_updates=10, checkpoint_every=2, keep_last=0)
    run(tmp_path / "thin", max_updates=10, checkpoint_every=2, keep_last=1, keep_weights=4)
    assert [p.name for p in list_checkpoints(tmp_path / "thin")] == ["checkpoint_00000010.pt"]
    assert [p.name for p in list_weight_files(tmp_path / "thin")] == [
        "weights_00000004.pt", "weights_00000006.pt", "weights_00000008.pt"]
    sources = averaging_sources(tmp_path / "thin")
    assert [p.name for p in sources][-1] == "checkpoint_00000010.pt" and len(sources) == 4
    full = average_checkpoints(list_checkpoints(tmp_path / "full")[-4:])
    thin = average_checkpoints(sources)
    assert full.keys() == thin.keys() and all(torch.equal(full[k], thin[k]) for k in full)
    # A weight file holds no optimizer state: much smaller than the checkpoint it came from.
    assert sources[0].stat().st_size < 0.6 * sources[-1].stat().st_size
    assert load_weights(sources[0]).keys() == full.keys()


def test_a_damaged_weight_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "weights_00000002.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, bad)
    with pytest.raises(ValueError, match="not a mixnas weight snapshot"):
        load_weights(bad)


def test_average_checkpoints_is_elementwise_mean(tmp_path):
    paths = []
    for i, (w, b) in enumerate([(1.0, 2.0), (2.0, 4.0), (6.0, 3.0)]):
        path = tmp_path / f"checkpoint_{i:08d}.pt"
        _fake_checkpoint(path, {"w": torch.full((2, 3), w), "b": torch.tensor([b]).half(),
                                "count": torch.tensor(7)})
        paths.append(path)
    avg = average_checkpoints(paths)
    assert torch.equal(avg["w"], torch.full((2, 3), 3.0))
    assert avg["b"].dtype == torch.float16 and avg["b"].item() == 3.0
    assert avg["count"].item() == 7

    # Real trainer checkpoints load straight back into the model.
    run(tmp_path / "run", max_updates=6, checkpoint_every=2)
    last = list_checkpoints(tmp_path / "run")[-2:]
    avg = average_checkpoints(last)
    models = [load_checkpoint(p)["model"] for p in last]
    for key in avg:
        assert torch.allclose(avg[key], (models[0][key] + models[1][key]) / 2)


def test_average_checkpoints_rejects_mismatches(tmp_path):
    a, b, c = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    _fake_checkpoint(a, {"w": torch.zeros(2)})
    _fake_checkpoint(b, {"w": torch.zeros(3)})
    _fake_checkpoint(c, {"v": torch.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        average_checkpoints([a, b])
    with pytest.raises(ValueError, match="different parameters"):
        average_checkpoints([a, c])
    with pytest.raises(ValueError, match="at least one"):
        average_checkpoints([])


@pytest.mark.parametrize("change, message", [
    (dict(drop=("optimizer", "rng")), r"lacks optimizer, rng; it is incomplete"),
    (dict(step="4"), r"step must be an integer >= 0, got '4'"),
    (dict(world_size=0), r"world_size must be an integer >= 1, got 0"),
    (dict(epoch=True), r"epoch must be an integer >= 0, got True"),
    (dict(model=[1, 2]), r"model must be a state_dict, got list"),
    (dict(rng=[{}, {}]), r"rng must hold one state per process \(1\)"),
])
def test_tagged_checkpoint_with_missing_or_bad_keys(tmp_path, change, message):
    ckpt = _complete({"w": torch.zeros(2)})
    for key in change.pop("drop", ()):
        del ckpt[key]
    ckpt.update(change)
    path = tmp_path / "checkpoint_00000004.pt"
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=message) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_extra_keys_of_later_versions_are_allowed(tmp_path):
    path = tmp_path / "checkpoint_00000004.pt"
    torch.save(_complete({"w": torch.zeros(2)}, step=4, grad_norm=1.5, something_new={"a": 1}), path)
    assert load_checkpoint(path)["something_new"] == {"a": 1}


def test_evaluate_command_reports_an_incomplete_checkpoint_in_one_line(tmp_path, capsys):
    import yaml

    from mixnas.cli import main
    from mixnas.experiment import load_experiment

    exp = load_experiment("digits_vit", [f"train.save_dir={tmp_path}"])
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(exp.to_dict()))
    ckpt = _complete({"w": torch.zeros(2)}, step=2)
    del ckpt["model"]
    torch.save(ckpt, tmp_path / "checkpoint_00000002.pt")
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "checkpoint_00000002.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "checkpoint_00000002.pt lacks model" in err, err
