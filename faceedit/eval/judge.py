"""The judges that score edits: the choice judge (judge.onnx; choices on validation are made with it) and the
reporting judge (reporting_judge.onnx: another architecture, trained on the train split only, for the test
split's figures and nothing else). Each is an ONNX file of a judge set (core.judge_set; the repository's is
evaluation/judges/) or a judge checkpoint .pt. No model directory carries them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from faceedit.core.judge_set import CHOICE, REPORTING, load_judge_set  # noqa: F401  (CHOICE, REPORTING: keys)


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


def set_judge(folder, key: str, attributes, image_size: int) -> tuple[Path | None, str]:
    """The judge set FOLDER's judge `key` (CHOICE or REPORTING), checked (sha256), if it reads these
    attributes at this image size: (its path, ""), else (None, why not, one line). A damaged set raises
    core.judge_set.JudgeSetError."""
    folder = Path(folder)
    if not (folder / "judges.json").is_file():
        return None, (f"no judge set in {folder} (a clone of the repository has one in evaluation/judges/; "
                      "an installed package does not)")
    entry = load_judge_set(folder).get(key)
    if not entry:
        return None, f"the judge set {folder} has no {key}"
    if list(entry.get("attributes") or []) != list(attributes) or entry.get("image_size") != image_size:
        return None, f"{folder / entry['path']} reads other attributes or another image size than this model"
    return folder / entry["path"], ""
