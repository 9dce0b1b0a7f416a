"""Run-directory lock and fingerprints (mixnas.rundir), independent of any training."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mixnas.rundir import (ConfigChanged, RunDirBusy, changed_keys, check_step, data_digests, flatten, hold_lock,
                           write_if_changed)

HOLDER = textwrap.dedent("""
    import sys, time
    from mixnas.rundir import hold_lock
    with hold_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def _start_holder(directory):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_is_refused_with_the_pid_and_a_dead_holder_is_not_in_the_way(tmp_path):
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(RunDirBusy, match=f"in use by process {proc.pid} "):
            with hold_lock(tmp_path):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the flock
        proc.wait()
    with hold_lock(tmp_path):  # the stale lock file of the dead process does not block
        info = json.loads((tmp_path / ".mixnas.lock").read_text())
        assert info["pid"] == os.getpid()


def test_lock_is_reentrant_in_one_process_and_released_after(tmp_path):
    with hold_lock(tmp_path):
        with hold_lock(tmp_path):
            pass
        # still held by us after the inner block: another process is refused
        probe = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path)], capture_output=True, text=True,
                               timeout=60)
        assert probe.returncode != 0 and "RunDirBusy" in probe.stderr
    proc = _start_holder(tmp_path)  # released: another process gets it
    proc.kill()
    proc.wait()


def test_fingerprint_new_same_changed_restart(tmp_path):
    fp, out = tmp_path / "fp.json", tmp_path / "out"
    values = flatten({"train": {"lr": 0.1, "max_updates": 5}, "seed": 1})
    assert check_step("step", fp, values, [out], False, "--restart step") == "new"
    out.mkdir()
    (out / "weights").write_text("w")
    assert check_step("step", fp, values, [out], False, "--restart step") == "same"
    changed = {**values, "train.lr": 0.2}
    with pytest.raises(ConfigChanged, match=r"train.lr: 0.1 -> 0.2; pass --restart step"):
        check_step("step", fp, changed, [out], False, "--restart step")
    assert (out / "weights").exists()  # a refusal removes nothing
    assert check_step("step", fp, changed, [out], True, "--restart step") == "restarted"
    assert not out.exists()
    assert check_step("step", fp, changed, [out], False, "--restart step") == "same"


def test_outputs_without_fingerprint_are_refused(tmp_path):
    (tmp_path / "old.csv").write_text("x")
    with pytest.raises(ConfigChanged, match="without a fingerprint"):
        check_step("collect", tmp_path / "fp.json", {"a": 1}, [tmp_path / "old.csv"], False, "--restart collect")


def test_changed_keys_and_flatten():
    assert flatten({"a": {"b": [1, 2], "c": None}}) == {"a.b": [1, 2], "a.c": None}
    assert changed_keys({"a": 1, "b": 2}, {"a": 1, "c": 3}) == ['b: 2 -> "<unset>"', 'c: "<unset>" -> 3']


def test_data_digests_follow_file_content(tmp_path):
    (tmp_path / "train.en").write_text("a\n")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x").write_text("ignored")
    first = data_digests(tmp_path)
    assert list(first) == ["train.en"]
    time.sleep(0.01)
    (tmp_path / "train.en").write_text("b\n")
    assert data_digests(tmp_path) != first
    assert data_digests(None) == {} and data_digests(tmp_path / "missing") == {}


def test_write_if_changed_leaves_equal_files_alone(tmp_path):
    path = tmp_path / "r.json"
    assert write_if_changed(path, b"1")
    mtime = path.stat().st_mtime_ns
    assert not write_if_changed(path, b"1") and path.stat().st_mtime_ns == mtime
    assert write_if_changed(path, b"2") and path.read_bytes() == b"2"


def test_a_failed_first_attempt_does_not_pin_its_config(tmp_path):
    # The step recorded its fingerprint, then failed before writing anything (a config error):
    # the corrected config may run.
    fp, out = tmp_path / "fp.json", tmp_path / "out"
    assert check_step("step", fp, {"space": "wrong"}, [out], False, "--restart step") == "new"
    out.mkdir()  # an empty output directory is not work to protect either
    assert check_step("step", fp, {"space": "right"}, [out], False, "--restart step") == "new"


def test_a_setting_added_at_its_default_does_not_invalidate_old_runs(tmp_path):
    fp, out = tmp_path / "fp.json", tmp_path / "out"
    check_step("step", fp, {"lr": 0.1}, [out], False, "--restart step")
    out.mkdir()
    (out / "w").write_text("w")
    defaults = {"lr": 0.5, "distill": False}
    assert check_step("step", fp, {"lr": 0.1, "distill": False}, [out], False, "--restart step", defaults) == "same"
    with pytest.raises(ConfigChanged, match='distill: "<unset>" -> true'):
        check_step("step", fp, {"lr": 0.1, "distill": True}, [out], False, "--restart step", defaults)
