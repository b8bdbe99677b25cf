"""Files written whole or not at all, and their checksums. Standard library only (the lean runtime uses it).

Every writer in the project goes through here: a reader (or a crash) sees the old file or the new one,
never half of one."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: changing it later from a thread would race other writers


def usual_mode(fd: int):
    """Give a mkstemp file (created 0600) the mode a plain open() would have: 0666 minus the umask."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~_UMASK)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Temp file in the same folder, fsync, rename: readers see the old file or the new one, never half."""
    with atomic_path(path, suffix="") as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


@contextmanager
def atomic_path(path, suffix: str | None = None):
    """For writers that want a path (torch.save, np.savez, PIL, cv2): yields a temporary path in the same
    folder, renamed onto `path` when the block ends without an error, removed otherwise. suffix: an ending
    the writer needs to pick its format (".png"); by default the target's own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (path.suffix if suffix is None else suffix),
                               dir=path.parent)
    usual_mode(fd)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json_object(path, error: type[Exception], damaged: str = "") -> dict:
    """A JSON file whose top level is an object, or `error` with one line naming the file (and `damaged`, what
    that means for the user, appended): every self-describing file of the project is read through here."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path} is not valid JSON ({str(e).splitlines()[0]}){damaged}") from None
    if not isinstance(value, dict):
        raise error(f"{path} is not a JSON object{damaged}")
    return value
