"""Edit faces in ordinary photos: detect -> align each face to the model's crop -> edit (one batch for all
faces of all photos) -> paste the change back through the inverse warp and a feathered mask that follows
the face (its landmarks, where the detector gives them).

With aligned=True the photo is already a face in CelebA's framing (or the model's square crop itself): the
model's crop box is taken from manifest["crop"] and no detection runs."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from faceedit.engine import align as A
from faceedit.engine import tensors
from faceedit.engine.detect import Face, make_detector
from faceedit.engine.errors import EngineError, NoFaceFound
from faceedit.engine.imageio import Photo

# A face is edited when its crop is at least this fraction of the model's input (64 px: eyes >= 13 px
# apart, a face ~30 px wide); smaller ones would be upscaled past what the edit can add detail to.
MIN_EDIT_SCALE = 0.75


@dataclass
class FaceEdit:
    box: tuple                 # x, y, w, h of the face (or the crop box, for aligned inputs)
    how: str                   # how it was found / framed
    before: dict = field(default_factory=dict)   # attribute probabilities of the input face
    after: dict = field(default_factory=dict)    # attribute head on the edited face
    pushed: dict = field(default_factory=dict)   # auto strength: attribute -> multiplier on its gain, where > 1
    implied: dict = field(default_factory=dict)  # implied attributes the edit changed: attribute -> 0 or 1
    skipped: str = ""          # why this face was found but not edited (too small), else ""


@dataclass
class PhotoEdit:
    photo: Photo               # the edited photo (rgb replaced; alpha kept)
    faces: list


def parse_face_choice(value) -> str | int:
    v = str(value).strip().lower()
    if v in ("largest", "all"):
        return v
    try:
        i = int(v)
    except ValueError:
        raise EngineError(f"--face must be largest, all or a face number (0, 1, ...), got {value!r}") from None
    if i < 0:
        raise EngineError(f"--face number must be >= 0, got {i}")
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
            raise NoFaceFound(f"no face found in {name}: if it is already an aligned face crop, use --aligned")
        if which == "all":
            return faces
        if which == "largest":
            return [max(faces, key=lambda f: f.area)]
        if which >= len(faces):
            raise EngineError(f"--face {which}: {name} has {len(faces)} face(s), numbered 0..{len(faces) - 1} left to right")
        return [faces[which]]

    def too_small(self, face: Face) -> str:
        """Why a face cannot be edited ("" when it can)."""
        if face.eye_distance >= self.min_eye_px:
            return ""
        return (f"too small to edit: eyes {face.eye_distance:.0f} px apart, the model needs at least "
                f"{np.ceil(self.min_eye_px):.0f} (a face about {2.3 * self.min_eye_px:.0f} px wide)")

    def _crops(self, photo: Photo, which, aligned: bool):
        """[(crop, paste-back info, FaceEdit)] for one photo; a face too small to edit comes as
        (None, None, FaceEdit with .skipped) under --face all, and as an error when it was asked for alone."""
        rgb = photo.rgb
        name = photo.path.name if photo.path else "the photo"
        if aligned:
            h, w = rgb.shape[:2]
            x0, y0, side, how = aligned_box(h, w, self.editor.model.crop)
            return [(rgb[y0:y0 + side, x0:x0 + side], ("box", x0, y0, side), FaceEdit((x0, y0, side, side), how))]
        out = []
        for f in self.choose(self.faces(rgb, largest_only=which == "largest"), which, name):
            box = tuple(int(round(v)) for v in f.box)
            how = f"detected ({self.detector.name}{': ' + f.how if f.how else ''}), eyes from {f.eyes_from}"
            why = self.too_small(f)
            if why:
                if which != "all":
                    raise NoFaceFound(f"the face found in {name} at {box} is {why}")
                out.append((None, None, FaceEdit(box, how, skipped=why)))
                continue
            crop, place = self.align(rgb, f)
            out.append((crop, place, FaceEdit(box, how)))
        return out

    def align(self, rgb: np.ndarray, face: Face):
        """(the face's crop at its own resolution, its paste-back placement: the warp and, where the detector
        gave them, the landmarks in crop fractions that the mask follows)."""
        crop, al = A.align(rgb, face.eyes, self.crop_eyes, self.editor.size)
        marks = A.to_crop(al, face.landmarks) if face.landmarks is not None else None
        return crop, ("warp", al, marks)

    def prepare(self, photo: Photo, which="largest", aligned: bool = False):
        return self._crops(photo, which, aligned)

    def edit(self, photos: list[Photo], changes, which="largest", aligned: bool = False,
             raw: bool = False, prepared: list | None = None) -> list[PhotoEdit]:
        """Edit every chosen face of every photo in one batch; the inputs are not modified. prepared: the
        result of prepare() per photo, when the caller already found the faces. changes: a dict or an
        EditRequest (Editor.request)."""
        target, mask = self.editor.change_vectors(changes)
        jobs = prepared if prepared is not None else [self.prepare(p, which, aligned) for p in photos]
        flat = [j for per in jobs for j in per if j[0] is not None]
        if not flat:
            return [PhotoEdit(p, [info for _, _, info in per]) for p, per in zip(photos, jobs)]
        res = self.editor.edit_crops([c for c, _, _ in flat], target, mask, raw=raw)
        finals = []
        for (crop, place, _), edited in zip(flat, res.images):
            m = self._mask(place, crop.shape)
            finals.append((A.match_colour(edited, crop, m) if raw else edited, m))
        # "after": the attribute head on exactly the crops that get pasted
        after = self.editor.run_attributes(tensors.to_tensor([f for f, _ in finals], self.editor.size))
        names = self.editor.attribute_names
        out, k = [], 0
        for photo, per in zip(photos, jobs):
            rgb = photo.rgb.copy()
            faces = []
            for crop, place, info in per:
                if crop is None:  # found, too small to edit: reported, not touched
                    faces.append(info)
                    continue
                edited, m = finals[k]
                info.before = dict(zip(names, map(float, res.before[k])))
                info.after = dict(zip(names, map(float, after[k])))
                if res.multipliers is not None:
                    info.pushed = {n: float(m) for n, m in zip(names, res.multipliers[k]) if m > 1}
                if res.implied is not None:
                    info.implied = {n: int(res.before[k][i] <= 0.5) for i, n in enumerate(names) if res.implied[k][i]}
                self._paste(rgb, crop, edited, m, place)
                faces.append(info)
                k += 1
            out.append(PhotoEdit(replace(photo, rgb=rgb), faces))  # alpha, path, source format kept
        return out

    @staticmethod
    def _mask(place, shape):
        if place[0] == "warp":  # ("warp", alignment[, landmarks in crop fractions])
            return A.face_mask(place[1].side, place[2] if len(place) > 2 else None)
        h, w = shape[:2]
        return None if place[1:3] == (0, 0) and place[3] == 0 else A.box_mask(h, w)

    @staticmethod
    def _paste(rgb, crop, edited, mask, place):
        delta = edited.astype(np.float32) - crop.astype(np.float32)
        if place[0] == "warp":
            A.paste_difference(rgb, delta * mask[:, :, None], place[1])
            return
        _, x0, y0, side = place
        if (side, side) == rgb.shape[:2]:  # the whole image is the crop: the edit is the result
            rgb[:] = edited
            return
        roi = rgb[y0:y0 + side, x0:x0 + side]
        roi[:] = np.clip(roi.astype(np.float32) + delta * mask[:, :, None] + 0.5, 0, 255).astype(np.uint8)
