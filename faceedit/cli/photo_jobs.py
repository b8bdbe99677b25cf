"""The file side of `faceedit run` and `attrs`: which photos an --image names, where each edit is written, and
the loop that reads, edits (one batch per chunk of photos) and writes. The edit itself is the engine's
(PhotoEditor); --set goes through engine.request.parse_changes, as the HTTP service's set does."""
from __future__ import annotations

import glob
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from faceedit.engine.backends.base import cpu_cores
from faceedit.engine.errors import EngineError, ImageError
from faceedit.engine.imageio import DEFAULT_MAX_PIXELS, default_output, output_format, write_photo
from faceedit.engine.photo_file import read_prepared

READABLE = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif", ".ppm", ".pgm"}
CHUNK = 8  # photos per editor batch: bounds memory on big folders


def collect_inputs(spec) -> tuple[list[Path], bool]:
    """A file, a folder (its images, sorted) or a glob -> (paths, is_batch)."""
    s = str(spec)
    p = Path(s).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in READABLE
                       and ".edited" not in f.stem)
        if not files:
            raise ImageError(f"no images in folder {p} (looked for {', '.join(sorted(READABLE))})")
        return files, True
    if p.exists():
        return [p], False
    if any(c in s for c in "*?["):
        files = sorted(Path(f) for f in glob.glob(os.path.expanduser(s), recursive=True) if Path(f).is_file())
        if not files:
            raise ImageError(f"no files match {s}")
        return files, True
    raise ImageError(f"image not found: {p}")


@dataclass
class Job:
    src: Path
    dst: Path            # where it will be written (for default names: the name planned now)
    default_name: bool   # True: never overwrite, pick the next free name at write time


def plan_outputs(inputs: list[Path], out, batch: bool) -> list[Job]:
    """Decide every output path (and check its format) before any work is done."""
    jobs = []
    if out is None:
        for src in inputs:
            jobs.append(Job(src, default_output(src), True))
    elif batch or Path(out).is_dir():
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise EngineError(f"--out {folder} must be a folder when --image is a folder or a glob")
        for src in inputs:
            dst = folder / src.name
            if dst.suffix.lower() not in {k for k in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")}:
                dst = dst.with_suffix(".png")
            same = dst.resolve() == src.resolve()
            jobs.append(Job(src, default_output(src) if same else dst, same))
    else:
        jobs.append(Job(inputs[0], Path(out), False))
    for j in jobs:
        output_format(j.dst)
    return jobs


@dataclass
class Outcome:
    job: Job
    written: Path | None = None
    faces: list | None = None
    error: Exception | None = None


def run_jobs(photo_editor, jobs: list[Job], request, which="largest", aligned=False,
             max_pixels: int = DEFAULT_MAX_PIXELS, write: bool = True):
    """Yield an Outcome per job, in order. Each chunk of photos is read and prepared (PhotoEditor.prepare) in
    parallel, edited in one batch (PhotoEditor.edit), then written. A failing photo fails alone (its Outcome
    has the error); nothing is written for it. request: an EditRequest (with its options: raw, ...) or a dict."""
    request = photo_editor.editor.request(request)  # bad names/values fail before any file is read
    pool = ThreadPoolExecutor(max_workers=min(cpu_cores(), CHUNK))

    def prepare(job):  # a large JPEG: the face found on a reduced decode while the full one runs (engine.photo_file)
        return read_prepared(photo_editor, job.src, which, aligned, max_pixels)

    try:
        for i in range(0, len(jobs), CHUNK):
            chunk = jobs[i:i + CHUNK]
            futures = [pool.submit(prepare, j) for j in chunk]
            if i == 0:  # while the pool reads and detects: a cold run's edit graph compiles meanwhile
                photo_editor.editor.preload()
            ready, outcomes = [], []
            for job, fut in zip(chunk, futures):
                try:
                    ready.append((job, *fut.result()))
                    outcomes.append(None)
                except (EngineError, OSError) as e:
                    outcomes.append(Outcome(job, error=e))
            # in place: each photo is written and dropped, so the edit pastes into its own pixels (no copy)
            edits = iter(photo_editor.edit([p for _, p, _ in ready], request,
                                           prepared=[prep for _, _, prep in ready], in_place=True) if ready else [])
            for job, outcome in zip(chunk, outcomes):
                if outcome is not None:
                    yield outcome
                    continue
                pe = next(edits)
                written = None
                if write:
                    try:
                        written = write_photo(job.dst, pe.photo.rgb, pe.photo.alpha,
                                              source=job.src if job.default_name else None,
                                              jpeg_sampling=pe.photo.jpeg_sampling)
                    except OSError as e:
                        yield Outcome(job, faces=pe.faces, error=ImageError(f"cannot write {job.dst}: {e}"))
                        continue
                yield Outcome(job, written, pe.faces)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
