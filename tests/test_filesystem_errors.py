"""A full disk (ENOSPC) and a read-only filesystem (EROFS) end in one line and exit 2, and
leave no half-written file. Each test mounts a small tmpfs; where that is not allowed (not
root, no mount namespace rights) it skips with the reason."""
import subprocess
from pathlib import Path

import pytest

from mixnas.cli import main


@pytest.fixture
def tmpfs(tmp_path):
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()

    def mount(options: str) -> Path:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root")
        return mount_point

    yield mount
    subprocess.run(["umount", str(mount_point)], capture_output=True)


TRAIN = ["train", "--config", "digits_vit", "train.max_updates=4", "train.checkpoint_every=2",
         "train.warmup_updates=1", "train.tensorboard=false", "train.progress=false", "data.batch_size=16"]


def test_full_disk_is_one_line_and_leaves_no_temporary(tmpfs, capsys):
    mount = tmpfs("size=48k")
    assert main([*TRAIN, f"train.save_dir={mount / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "no space left" in err.lower() and "save_dir" in err, err
    assert not list(mount.rglob("*.tmp")), "a failed atomic write left its temporary behind"


def test_read_only_filesystem_is_one_line(tmpfs, capsys):
    mount = tmpfs("size=1m,ro")
    for argv in ([*TRAIN, f"train.save_dir={mount / 'run'}"],
                 ["run", "--preset", "micro", f"run_dir={mount / 'pipeline'}"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "read-only" in err.lower(), err
