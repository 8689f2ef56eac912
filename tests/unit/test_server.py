"""The server lifecycle of quantstudy/core/server.py with a real HTTP server process.

(vLLM itself is covered end to end in tests/e2e/test_perf.py; this checks the process
handling on a server that starts in a fraction of a second.)
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from quantstudy.core import server


def http_server(tmp_path, port):
    (tmp_path / "health").write_text("ok")
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]


def gone(pid, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as f:  # a zombie not yet reaped by its parent
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        time.sleep(0.1)
    return False


def test_started_healthy_then_stopped_and_port_freed(tmp_path):
    port = server.free_port()
    with server.running(http_server(tmp_path, port), str(tmp_path / "s.log"), port=port, health_timeout_s=30) as (
        proc,
        waited,
    ):
        assert proc.poll() is None and not server.port_is_free(port)
        assert waited < 30
    assert proc.returncode is not None and server.port_is_free(port)


def test_stopped_when_the_block_raises(tmp_path):
    port = server.free_port()
    with pytest.raises(RuntimeError, match="benchmark failed"):
        with server.running(http_server(tmp_path, port), str(tmp_path / "s.log"), port=port) as (proc, _):
            raise RuntimeError("benchmark failed")
    assert proc.returncode is not None and server.port_is_free(port)


def test_a_server_that_dies_is_reported_with_its_log(tmp_path):
    log = tmp_path / "s.log"
    with pytest.raises(server.ServerError, match="exited with code 3.*s.log"):
        with server.running([sys.executable, "-c", "import sys; sys.exit(3)"], str(log), port=server.free_port()):
            pass


def test_a_server_that_never_becomes_healthy_times_out(tmp_path):
    with pytest.raises(server.ServerError, match="not healthy"):
        with server.running(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            str(tmp_path / "s.log"),
            port=server.free_port(),
            health_timeout_s=1,
        ):
            pass


def test_sigterm_ignored_means_sigkill_after_grace(tmp_path):
    # The child says when it ignores SIGTERM (a line on stdout), so the SIGTERM is sent after
    # that, never before; dying by SIGKILL then proves stop() escalated (by itself the child
    # would sleep 120 s and exit 0).
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ignoring\n"
        server.stop(proc, grace_s=1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def test_server_dies_with_a_sigkilled_parent(tmp_path):
    """No `finally` runs on SIGKILL: PR_SET_PDEATHSIG must take the server down."""
    port = server.free_port()
    pidfile = tmp_path / "server.pid"
    parent = textwrap.dedent(f"""
        import sys, time
        from quantstudy.core import server
        with server.running({http_server(tmp_path, port)!r}, {str(tmp_path / "s.log")!r}, port={port}) as (p, _):
            open({str(pidfile)!r}, "w").write(str(p.pid))
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    server_pid = int(pidfile.read_text())
    assert not server.port_is_free(port)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert gone(server_pid), "the server outlived its SIGKILLed parent"
    deadline = time.monotonic() + 10
    while not server.port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.port_is_free(port)


def test_serve_command_flags():
    cmd = server.serve_command(
        "vllm",
        "/m",
        "m-bf16",
        8000,
        {"enforce_eager": True, "max_model_len": 1024, "trust_remote_code": False, "quantization": None},
    )
    assert cmd[:3] == ["vllm", "serve", "/m"] and "--enforce-eager" in cmd
    assert cmd[cmd.index("--max-model-len") + 1] == "1024" and "--trust-remote-code" not in cmd
    assert "--quantization" not in cmd and cmd[cmd.index("--host") + 1] == "127.0.0.1"
