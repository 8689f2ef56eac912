"""A `vllm serve` process that never outlives the job that started it.

The server runs in its own session (process group), so stopping it reaches vLLM's engine
processes too; and with PR_SET_PDEATHSIG it gets SIGTERM if the job itself dies, even by
SIGKILL, which no `finally` can catch.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

log = logging.getLogger("server")

PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """The server died or never became healthy."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent():  # runs in the child between fork and exec
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def serve_command(
    vllm: str, model_dir: str, served_name: str, port: int, engine: dict, host: str = "127.0.0.1"
) -> list[str]:
    """`vllm serve` with the engine args of config (True -> a bare flag, False/None -> left out)."""
    cmd = [vllm, "serve", model_dir, "--host", host, "--port", str(port), "--served-model-name", served_name]
    for key, value in sorted(engine.items()):
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value not in (False, None):
            cmd += [flag, str(value)]
    return cmd


def wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float, log_path: str | None = None) -> float:
    """Poll GET /health until 200; fail fast if the server exits. Returns seconds waited."""
    start = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise ServerError(
                f"vllm serve exited with code {proc.returncode} before becoming healthy"
                + (f"; see {log_path}" if log_path else "")
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() - start > timeout_s:
            raise ServerError(
                f"vllm serve not healthy at {url} after {timeout_s:.0f} s" + (f"; see {log_path}" if log_path else "")
            )
        time.sleep(0.5)


def stop(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left after grace_s."""
    if proc.poll() is None or _group_alive(proc.pid):
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
            time.sleep(0.2)
        if proc.poll() is None or _group_alive(proc.pid):
            log.warning("server group %d ignored SIGTERM for %.0f s; SIGKILL", proc.pid, grace_s)
            _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A group of only zombies (reaped by us later) counts as gone.
    return any(_pgid_of(pid) == pgid and not is_zombie(pid) for pid in _pids())


def _pids():
    return (int(p) for p in os.listdir("/proc") if p.isdigit())


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@contextmanager
def running(
    cmd: list[str],
    log_path: str,
    env: dict | None = None,
    health_timeout_s: float = 600.0,
    host: str = "127.0.0.1",
    port: int | None = None,
):
    """Start the server, wait for health, yield (proc, seconds to healthy); always stop it.

    SIGTERM/SIGINT to this process become SystemExit, so the `finally` runs for them too.
    """

    def _exit(signum, _frame):
        # One shot: a terminal's Ctrl-C arrives directly and forwarded by the step's
        # supervisor; a second SystemExit inside `stop` would leave the server running.
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, _exit) for s in (signal.SIGTERM, signal.SIGINT)}
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
    log.info("vllm serve pid %d: %s", proc.pid, " ".join(cmd))
    try:
        url = f"http://{host}:{port}/health"
        waited = wait_healthy(proc, url, health_timeout_s, log_path)
        log.info("server healthy after %.1f s", waited)
        yield proc, waited
    finally:
        stop(proc)
        for s, h in previous.items():
            signal.signal(s, h)
        log.info("server stopped (exit %s)", proc.returncode)
