"""A photo file in, its faces found and aligned, with as little of the photo decoded twice as the file allows.

    photo, jobs = read_prepared(photo_editor, "me.jpg")          # = read_photo + PhotoEditor.prepare
    [result] = photo_editor.edit([photo], changes, prepared=[jobs], in_place=True)

For a large RGB JPEG the face is looked for on a preview that libjpeg decodes at 1/2, 1/4 or 1/8 of the size
(DCT scaling: OpenCV's IMREAD_REDUCED_COLOR_*, a fraction of a full decode's work), while the full photo
decodes in a second thread; the faces found are scaled to the full photo, whose pixels the alignment, the
edit and the paste use. Where the preview is too coarse for the face (its eyes nearer than the detector's
refinement needs) or finds none, the detector runs on the full photo, so the faces found are the ones
read_photo + prepare would find (within the detector's own eye accuracy: tests/test_photo_file.py). Anything
else (PNG, small photos, CMYK or truncated JPEGs, --aligned) takes read_photo + prepare as it is."""
from __future__ import annotations

import io
import threading
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from faceedit.engine.detect import Face
from faceedit.engine.imageio import DEFAULT_MAX_PIXELS, _ORIENT, _pil_limit_lock, read_photo, read_photo_bytes

PREVIEW_MIN_SIDE = 512     # the preview's long side stays at least this (the detector's whole-photo passes)
PREVIEW_FROM_SIDE = 800    # photos with a shorter long side decode once, in full
MIN_PREVIEW_EYES = 19.0    # the chosen faces' eyes at least this far apart in the preview (the refinement's scale)
_REDUCED = {2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4", 8: "IMREAD_REDUCED_COLOR_8"}
# upright axis u, v <- (stored axis, flipped) for each EXIF orientation (as imageio._ORIENT turns the pixels)
_AXES = {1: (("x", False), ("y", False)), 2: (("x", True), ("y", False)), 3: (("x", True), ("y", True)),
         4: (("x", False), ("y", True)), 5: (("y", False), ("x", False)), 6: (("y", True), ("x", False)),
         7: (("y", True), ("x", True)), 8: (("y", False), ("x", True))}


def preview_factor(w: int, h: int) -> int:
    """The reduction (2, 4 or 8) whose preview keeps a long side of PREVIEW_MIN_SIDE; 1: decode in full only."""
    long = max(w, h)
    if long < PREVIEW_FROM_SIDE:
        return 1
    return max((k for k in (2, 4, 8) if long / k >= PREVIEW_MIN_SIDE), default=1)


def _probe(data: bytes):
    """(width, height, EXIF orientation) of a plain RGB JPEG that ends whole, else None."""
    from PIL import Image
    if len(data) < 4 or data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return None
    try:
        with _pil_limit_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                im = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = old
        with im:
            if im.format != "JPEG" or im.mode != "RGB":
                return None
            return im.size[0], im.size[1], int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # anything odd: the full path says what is wrong with it
        return None


def decode_preview(data: bytes, k: int, orientation: int = 1) -> np.ndarray | None:
    """The JPEG decoded at 1/k of its size, upright (EXIF orientation applied), RGB; None if OpenCV cannot."""
    import cv2
    flag = getattr(cv2, _REDUCED.get(k, ""), None)
    if flag is None:
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        return None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    turn = _ORIENT.get(orientation)
    return np.ascontiguousarray(turn(rgb)) if turn else rgb


def preview_to_photo(k: int, orientation: int, stored_full: tuple, stored_preview: tuple):
    """-> ((scale, offset_u), (scale, offset_v)): upright preview pixel coordinates -> upright full ones.
    stored_*: (width, height) as stored in the file. libjpeg's 1/k output pixel i covers full pixels
    k i .. k i + k - 1 (centre k i + (k - 1) / 2) and is ceil(N / k) long; a flipped axis counts from its end."""
    out = []
    for axis, flipped in _AXES.get(orientation, _AXES[1]):
        n_full, n_prev = (stored_full[0], stored_preview[0]) if axis == "x" else (stored_full[1], stored_preview[1])
        off = (k - 1) / 2 if not flipped else (n_full - 1) - k * (n_prev - 1) - (k - 1) / 2
        out.append((float(k), off))
    return tuple(out)


def scale_face(face: Face, mapping) -> Face:
    (su, ou), (sv, ov) = mapping

    def pt(p):
        return (su * p[0] + ou, sv * p[1] + ov)
    x, y, w, h = face.box
    return replace(face, box=(su * x + ou, sv * y + ov, su * w, sv * h), eyes=tuple(pt(e) for e in face.eyes),
                   landmarks=None if face.landmarks is None else tuple(pt(p) for p in face.landmarks))


def read_prepared(photo_editor, source, which="largest", aligned: bool = False,
                  max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None):
    """(Photo, FaceJobs) of a photo file (a path, or the bytes of one), as read_photo + PhotoEditor.prepare
    give them; see the module's docstring for how a large JPEG is read faster."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, path, label = bytes(source), None, name or "the upload"
    else:
        path = Path(source)
        if aligned or path.suffix.lower() not in (".jpg", ".jpeg", ".jfif"):
            photo = read_photo(path, max_pixels)
            return photo, photo_editor.prepare(photo, which, aligned)
        if not path.is_file():
            photo = read_photo(path, max_pixels)  # its own one-line error
            return photo, photo_editor.prepare(photo, which, aligned)
        data, label = path.read_bytes(), path.name
    # the preview serves the default choice, the largest face: under "all" or a face number a small face the
    # preview cannot see would be missing or shift the numbering
    probe = None if aligned or which != "largest" else _probe(data)
    k = preview_factor(*probe[:2]) if probe else 1
    if k == 1 or probe[0] * probe[1] > max_pixels:  # read_photo_bytes refuses a bomb in its own words
        photo = _with_path(read_photo_bytes(data, max_pixels, label), path)
        return photo, photo_editor.prepare(photo, which, aligned)
    full: dict = {}

    def decode_full():
        try:
            full["photo"] = read_photo_bytes(data, max_pixels, label)
        except BaseException as e:  # raised in the caller's thread below
            full["error"] = e
    worker = threading.Thread(target=decode_full, name="faceedit-decode", daemon=True)
    worker.start()
    faces = None
    try:
        preview = decode_preview(data, k, probe[2])
        if preview is not None:
            stored_prev = (preview.shape[1], preview.shape[0]) if probe[2] < 5 else (preview.shape[0], preview.shape[1])
            mapping = preview_to_photo(k, probe[2], probe[:2], stored_prev)
            found = photo_editor.faces(preview, largest_only=True)
            largest = max(found, key=lambda f: f.area, default=None)
            if largest is not None and largest.eye_distance >= MIN_PREVIEW_EYES:
                faces = [scale_face(f, mapping) for f in found]
    finally:
        worker.join()
    if "error" in full:
        raise full["error"]
    photo = _with_path(full["photo"], path)
    # too coarse for the face, or none seen: the detector on the full photo, as prepare alone would run it
    return photo, photo_editor.prepare(photo, which, aligned, faces=faces)


def _with_path(photo, path):
    return photo if path is None else replace(photo, path=path)
