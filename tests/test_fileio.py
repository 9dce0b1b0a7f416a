"""safe_torch_load: weights-only loading whose every failure is one line without torch's advice."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

from mixnas.fileio import safe_torch_load


class _Payload:
    def __reduce__(self):
        return os.system, ("true",)


def test_loads_tensors(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(safe_torch_load(tmp_path / "ok.pt", "weights")["w"], torch.ones(2))


@pytest.mark.parametrize("write, message", [
    (lambda p: torch.save({"x": _Payload()}, p), r"holds Python objects outside the safe set \((posix|nt).system;"),
    (lambda p: p.write_bytes(pickle.dumps(_Payload(), protocol=2)), r"outside the safe set"),
    (lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=4)), r"truncated or corrupt \(Unsupported operand"),
    (lambda p: p.write_bytes(b"not a torch file"), r"truncated or corrupt \(.+\)"),
    (lambda p: p.write_bytes(b""), r"truncated or corrupt \(the file is empty\)"),
], ids=["torch-payload", "pickle-payload", "plain-pickle", "garbage", "empty"])
def test_every_failure_is_one_line(tmp_path, recwarn, write, message):
    path = tmp_path / "weights.pt"
    write(path)
    with pytest.raises(ValueError, match=rf"^cannot read model weights {path}: .*{message}.*; retrain it$") as err:
        safe_torch_load(path, "model weights", "retrain it")
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)
    assert not recwarn.list  # torch's "Detected pickle protocol 4" warning would be a second stderr line


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ValueError, match=r"^model weights .*nothing.pt does not exist; retrain it$"):
        safe_torch_load(tmp_path / "nothing.pt", "model weights", "retrain it")


def test_fileio_does_not_import_torch():
    code = "import sys, mixnas.fileio; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from mixnas.fileio import atomic_write_text
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.md", "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644


def test_disk_usage_counts_the_files_under_a_path(tmp_path):
    from mixnas.fileio import disk_usage
    (tmp_path / "a").write_bytes(b"x" * 1500)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 500)
    assert disk_usage(tmp_path) == "2.0 kB"
    assert disk_usage(tmp_path / "sub" / "b") == "500 B"
