"""Atomic outputs: a killed job never leaves a half-written file that looks finished.

Everything is written under a temporary name in the destination's directory and
renamed into place only once complete (rename is atomic within one filesystem).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

# Every output renamed into place by this process, in order: an engine step's worker
# reports them to its supervisor (quantstudy.core.step), which keeps them if the worker then
# dies in teardown.
_COMMITTED: list[Path] = []


def committed() -> list[Path]:
    """Outputs this process has committed (paths inside a committed directory folded in)."""
    return list(_COMMITTED)


def _register(path: Path) -> None:
    path = Path(path).resolve()
    _COMMITTED[:] = [p for p in _COMMITTED if p != path and path not in p.parents]
    _COMMITTED.append(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _register(path)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows) -> None:
    write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


@contextlib.contextmanager
def directory(path: str | Path):
    """Yield a temporary directory that becomes `path` only if the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; results are meant to be shared
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    inside = tmp.resolve()  # files written in the temporary directory now live in `path`
    _COMMITTED[:] = [p for p in _COMMITTED if inside not in p.parents]
    _register(path)
