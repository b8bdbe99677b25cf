"""Face finding for arbitrary photos: what a detector returns (Face) and make_detector, which picks one.

One small module per detector under faceedit/engine/detectors/, imported only when chosen:
  blazeface (default)  MediaPipe BlazeFace, shipped in the package: face box + eye landmarks in one pass
  haar                 OpenCV's Haar cascades (eyes from an eye cascade, else guessed from the face box)
  yunet                OpenCV's YuNet, from a model file the user gives (--detector-model)
Every detector returns each face with its two eye centres: all the alignment needs."""
from __future__ import annotations

from dataclasses import dataclass

from faceedit.engine.errors import EngineError

DETECTORS = ("blazeface", "haar", "yunet")
DEFAULT_DETECTOR = "blazeface"


@dataclass
class Face:
    box: tuple          # x, y, w, h in photo pixels
    eyes: tuple         # ((x, y) of the image-left eye, (x, y) of the image-right eye), photo pixels
    score: float
    eyes_from: str      # "landmarks", "eye cascade" or "face box (geometric)"
    how: str = ""       # which pass found it, for the user (e.g. "whole photo, 128 px")
    landmarks: tuple | None = None  # BlazeFace's six points (eyes, nose, mouth, ears), photo pixels

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    @property
    def eye_distance(self) -> float:
        (lx, ly), (rx, ry) = self.eyes
        return float(((rx - lx) ** 2 + (ry - ly) ** 2) ** 0.5)


def make_detector(name: str | None = None, model_path=None, backend=None):
    """name: blazeface (default), haar or yunet; model_path: YuNet's .onnx (giving one alone means yunet).
    backend: the editor's engine backend, which blazeface runs on (ONNX Runtime or OpenVINO; GPU backends
    fall back to ONNX Runtime on the CPU for this small graph)."""
    key = (name or ("yunet" if model_path else DEFAULT_DETECTOR)).strip().lower()
    if key not in DETECTORS:
        raise EngineError(f"unknown detector '{name}': choose {', '.join(DETECTORS)}", field="detector")
    if model_path is not None and key != "yunet":
        raise EngineError(f"a detector model file is YuNet's: it goes with detector yunet, not {key}",
                          field="detector_model")
    if key == "yunet":
        if model_path is None:
            raise EngineError("detector yunet needs its model file (face_detection_yunet.onnx, from the OpenCV "
                              "model zoo)", field="detector_model")
        from faceedit.engine.detectors.yunet import YuNetDetector
        return YuNetDetector(model_path)
    if key == "haar":
        from faceedit.engine.detectors.haar import HaarDetector
        return HaarDetector()
    from faceedit.engine.detectors.blazeface import BlazeFaceDetector
    return BlazeFaceDetector(backend=backend)
