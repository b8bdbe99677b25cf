"""Models shipped with the package, as data (the code that runs them is in faceedit/engine/):

- default: the face-attribute editor's model directory (ONNX files + manifest.json);
- blazeface: the BlazeFace face detector's graphs, a detector.json listing them with their sha256 (checked
  at load, like a model's manifest), and the upstream LICENSE and NOTICE (run by
  faceedit/engine/detectors/blazeface.py)."""
from pathlib import Path

MODELS_DIR = Path(__file__).parent
DEFAULT_MODEL = MODELS_DIR / "default"
BLAZEFACE_DIR = MODELS_DIR / "blazeface"
