"""core/files: every writer in the project goes through here, so a crash never leaves half a file."""
import os

import numpy as np
import pytest

from faceedit.core.files import atomic_path, atomic_write_bytes, sha256_file


def test_atomic_write_replaces_whole_and_keeps_the_usual_mode(tmp_path):
    p = tmp_path / "sub" / "a.json"
    atomic_write_bytes(p, b"old")
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new" and sorted(os.listdir(p.parent)) == ["a.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sha256_file(p) == "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437"


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "cache.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            assert tmp.suffix == ".npy" and tmp.parent == p.parent  # writers that pick a format by suffix work
            np.save(tmp, np.ones(3))
            raise RuntimeError("crash mid-write")
    assert np.load(p).tolist() == [0, 0, 0] and os.listdir(tmp_path) == ["cache.npy"]
    with atomic_path(p) as tmp:
        np.save(tmp, np.ones(3))
    assert np.load(p).tolist() == [1, 1, 1] and os.listdir(tmp_path) == ["cache.npy"]
