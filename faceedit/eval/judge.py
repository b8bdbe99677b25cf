"""The judges that score edits: the choice judge (judge.onnx; choices on validation are made with it) and the
reporting judge (reporting_judge.onnx: another architecture, trained on the train split only, for the test
split's figures and nothing else). Each comes from a model directory's ONNX file or a judge checkpoint .pt."""
from __future__ import annotations

from pathlib import Path

import numpy as np

CHOICE, REPORTING = "judge", "reporting_judge"  # manifest keys (and file stems) of the two judges


class JudgeModel:
    """A judge: __call__(images [N,3,S,S] in [-1, 1]) -> probabilities [N, A]; features(images) -> the
    penultimate embedding [N, D] where the judge has one (the reporting judge), else None."""

    def __init__(self, path, name: str = ""):
        path = Path(path)
        self.path, self.name = path, name or path.name
        if not path.is_file():
            raise FileNotFoundError(f"judge not found: {path}")
        if path.suffix == ".onnx":
            import onnxruntime as ort
            self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            outputs = [o.name for o in self.sess.get_outputs()]
            self._probs = lambda x: self.sess.run(["probabilities"], {"image": x})[0]
            self._feats = (lambda x: self.sess.run(["features"], {"image": x})[0]) if "features" in outputs else None
        else:
            import torch
            from faceedit.train.judge import load_judge
            model, _ = load_judge(path)

            def run(fn):
                def go(x):
                    with torch.no_grad():
                        return fn(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
                return go
            self._probs = run(lambda t: torch.sigmoid(model(t)))
            self._feats = run(model.features) if hasattr(model, "features") else None

    @property
    def has_features(self) -> bool:
        return self._feats is not None

    def __call__(self, x, batch: int = 256):
        return np.concatenate([self._probs(np.ascontiguousarray(x[i:i + batch], np.float32))
                               for i in range(0, len(x), batch)])

    def features(self, x, batch: int = 256):
        if self._feats is None:
            return None
        return np.concatenate([self._feats(np.ascontiguousarray(x[i:i + batch], np.float32))
                               for i in range(0, len(x), batch)])


def directory_judge(model_dir, manifest: dict, key: str) -> Path | None:
    """The ONNX file a model directory's manifest (as core.model_dir.ModelInfo read and verified it, sha256
    included) lists under `key` (CHOICE or REPORTING), or None: the manifest is not read a second time."""
    entry = (manifest or {}).get(key)
    return Path(model_dir) / entry["path"] if isinstance(entry, dict) and entry.get("path") else None
