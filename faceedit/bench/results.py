"""Writing results: atomic JSON (temp file in the same folder, fsync, rename) and a loader."""
from __future__ import annotations

import json
from pathlib import Path

from faceedit.core.files import atomic_write_bytes, atomic_write_text

SCHEMA = "faceedit-bench-1"


def write_json(path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_plain) + "\n").encode())


write_text = atomic_write_text


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
