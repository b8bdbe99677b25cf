"""Edit faces in ordinary photos, one pipeline for every front end (the CLI, the HTTP service, Ray):

    jobs = pe.prepare(photo, which, aligned)     # detect -> choose -> align: one FaceJob per chosen face
    edits = pe.edit_jobs(jobs, request)          # one batch on the Editor (a service: JobBatcher.submit_report)
    result = pe.finish_photo(photo, jobs, edits) # paste each change back; each face's FaceEdit filled in

A detected face is pasted back through the inverse warp and a feathered mask that follows the face (its
landmarks, where the detector gives them). With aligned=True the photo is already a face in CelebA's framing
(or the model's square crop itself): the model's crop box is taken from manifest["crop"] and no detection runs."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from faceedit.engine import align as A
from faceedit.engine import tensors
from faceedit.engine.detect import Face, make_detector
from faceedit.engine.errors import EngineError, NoFaceFound
from faceedit.engine.imageio import Photo
from faceedit.engine.request import EditRequest
from faceedit.engine.results import CropEdits, FaceEdit, PhotoEdit

__all__ = ["PhotoEditor", "FaceJob", "WarpPlacement", "BoxPlacement", "FaceEdit", "PhotoEdit", "aligned_box",
           "parse_face_choice"]

# A face is edited when its crop is at least this fraction of the model's input (64 px: eyes >= 13 px
# apart, a face ~30 px wide); smaller ones would be upscaled past what the edit can add detail to.
MIN_EDIT_SCALE = 0.75


@dataclass(frozen=True, eq=False)
class WarpPlacement:
    """A detected face: its crop was warped out of the photo; the change goes back through the inverse warp,
    feathered by a mask that follows the face (landmarks in crop fractions, where the detector gave them)."""
    alignment: A.Alignment
    landmarks: np.ndarray | None = None

    def mask(self) -> np.ndarray:
        return A.face_mask(self.alignment.side, self.landmarks)

    def paste(self, rgb: np.ndarray, crop: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> None:
        delta = edited.astype(np.float32) - crop.astype(np.float32)
        A.paste_difference(rgb, delta * mask[:, :, None], self.alignment)


@dataclass(frozen=True)
class BoxPlacement:
    """An already-aligned photo: the model's square crop box, cut straight out and pasted straight back."""
    x0: int
    y0: int
    side: int

    def mask(self) -> np.ndarray:
        return A.box_mask(self.side, self.side)

    def paste(self, rgb: np.ndarray, crop: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> None:
        if (self.side, self.side) == rgb.shape[:2]:  # the whole image is the crop: the edit is the result
            rgb[:] = edited
            return
        delta = edited.astype(np.float32) - crop.astype(np.float32)
        roi = rgb[self.y0:self.y0 + self.side, self.x0:self.x0 + self.side]
        roi[:] = np.clip(roi.astype(np.float32) + delta * mask[:, :, None] + 0.5, 0, 255).astype(np.uint8)


@dataclass
class FaceJob:
    """One chosen face of one photo, ready to edit: its report, its crop and where the crop goes back."""
    face: FaceEdit                       # what is reported about it; finish_photo fills in what the model read
    crop: np.ndarray | None = None       # the aligned crop at the face's own resolution; None: too small to edit
    placement: WarpPlacement | BoxPlacement | None = None
    mask: np.ndarray | None = None       # the paste's feathered mask, made on first use (PhotoEditor.mask_for)

    @property
    def editable(self) -> bool:
        return self.crop is not None


def parse_face_choice(value) -> str | int:
    v = str(value).strip().lower()
    if v in ("largest", "all"):
        return v
    try:
        i = int(v)
    except ValueError:
        raise EngineError(f"expected largest, all or a face number (0, 1, ...), got {value!r}", field="face") from None
    if i < 0:
        raise EngineError(f"a face number must be >= 0, got {i}", field="face")
    return i


def aligned_box(h: int, w: int, crop: dict) -> tuple[int, int, int, str]:
    """(x0, y0, side, how) of the model's square crop inside an already-aligned image."""
    ref_w, ref_h = crop.get("reference_size", (178, 218))
    if abs(w / h - 1.0) < 0.02:
        return 0, 0, min(h, w), "aligned: the whole (square) image is the model's crop"
    side = crop["box_fraction"] * w
    cx, cy = crop["box_center"][0] * w, crop["box_center"][1] * h
    how = "aligned: CelebA framing, the model's crop box"
    if abs((w / h) / (ref_w / ref_h) - 1) > 0.05:
        how += f" (this image is {w}x{h}, not CelebA's {ref_w}:{ref_h} shape: box clamped to fit)"
    side = int(round(min(side, w, h)))
    x0 = int(round(np.clip(cx - side / 2, 0, w - side)))
    y0 = int(round(np.clip(cy - side / 2, 0, h - side)))
    return x0, y0, side, how


class PhotoEditor:
    def __init__(self, editor, detector_model=None, detector: str | None = None):
        """detector: blazeface (default), haar or yunet (with detector_model, YuNet's .onnx)."""
        self.editor = editor
        self.detector = make_detector(detector, detector_model, backend=getattr(editor, "backend", None))
        self.crop_eyes = editor.model.crop["eyes"]
        eye_frac = float(np.hypot(*np.subtract(self.crop_eyes[1], self.crop_eyes[0])))
        self.min_eye_px = MIN_EDIT_SCALE * eye_frac * editor.size

    def faces(self, rgb: np.ndarray, largest_only: bool = False) -> list[Face]:
        """Faces left to right (the order --face INDEX counts in). largest_only: the detector may stop once
        the largest face is certain (faster; smaller faces may be missing from the list)."""
        return sorted(self.detector.detect(rgb, largest_only=largest_only), key=lambda f: (f.box[0], f.box[1]))

    def choose(self, faces: list[Face], which, name: str = "the photo") -> list[Face]:
        if not faces:
            raise NoFaceFound(f"no face found in {name}: if it is already an aligned face crop, say so (aligned)",
                              field="aligned")
        if which == "all":
            return faces
        if which == "largest":
            return [max(faces, key=lambda f: f.area)]
        if which >= len(faces):
            raise EngineError(f"there is no face {which}: {name} has {len(faces)} face(s), numbered 0..{len(faces) - 1} "
                              "left to right", field="face")
        return [faces[which]]

    def too_small(self, face: Face) -> str:
        """Why a face cannot be edited ("" when it can)."""
        if face.eye_distance >= self.min_eye_px:
            return ""
        return (f"too small to edit: eyes {face.eye_distance:.0f} px apart, the model needs at least "
                f"{np.ceil(self.min_eye_px):.0f} (a face about {2.3 * self.min_eye_px:.0f} px wide)")

    def prepare(self, photo: Photo, which="largest", aligned: bool = False, faces: list | None = None) -> list[FaceJob]:
        """detect -> choose -> align: one FaceJob per chosen face of one photo. faces: the detector's answer
        for this photo when the caller already has it (a service's cache); else the detector runs (for
        "largest" it may stop once the largest face is certain). A face too small to edit comes as a job with
        no crop (its FaceEdit says why) under "all", and as NoFaceFound when it was asked for alone."""
        rgb = photo.rgb
        name = photo.path.name if photo.path else "the photo"
        if aligned:
            h, w = rgb.shape[:2]
            x0, y0, side, how = aligned_box(h, w, self.editor.model.crop)
            return [FaceJob(FaceEdit((x0, y0, side, side), how), rgb[y0:y0 + side, x0:x0 + side],
                            BoxPlacement(x0, y0, side))]
        found = faces if faces is not None else self.faces(rgb, largest_only=which == "largest")
        number = {id(f): i for i, f in enumerate(found)}
        return [self._job(rgb, f, number[id(f)], which, name) for f in self.choose(found, which, name)]

    def _job(self, rgb, f: Face, index: int, which, name: str) -> FaceJob:
        box = tuple(int(round(v)) for v in f.box)
        how = f"detected ({self.detector.name}{': ' + f.how if f.how else ''}), eyes from {f.eyes_from}"
        report = FaceEdit(box, how, index, tuple(tuple(round(float(c), 1) for c in e) for e in f.eyes))
        why = self.too_small(f)
        if why:
            if which != "all":
                raise NoFaceFound(f"the face found in {name} at {box} is {why}")
            report.skipped = why
            return FaceJob(report)
        crop, placement = self.align(rgb, f)
        return FaceJob(report, crop, placement)

    def align(self, rgb: np.ndarray, face: Face) -> tuple[np.ndarray, WarpPlacement]:
        """(the face's crop at its own resolution, its paste-back placement: the warp and, where the detector
        gave them, the landmarks in crop fractions that the mask follows)."""
        crop, al = A.align(rgb, face.eyes, self.crop_eyes, self.editor.size)
        marks = A.to_crop(al, face.landmarks) if face.landmarks is not None else None
        return crop, WarpPlacement(al, marks)

    def mask_for(self, job: FaceJob) -> np.ndarray:
        """The feathered mask [side, side] the job's change is pasted (and a raw edit colour-matched) under;
        made once per job."""
        if job.mask is None:
            job.mask = job.placement.mask()
        return job.mask

    def finish_crop(self, job: FaceJob, edited: np.ndarray, request: EditRequest,
                    edit_mask: np.ndarray | None = None) -> np.ndarray:
        """The edited crop as it will be pasted: a raw edit colour-matched to the crop under the face's mask
        (and, for a model with an edit mask [S,S], gated by it: the crop wherever it is 0), a residual edit as it
        is (the Editor gated it already). So with a mask nothing outside it moves in the photo either."""
        if not request.raw:
            return edited
        matched = A.match_colour(edited, job.crop, self.mask_for(job))
        if edit_mask is None:
            return matched
        h, w = job.crop.shape[:2]
        change = (matched.astype(np.float32) - job.crop) * tensors.mask_at(edit_mask, w, h)[:, :, None]
        return tensors.apply_delta(job.crop, change)

    def edit_jobs(self, jobs: list[FaceJob], request) -> CropEdits:
        """The crops of editable jobs edited in one batch on the Editor, each as it will be pasted
        (finish_crop), with the attribute head's reading of exactly that (after). JobBatcher.submit_report is
        the queued twin of this, for services."""
        request = self.editor.request(request)
        if not jobs:  # every face too small to edit: nothing to run
            return CropEdits.empty(len(self.editor.attribute_names), self.editor.size)
        edits = self.editor.edit_crops([j.crop for j in jobs], request)
        masks = edits.edit_mask if edits.edit_mask is not None else [None] * len(jobs)
        images = [self.finish_crop(j, im, request, m) for j, im, m in zip(jobs, edits.images, masks)]
        return edits.finished(images, self.editor.attributes(images))

    def paste(self, rgb: np.ndarray, job: FaceJob, edited: np.ndarray) -> None:
        """Paste one job's edited crop (finish_crop's) into rgb, in place: only its change, under its mask."""
        job.placement.paste(rgb, job.crop, edited, self.mask_for(job))

    def finish_photo(self, photo: Photo, jobs: list[FaceJob], edits: CropEdits, in_place: bool = False) -> PhotoEdit:
        """Paste edits (row k for the k-th editable job) into a copy of the photo, and fill each face's
        FaceEdit with what the model read. The input photo is not modified, unless in_place: then the edits go
        into its own pixels where they are writable (only each face's footprint is touched: no copy of a 12-MP
        photo for one face)."""
        rgb = photo.rgb if in_place and photo.rgb.flags.writeable else photo.rgb.copy()  # Pillow's may be read-only
        rows = iter(range(len(edits)))
        for job in jobs:
            if not job.editable:  # found, too small to edit: reported, not touched
                continue
            k = next(rows)
            job.face.read(self.editor.attribute_names, edits, k)
            self.paste(rgb, job, edits.images[k])
        return PhotoEdit(replace(photo, rgb=rgb), [j.face for j in jobs])  # alpha, path, source format kept

    def edit(self, photos: list[Photo], changes, which="largest", aligned: bool = False,
             raw: bool = False, prepared: list | None = None, in_place: bool = False) -> list[PhotoEdit]:
        """Edit every chosen face of every photo in one batch; the inputs are not modified (in_place: they are,
        the results share their pixels: for callers that drop the input, e.g. `faceedit run`). changes: a dict
        or an EditRequest (Editor.request, with its options). prepared: prepare()'s jobs per photo, when the
        caller already found the faces."""
        request = self.editor.request(changes, raw=raw)
        jobs = prepared if prepared is not None else [self.prepare(p, which, aligned) for p in photos]
        edits = self.edit_jobs([j for per in jobs for j in per if j.editable], request)
        out, start = [], 0
        for photo, per in zip(photos, jobs):
            n = sum(j.editable for j in per)
            out.append(self.finish_photo(photo, per, edits.take(range(start, start + n)), in_place))
            start += n
        return out
