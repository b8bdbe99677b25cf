"""Face and eye finding for arbitrary photos: OpenCV Haar cascades (shipped with opencv-python-headless), or
YuNet when the user gives its ONNX model file. Each face comes with its two eye centres, which is all the
alignment needs."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceedit.engine.errors import EngineError

# Faces are found on a copy at most this big: Haar cost grows with pixels (147 ms for a 1024x1024 photo on
# 2 cores). At 480 the smallest face found (24 px) is ~51 px in a 1-MP photo, under the 64 px the model
# edits at. Eyes are then searched at the photo's own resolution (see HaarDetector._eyes).
DETECT_MAX_SIDE = 480
EYE_FACE_WIDTH = 160  # eye search runs on the face's upper band scaled to at most this face width
# Eye centres inside a Haar frontal-face box (fractions of its width/height), used when the eye cascade
# cannot find a plausible pair (eyeglasses, closed eyes, small faces).
HAAR_EYES = ((0.31, 0.39), (0.69, 0.39))


@dataclass
class Face:
    box: tuple          # x, y, w, h in photo pixels
    eyes: tuple         # ((x, y) of the image-left eye, (x, y) of the image-right eye), photo pixels
    score: float
    eyes_from: str      # "eye cascade", "face box (geometric)" or "landmarks"

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


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

    def detect(self, rgb: np.ndarray) -> list[Face]:
        face_cc, eye_cc = self._cascades()
        grey, scale = _grey_small(rgb)
        min_side = max(24, int(0.04 * min(grey.shape)))
        # scale step 1.2 (not 1.1): ~40% less time; boxes only frame the eye search, which runs finely
        boxes, _, weights = face_cc.detectMultiScale3(grey, scaleFactor=1.2, minNeighbors=5,
                                                      minSize=(min_side, min_side), outputRejectLevels=True)
        faces = []
        for small_box, score in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            box = tuple(float(v) / scale for v in small_box)
            eyes, source = self._eyes(eye_cc, rgb, *box)
            faces.append(Face(box, tuple((float(ex), float(ey)) for ex, ey in eyes), float(score), source))
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


class YuNetDetector:
    """cv2.FaceDetectorYN with a user-supplied model (face_detection_yunet_*.onnx from the OpenCV zoo)."""
    name = "yunet"

    def __init__(self, model_path, score_threshold: float = 0.7):
        p = Path(model_path)
        if not p.is_file():
            raise EngineError(f"detector model not found: {p}")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise EngineError("this OpenCV has no FaceDetectorYN (YuNet needs OpenCV >= 4.5.4)")
        self.path, self.threshold = str(p), score_threshold
        self._local = threading.local()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA) \
            if scale < 1 else rgb
        det = getattr(self._local, "det", None)
        if det is None:
            try:
                det = self._local.det = cv2.FaceDetectorYN.create(self.path, "", (small.shape[1], small.shape[0]),
                                                                  self.threshold)
            except cv2.error as e:
                raise EngineError(f"cannot load YuNet model {self.path}: {str(e).strip().splitlines()[-1]}") from None
        det.setInputSize((small.shape[1], small.shape[0]))
        _, rows = det.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        faces = []
        for r in (rows if rows is not None else []):
            e1, e2 = (r[4], r[5]), (r[6], r[7])
            eyes = tuple(sorted([e1, e2]))  # image-left eye first
            faces.append(Face(tuple(float(v) / scale for v in r[:4]),
                              tuple((float(ex) / scale, float(ey) / scale) for ex, ey in eyes), float(r[14]), "landmarks"))
        return faces


def make_detector(model_path=None):
    return YuNetDetector(model_path) if model_path else HaarDetector()
