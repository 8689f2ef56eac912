import os
import signal
import subprocess
import sys
import time

import pytest

from quantstudy.core import atomic


def test_write_text_replaces_whole_file(tmp_path):
    p = tmp_path / "a" / "out.json"
    atomic.write_text(p, "one")
    atomic.write_text(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["out.json"]


def test_failed_directory_block_leaves_nothing(tmp_path):
    out = tmp_path / "ckpt"
    with pytest.raises(RuntimeError):
        with atomic.directory(out) as tmp:
            (tmp / "half.safetensors").write_text("x")
            raise RuntimeError("killed")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_directory_replaces_previous_output(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "old").write_text("old")
    with atomic.directory(out) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(x.name for x in out.iterdir()) == ["new"]


def test_sigkill_mid_write_leaves_no_final_directory(tmp_path):
    # Killed while files are being written into the checkpoint: the final name never appears.
    target = tmp_path / "ckpt"
    code = (
        f"import sys, time; from quantstudy.core import atomic\n"
        f"with atomic.directory({str(target)!r}) as d:\n"
        f"    (d / 'config.json').write_text('{{}}')\n"
        f"    f = open(d / 'model.safetensors', 'wb')\n"
        f"    while True:\n        f.write(b'x' * 4096); f.flush(); time.sleep(0.01)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while not any(tmp_path.glob(".ckpt.*.tmp/model.safetensors")) and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(tmp_path.glob(".ckpt.*.tmp"))  # it was killed mid-write ...
    assert not target.exists()  # ... and nothing looks finished
    with atomic.directory(target) as d:  # the next run clears the leftover
        (d / "ok").write_text("1")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
