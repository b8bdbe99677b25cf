"""Model directories shipped with the package (ONNX files + manifest.json)."""
from pathlib import Path

MODELS_DIR = Path(__file__).parent
DEFAULT_MODEL = MODELS_DIR / "default"
