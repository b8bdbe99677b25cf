"""End to end: a 1-MP photo through detect -> align -> edit -> paste back, the engine's load time, and a
cold `faceedit run` process (wall time, peak RSS)."""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from faceedit.bench.coldrun import cold_runs
from faceedit.bench.timing import measure, summarize


def photo_edit(editor, rgb: np.ndarray, changes: dict, budget) -> dict:
    """p50/p95/p99 of PhotoEditor.edit on one photo, plus detect+align alone."""
    from faceedit.engine.imageio import Photo
    from faceedit.engine.photo import PhotoEditor

    pe = PhotoEditor(editor)
    photo = Photo(rgb, None)
    faces = pe.faces(rgb)
    if not faces:
        return {"absent": "no face detected in the test photo"}
    out = summarize(measure(lambda: pe.edit([photo], changes), budget))
    prep = summarize(measure(lambda: pe.prepare(photo), budget))
    out.update(megapixels=round(rgb.shape[0] * rgb.shape[1] / 1e6, 2), faces_detected=len(faces),
               detect_align_p50_ms=prep["p50_ms"], editor=editor.describe(), detector=pe.detector.name,
               detail=f"{rgb.shape[1]}x{rgb.shape[0]} astronaut, {len(faces)} face(s), {pe.detector.name} detector, "
                      f"detect+align p50 {prep['p50_ms']:.3g} ms, {editor.describe()}")
    return out


def load_time(model_path, repeats: int = 3) -> dict:
    """Seconds to a usable editor in this process: manifest verified (sha256), backend chosen, graphs
    loaded and the first batch-1 edit done (best of `repeats`; on-disk caches warm after the first)."""
    from faceedit.engine.editor import Editor
    from faceedit.core.model_dir import ModelInfo

    times, manifest_s, first = [], [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        info = ModelInfo.load(model_path)
        t1 = time.perf_counter()
        ed = Editor.load(info)
        ed.edit(np.zeros((info.image_size, info.image_size, 3), np.uint8), {})
        t2 = time.perf_counter()
        first = first if first is not None else t2 - t0
        times.append(t2 - t0)
        manifest_s.append(t1 - t0)
        selection = ed.describe()
        del ed
    return {"load_and_first_edit_s": round(min(times), 4), "first_in_process_s": round(first, 4),
            "manifest_verify_s": round(min(manifest_s), 4), "editor": selection}


def faceedit_argv() -> list[str]:
    exe = shutil.which("faceedit")
    if exe:
        return [exe]
    return [sys.executable, "-c", "from faceedit.cli.main import app; app()"]


def cold_run(model_path, photo_path, changes: dict, repeats: int) -> dict:
    """`faceedit run` in fresh processes on the test photo (caches as a user's would be after one run)."""
    with tempfile.TemporaryDirectory(prefix="faceedit-bench-") as tmp:
        out = Path(tmp) / "edited.png"
        args = ["run", "--model", str(model_path), "--image", str(photo_path), "--out", str(out)]
        for k, v in changes.items():
            args += ["--set", f"{k.lower()}={v:g}"]
        res = cold_runs(faceedit_argv() + args, repeats=repeats)
        res["argv"] = ["faceedit"] + args
        res["argv"][res["argv"].index(str(out))] = "OUT.png"
        if not res["ok"]:
            res["error"] = next((r["stderr_tail"] for r in res["runs"] if r["exit_code"] != 0), "")
    return res
