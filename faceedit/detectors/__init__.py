"""Face detector files shipped with the package (data only; the code that runs them is in
faceedit/engine/detectors/). Each folder holds its graphs, a detector.json listing them with their sha256
(checked at load, like a model's manifest), and the upstream LICENSE and NOTICE."""
from pathlib import Path

DETECTORS_DIR = Path(__file__).parent
