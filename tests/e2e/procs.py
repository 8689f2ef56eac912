"""What is running under a workflow copy, read from /proc (Linux): for tests that stop
jobs and then check that nothing of the run is left, and that synchronise on processes
(a step's worker exists, its engine child has started) instead of sleeps or log lines."""

from __future__ import annotations

import os
from pathlib import Path


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:  # exited meanwhile, or not ours to read
        return None


def _stat_fields(pid: int | str) -> list[bytes] | None:
    stat = _read(f"/proc/{pid}/stat")
    return stat.rsplit(b")", 1)[1].split() if stat else None


def processes_in(folder: Path) -> list[tuple[int, str]]:
    """Live processes (other than this one) whose working directory is inside `folder`:
    a vLLM server runs in its own session, so a process group does not reach it."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        fields = _stat_fields(pid)
        if int(pid) == os.getpid() or not Path(cwd).is_relative_to(folder) or not fields or fields[0] == b"Z":
            continue
        cmd = (_read(f"/proc/{pid}/cmdline") or b"").replace(b"\0", b" ").decode(errors="replace")
        out.append((int(pid), cmd[:200]))
    return out


def argv_of(pid: int) -> list[str]:
    return [a.decode(errors="replace") for a in (_read(f"/proc/{pid}/cmdline") or b"").split(b"\0") if a]


def python_running(folder: Path, module: str) -> list[int]:
    """Step workers in the workflow copy running `python -m module`: the process doing the work, not
    the shell around it nor the step's supervisor (quantstudy/core/step.py)."""
    pids = []
    for pid, _ in processes_in(folder):
        argv = argv_of(pid)
        environ = (_read(f"/proc/{pid}/environ") or b"").split(b"\0")
        if (
            len(argv) > 1
            and "python" in Path(argv[0]).name
            and argv[1:3] == ["-m", module]
            and any(v.startswith(b"QS_STEP_WORKER=") for v in environ)
        ):
            pids.append(pid)
    return pids


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat_fields(p)
        if fields and fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def has_mapped(pid: int, library: str) -> bool:
    """Whether the process has loaded a shared library (e.g. torch's: it is computing)."""
    maps = _read(f"/proc/{pid}/maps")
    return maps is not None and library.encode() in maps


def engine_started(pid: int) -> bool:
    """Whether a step's vLLM engine has started: in the step's own process (vLLM's kernels
    library is loaded when the engine initialises; the default config runs one CPU engine
    in-process) or as a child process that has loaded torch (vLLM's multiprocessing mode)."""
    return has_mapped(pid, "vllm/_C.abi3.so") or any(has_mapped(c, "libtorch_cpu") for c in descendants(pid))


def served_port(folder: Path) -> int | None:
    """The port of a `vllm serve` started in the workflow copy, from its command line."""
    for pid, _ in processes_in(folder):
        argv = argv_of(pid)
        if "serve" in argv and "--port" in argv:
            return int(argv[argv.index("--port") + 1])
    return None
