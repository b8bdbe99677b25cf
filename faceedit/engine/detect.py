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

# detect on a downscaled copy: Haar cost grows with pixels (147 ms at 1024x1024, 2 cores). At 640 the smallest
# face found is ~26 px there (~42 px in a 1-MP photo), already below the 64 px the model edits at
DETECT_MAX_SIDE = 640
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
        boxes, _, weights = face_cc.detectMultiScale3(grey, scaleFactor=1.1, minNeighbors=5,
                                                      minSize=(min_side, min_side), outputRejectLevels=True)
        faces = []
        for (x, y, w, h), score in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            eyes, source = self._eyes(eye_cc, grey, x, y, w, h)
            faces.append(Face(tuple(float(v) / scale for v in (x, y, w, h)),
                              tuple((float(ex) / scale, float(ey) / scale) for ex, ey in eyes), float(score), source))
        # Haar's weak extra hits (textures that look like faces) score far below the real faces
        top = max((f.score for f in faces), default=0.0)
        return [f for f in faces if f.score >= 0.4 * top]

    @staticmethod
    def _eyes(eye_cc, grey, x, y, w, h):
        expected = [(x + fx * w, y + fy * h) for fx, fy in HAAR_EYES]
        top, bottom = y + int(0.15 * h), y + int(0.60 * h)
        roi = grey[top:bottom, x:x + w]
        lo, hi = max(8, w // 9), max(9, w // 3)
        found = eye_cc.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3, minSize=(lo, lo), maxSize=(hi, hi))
        centres = [(x + ex + ew / 2, top + ey + eh / 2) for ex, ey, ew, eh in np.asarray(found).reshape(-1, 4)]
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
