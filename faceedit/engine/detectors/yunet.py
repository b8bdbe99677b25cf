"""OpenCV's YuNet (cv2.FaceDetectorYN) with a model file the user gives: `--detector yunet --detector-model
face_detection_yunet_*.onnx` (OpenCV model zoo)."""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from faceedit.engine.detect import Face
from faceedit.engine.errors import EngineError

DETECT_MAX_SIDE = 480  # faces are found on a copy at most this big


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

    def detect(self, rgb: np.ndarray, largest_only: bool = False) -> list[Face]:
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
                              tuple((float(ex) / scale, float(ey) / scale) for ex, ey in eyes), float(r[14]), "landmarks",
                              f"YuNet on a {small.shape[1]}x{small.shape[0]} copy"))
        return faces
