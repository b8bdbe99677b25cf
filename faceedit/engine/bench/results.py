"""Writing results: atomic JSON (temp file in the same folder, fsync, rename) and a loader."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

SCHEMA = "faceedit-bench-1"


from faceedit.manifest import atomic_write_bytes  # noqa: E402  (one atomic writer for the project)


def write_json(path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_plain) + "\n").encode())


def write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def read_json(path) -> dict:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a faceedit benchmark result ({SCHEMA})")
    return data


def _plain(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")
