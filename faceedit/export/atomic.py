"""Whole-directory atomic publication: build in a hidden sibling, then swap it into place.

A crash or kill -9 at any point leaves the previous directory intact (at worst an extra hidden
`.NAME.tmp-PID` sibling, removed by the next export once its process is gone)."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from faceedit.core.manifest import MANIFEST_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out: Path):
    """Remove leftovers of earlier exports to `out` whose process no longer exists."""
    for p in out.parent.glob(f".{out.name}.*-*"):
        kind, _, pid = p.name.rpartition("-")
        if kind.endswith((".tmp", ".old")) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def check_replaceable(out: Path, marker: str = MANIFEST_NAME):
    """Refuse to replace something that is not ours: a file, or a non-empty folder without `marker`."""
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a directory")
        if any(out.iterdir()) and not (out / marker).exists():
            raise FileExistsError(f"refusing to replace {out}: it is not empty and has no {marker} "
                                  "(not a directory this command wrote)")


@contextmanager
def staging_dir(out, marker: str = MANIFEST_NAME):
    """Yield an empty hidden sibling of `out`; on success swap it in, on any error delete it."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(out, marker)
    clean_stale(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.rglob("*"):  # data on disk before the rename makes it visible
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, out: Path):
    """Rename old aside, rename new in, delete old: `out` is always either complete-old or complete-new
    (between the two renames it is briefly absent, never partial)."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    _fsync_dir(out.parent)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
