"""What is running under a workflow copy, read from /proc (Linux): for tests that stop
jobs and then check that nothing of the run is left."""

from __future__ import annotations

import os
from pathlib import Path


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:  # exited meanwhile, or not ours to read
        return None


def is_zombie(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    return stat is None or stat.rsplit(b")", 1)[1].split()[0] == b"Z"


def processes_in(folder: Path) -> list[str]:
    """Live processes (other than this one) whose working directory is under `folder`."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if int(pid) == os.getpid() or not Path(cwd).is_relative_to(folder) or is_zombie(int(pid)):
            continue
        cmd = (_read(f"/proc/{pid}/cmdline") or b"").replace(b"\0", b" ").decode(errors="replace")
        out.append(f"{pid}: {cmd[:200]}")
    return out


def argv_of(pid: int) -> list[str]:
    return [a.decode(errors="replace") for a in (_read(f"/proc/{pid}/cmdline") or b"").split(b"\0") if a]


def step_workers(folder: Path, script: str) -> list[int]:
    """Worker processes (quantstudy.step) in the workflow copy running `script`: not the
    shell around them, nor the step's supervisor."""
    pids = []
    for entry in processes_in(folder):
        pid = int(entry.split(":")[0])
        argv = argv_of(pid)
        environ = (_read(f"/proc/{pid}/environ") or b"").split(b"\0")
        if len(argv) > 1 and "python" in Path(argv[0]).name and argv[1] == script \
                and any(v.startswith(b"QS_STEP_WORKER=") for v in environ):
            pids.append(pid)
    return pids


def children(pid: int) -> list[int]:
    raw = _read(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in raw.split()] if raw else []


def has_mapped(pid: int, library: str) -> bool:
    """Whether the process has loaded a shared library (e.g. torch's: it is computing)."""
    maps = _read(f"/proc/{pid}/maps")
    return maps is not None and library.encode() in maps


def served_port(folder: Path) -> int | None:
    """The port of a `vllm serve` started in the workflow copy, from its command line."""
    for entry in processes_in(folder):
        argv = argv_of(int(entry.split(":")[0]))
        if "serve" in argv and "--port" in argv:
            return int(argv[argv.index("--port") + 1])
    return None
