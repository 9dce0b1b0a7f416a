"""Loading trained supernet weights: damaged files are unreadable, not a config mismatch."""
import os
import shutil

import pytest
import torch

from mixnas.pipeline import load_supernet


class _Payload:
    def __reduce__(self):
        return os.system, ("true",)


def _damaged_copy(supernet_dir, tmp_path, damage: str):
    copy = tmp_path / "supernet"
    shutil.copytree(supernet_dir, copy, ignore=shutil.ignore_patterns("checkpoint_*", "*.jsonl", "tensorboard"))
    weights = copy / "supernet.pt"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "payload":
        torch.save({"x": _Payload()}, weights)
    else:
        torch.save([1, 2], weights)
    return weights


@pytest.mark.parametrize("damage, message", [
    ("truncated", r"cannot read supernet weights .*supernet.pt: it is truncated or corrupt \(.+\); "
                  r"rerun `mixnas train-supernet` or restore the file"),
    ("payload", r"supernet.pt: it holds Python objects outside the safe set"),
    ("not-a-state-dict", r"supernet.pt holds a list, not supernet weights"),
])
def test_damaged_supernet_weights(trained_micro, tmp_path, damage, message):
    cfg, supernet_dir = trained_micro
    weights = _damaged_copy(supernet_dir, tmp_path, damage)
    with pytest.raises(ValueError, match=message) as error:
        load_supernet(cfg, weights.parent)
    text = str(error.value)
    assert str(weights) in text and "does not fit" not in text and "weights_only" not in text and "\n" not in text


def test_truncated_supernet_in_the_collect_command(trained_micro, tmp_path, capsys):
    from mixnas.cli import main

    cfg, supernet_dir = trained_micro
    weights = _damaged_copy(supernet_dir, tmp_path, "truncated")
    rc = main(["collect", "--config", "micro", f"run_dir={tmp_path}", "--supernet", str(weights),
               "--out", str(tmp_path / "c.csv"), "--num-archs", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"cannot read supernet weights {weights}" in err, err
