"""OpenCV Haar cascades (shipped with opencv-python-headless): a face cascade on a downscaled copy, then an eye
cascade on each face's upper band at the photo's own resolution; when no plausible eye pair is found the
eyes are guessed from the face box (said so in Face.eyes_from). `--detector haar`."""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from faceedit.engine.detect import Face
from faceedit.engine.errors import EngineError

# Faces are found on a copy at most this big: Haar cost grows with pixels (docs/photo-path.md has the
# timing). At 480 the smallest face found (24 px) is ~51 px in a 1-MP photo, under the 64 px the model
# edits at. Eyes are then searched at the photo's own resolution (see HaarDetector._eyes).
DETECT_MAX_SIDE = 480
EYE_FACE_WIDTH = 160  # eye search runs on the face's upper band scaled to at most this face width
# Eye centres inside a Haar frontal-face box (fractions of its width/height), used when the eye cascade
# cannot find a plausible pair (eyeglasses, closed eyes, small faces).
HAAR_EYES = ((0.31, 0.39), (0.69, 0.39))


def _grey_small(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else rgb
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return cv2.equalizeHist(grey), scale


class HaarDetector:
    name = "haar"

    def __init__(self):
        root = Path(cv2.data.haarcascades)
        self._face_path = str(root / "haarcascade_frontalface_default.xml")
        self._eye_path = str(root / "haarcascade_eye.xml")
        self._local = threading.local()  # CascadeClassifier is not documented thread-safe: one per thread

    def _cascades(self):
        c = getattr(self._local, "c", None)
        if c is None:
            face, eye = cv2.CascadeClassifier(self._face_path), cv2.CascadeClassifier(self._eye_path)
            if face.empty() or eye.empty():
                raise EngineError(f"OpenCV's Haar cascades are missing from {cv2.data.haarcascades}")
            c = self._local.c = (face, eye)
        return c

    def detect(self, rgb: np.ndarray, largest_only: bool = False) -> list[Face]:
        face_cc, eye_cc = self._cascades()
        grey, scale = _grey_small(rgb)
        min_side = max(24, int(0.04 * min(grey.shape)))
        # scale step 1.2 (not 1.1): faster (docs/photo-path.md); boxes only frame the eye search, which runs finely
        boxes, _, weights = face_cc.detectMultiScale3(grey, scaleFactor=1.2, minNeighbors=5,
                                                      minSize=(min_side, min_side), outputRejectLevels=True)
        faces = []
        for small_box, score in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            box = tuple(float(v) / scale for v in small_box)
            eyes, source = self._eyes(eye_cc, rgb, *box)
            faces.append(Face(box, tuple((float(ex), float(ey)) for ex, ey in eyes), float(score), source,
                              f"face cascade on a {grey.shape[1]}x{grey.shape[0]} copy"))
        # Haar's weak extra hits (textures that look like faces) score far below the real faces
        top = max((f.score for f in faces), default=0.0)
        return [f for f in faces if f.score >= 0.4 * top]

    @staticmethod
    def _eyes(eye_cc, rgb, x, y, w, h):
        """Eye centres in photo pixels, from the face box's upper band at the photo's resolution (capped at
        EYE_FACE_WIDTH): the detector's downscaled copy has too few pixels per eye in small faces."""
        expected = [(x + fx * w, y + fy * h) for fx, fy in HAAR_EYES]
        ph, pw = rgb.shape[:2]
        x0, x1 = int(max(0, x)), int(min(pw, x + w))
        y0, y1 = int(max(0, y + 0.15 * h)), int(min(ph, y + 0.60 * h))
        if x1 - x0 < 16 or y1 - y0 < 8:
            return tuple(expected), "face box (geometric)"
        k = min(1.0, EYE_FACE_WIDTH / w)
        roi = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        if k < 1:
            roi = cv2.resize(roi, (max(1, round(roi.shape[1] * k)), max(1, round(roi.shape[0] * k))),
                             interpolation=cv2.INTER_AREA)
        roi = cv2.equalizeHist(roi)
        lo, hi = max(8, int(w * k) // 9), max(9, int(w * k) // 3)
        found = eye_cc.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3, minSize=(lo, lo), maxSize=(hi, hi))
        centres = [(x0 + (ex + ew / 2) / k, y0 + (ey + eh / 2) / k)
                   for ex, ey, ew, eh in np.asarray(found).reshape(-1, 4)]
        left = [c for c in centres if c[0] < x + 0.5 * w]
        right = [c for c in centres if c[0] >= x + 0.5 * w]
        best, best_cost = None, 0.25 * w  # a pair must land near where a face box puts eyes
        for l in left:
            for r in right:
                d = r[0] - l[0]
                if abs(r[1] - l[1]) > 0.12 * w or not 0.25 * w <= d <= 0.6 * w:
                    continue
                cost = np.hypot(*np.subtract(l, expected[0])) + np.hypot(*np.subtract(r, expected[1]))
                if cost < best_cost:
                    best, best_cost = (l, r), cost
        if best is not None:
            return best, "eye cascade"
        return tuple(expected), "face box (geometric)"
