"""End to end: 1-MP and 12-MP JPEGs through decode -> detect -> align -> edit -> paste back -> encode, the face
detector's report (synthetic cases, images without a face, a folder of real photos), the engine's load time,
and a cold `faceedit run` process (wall time, peak RSS)."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from faceedit.bench.coldrun import cold_runs, run_once
from faceedit.bench.timing import measure, summarize


def photo_edit(editor, rgb: np.ndarray, changes: dict, budget, detector: str | None = None) -> dict:
    """p50/p95/p99 of one photo end to end as `faceedit run` does it: a JPEG file read and its face found and
    aligned (engine.photo_file.read_prepared: a large JPEG's face found on a reduced decode while the full one
    runs), edited, pasted back in place and encoded to a JPEG file; then each step's p50 alone: decode (the
    full photo), detect (what read_prepared detects on: the reduced decode included where it uses one),
    align, edit, paste, encode. The steps overlap in the end-to-end figure (decode runs beside detect)."""
    from faceedit.bench.paired import median_ci
    from faceedit.bench.photo import write_photo as write_test_photo
    from faceedit.engine.imageio import Photo, read_photo, write_photo
    from faceedit.engine.photo import PhotoEditor
    from faceedit.engine.photo_file import decode_preview, preview_factor, read_prepared

    pe = PhotoEditor(editor, detector=detector)
    faces = pe.faces(rgb)
    if not faces:
        return {"absent": f"no face detected in the test photo ({pe.detector.name})"}
    request = editor.request(changes)
    with tempfile.TemporaryDirectory(prefix="faceedit-bench-e2e-") as tmp:
        src = write_test_photo(Path(tmp) / "photo.jpg", rgb)
        dst = Path(tmp) / "edited.jpg"

        def once():
            photo, jobs = read_prepared(pe, src)
            edited = pe.edit([photo], request, prepared=[jobs], in_place=True)[0].photo
            write_photo(dst, edited.rgb, jpeg_sampling=edited.jpeg_sampling)

        times = measure(once, budget)
        out = summarize(times)
        out["p50_ci95_ms"] = [round(v, 3) for v in median_ci(times * 1e3)["ci95"]]
        photo = read_photo(src)
        k = preview_factor(rgb.shape[1], rgb.shape[0])
        data = src.read_bytes()
        jobs = pe.prepare(photo)
        job = jobs[0]
        edits = pe.edit_jobs(jobs, request)
        target = Photo(photo.rgb.copy(), None)
        chosen = max(pe.faces(photo.rgb, largest_only=True), key=lambda f: f.area)
        steps = {"decode": lambda: read_photo(src),
                 "detect": (lambda: pe.faces(decode_preview(data, k), largest_only=True)) if k > 1
                 else (lambda: pe.faces(photo.rgb, largest_only=True)),
                 "align": lambda: pe.align(photo.rgb, chosen),
                 "edit": lambda: pe.edit_jobs(jobs, request),
                 "paste": lambda: pe.finish_photo(target, jobs, edits, in_place=True),
                 "encode": lambda: write_photo(dst, photo.rgb, jpeg_sampling=photo.jpeg_sampling)}
        parts = {k_: summarize(measure(f, budget))["p50_ms"] for k_, f in steps.items()}
    h, w = rgb.shape[:2]
    out.update(megapixels=round(h * w / 1e6, 2), size=[w, h], faces_detected=len(faces), steps_p50_ms=parts,
               preview=f"1/{k}" if k > 1 else "none", crop_side=int(job.crop.shape[0]) if job.editable else None,
               editor=editor.describe(), detector=pe.detector.name,
               detail=f"{w}x{h} astronaut JPEG in and out, {pe.detector.name} detector"
                      + (f" on a 1/{k} decode" if k > 1 else "") + "; p50 ms: "
                      + ", ".join(f"{k_} {v:.3g}" for k_, v in parts.items()) + f"; {editor.describe()}")
    return out


def detection(editor, photos_dir=None, detector: str | None = None, no_faces=None, log=print) -> dict:
    """Faces found and eye errors on the synthetic astronaut cases (true eyes known), false faces on images
    that hold none (the built-in set of 50, or the folder no_faces), and, given a folder of real photos,
    found / eyes from landmarks / time per photo."""
    from faceedit.bench.detection import (evaluate, faceless_cases, folder_cases, folder_report, no_face_report,
                                          no_face_set, synthetic_cases)
    from faceedit.engine.detect import make_detector

    det = make_detector(detector, backend=editor.backend)
    out = {"detector": det.name}
    try:
        out["synthetic"] = evaluate(det, synthetic_cases() + faceless_cases())
    except ImportError as e:
        out["synthetic"] = {"absent": f"scikit-image is needed for the synthetic photos ({e.name} missing)"}
    try:
        cases = folder_cases(no_faces) if no_faces is not None else no_face_set()
        out["no_face"] = no_face_report(det, cases)
        out["no_face"]["set"] = str(no_faces) if no_faces is not None else "built-in: 50 images without a face"
    except ImportError as e:
        out["no_face"] = {"absent": f"scikit-image is needed for the no-face set ({e.name} missing)"}
    if photos_dir is not None:
        log(f"detection report on {photos_dir}")
        # counts, times and the names of the photos missed; no per-photo rows in the saved result
        out["folder"] = {k: v for k, v in folder_report(det, photos_dir).items() if k != "rows"}
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
    return [sys.executable, "-c", "from faceedit.cli.main import main; main()"]


def cold_run(model_path, photo_path, changes: dict, repeats: int) -> dict:
    """`faceedit run` in fresh processes on the test photo (caches as a user's would be after one run),
    writing a file of the photo's own format."""
    with tempfile.TemporaryDirectory(prefix="faceedit-bench-") as tmp:
        out = Path(tmp) / f"edited{Path(photo_path).suffix}"
        args = ["run", "--model", str(model_path), "--image", str(photo_path), "--out", str(out)]
        for k, v in changes.items():
            args += ["--set", f"{k.lower()}={v:g}"]
        # As after `pip install` (which compiles every module) and one earlier run: Python may keep its
        # bytecode (a PYTHONDONTWRITEBYTECODE in this shell would make every run compile ~300 modules again,
        # a cost no installed user pays), and the first run, which fills the caches, is reported apart.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        first = run_once(faceedit_argv() + args, env)
        res = cold_runs(faceedit_argv() + args, repeats=repeats, env=env)
        res["first_run"] = first
        res["argv"] = ["faceedit"] + args
        res["argv"][res["argv"].index(str(out))] = f"OUT{out.suffix}"
        if not res["ok"]:
            res["error"] = next((r["stderr_tail"] for r in res["runs"] if r["exit_code"] != 0), "")
    return res
