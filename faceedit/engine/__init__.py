"""The lean runtime: load a model directory, run it on the fastest backend here, edit faces and photos.

No torch, and never faceedit.train or faceedit.export: only numpy, onnxruntime, OpenCV, Pillow (and
OpenVINO / TensorRT when installed). Names are imported lazily so `import faceedit.engine` costs nothing.

    from faceedit.engine import Editor
    editor = Editor.load()                       # the shipped model, the fastest backend here
    edited = editor.edit(face_rgb_uint8, {"young": 1, "smiling": 0.3})
"""
from __future__ import annotations

_EXPORTS = {
    "Editor": "faceedit.engine.editor",
    "DynamicBatcher": "faceedit.engine.batcher",
    "PhotoEditor": "faceedit.engine.photo",
    "EditRequest": "faceedit.engine.request",
    "CropEdits": "faceedit.engine.results",
    "FaceEdit": "faceedit.engine.results",
    "PhotoEdit": "faceedit.engine.results",
    "EngineError": "faceedit.engine.errors",
    "BackendUnavailable": "faceedit.engine.errors",
    "ImageError": "faceedit.engine.errors",
    "NoFaceFound": "faceedit.engine.errors",
    "Overloaded": "faceedit.engine.errors",
    "ModelError": "faceedit.engine.errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'faceedit.engine' has no attribute {name!r}")
