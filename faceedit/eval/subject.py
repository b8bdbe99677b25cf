"""The model under test, driven through faceedit.engine.Editor: the maths of an edit (decoder values from
gains, implied attributes, source attributes from the head, residual) live in the engine alone.

An exported directory runs on ONNX Runtime at fp32 (the reference precision), its manifest read once by
engine.ModelInfo. A training checkpoint runs its torch modules behind a small Backend (TorchBackend below) so
the very same Editor edits it; torch is imported only then."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from faceedit.core.model_dir import ModelInfo
from faceedit.engine.editor import Editor
from faceedit.eval.adapter import head


class UnderTest:
    """One Editor over the model, at the engine's defaults (auto strength where the manifest has it, implied
    attributes, the edit filter where the manifest has one). Eval calls it only through adapter.py: the
    product's default edit, and fixed-strength renders (auto strength off per request) for the fixed
    intensities and the auto strength sweep."""

    def __init__(self, info: ModelInfo, backend, kind: str):
        self.info, self.kind, self.path = info, kind, info.path
        self.edit_filter = info.edit_filter  # the manifest's entry (or with_filter's), None: no filter
        self.editor = Editor(info, backend, "fp32")

    @property
    def manifest(self) -> dict:
        return self.info.manifest

    @property
    def attributes(self) -> list[str]:
        return list(self.info.attribute_names)

    @property
    def image_size(self) -> int:
        return self.info.image_size

    @property
    def edit_gains(self) -> list[float]:
        return list(self.info.edit_gains)

    @property
    def edit_tops(self) -> list[float]:
        return list(self.info.edit_tops or [1.0] * len(self.attributes))

    @property
    def implied(self):
        return self.info.implied

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """The model's attribute head on images [N, 3, S, S] in [-1, 1]."""
        return head(self.editor, x)

    def with_gain(self, gain: float) -> "UnderTest":
        """The same model with one decoder gain for every attribute (eval --edit-gain)."""
        info = dataclasses.replace(self.info, edit_gains=[float(gain)] * len(self.attributes))
        return UnderTest(info, self.editor.backend, self.kind)

    def with_filter(self, entry: dict | None) -> "UnderTest":
        """The same model with another edit filter (a manifest "edit_filter" entry; None: none) (eval --edit-filter)."""
        info = dataclasses.replace(self.info, edit_filter=entry)
        return UnderTest(info, self.editor.backend, self.kind)


def open_model(path) -> UnderTest:
    """A model directory (ONNX Runtime, fp32) or a training checkpoint .pt (PyTorch)."""
    p = Path(path)
    if p.is_dir():
        from faceedit.engine.backends import backend_class
        info = ModelInfo.load(p)
        backend = backend_class("onnxruntime")()
        return UnderTest(info, backend, "model directory")
    if p.is_file():
        return _checkpoint(p)
    raise FileNotFoundError(f"model not found: {path}")


def _checkpoint(path: Path) -> UnderTest:
    from faceedit.train.checkpoint import load_checkpoint
    model, state = load_checkpoint(path)
    cfg = state["model_config"]
    names = list(cfg["attributes"])
    a = len(names)
    # a checkpoint has no gains of its own (the caller may set some), no auto strength, no implied rules
    info = ModelInfo(path=path, manifest={}, image_size=int(cfg["image_size"]), z_shape=(int(cfg["z_channels"]), 8, 8),
                     attribute_names=names, defaults=[0.0] * a, crop={}, edit_gains=[1.0] * a, edit_tops=[1.0] * a,
                     edit_mask=bool(cfg.get("edit_mask", False)))
    return UnderTest(info, TorchBackend(model), "checkpoint")


class TorchBackend:
    """The engine's Backend interface over a checkpoint's torch modules: encoder, attribute head, decoder (no
    fused graph, so the Editor composes them exactly as it composes the three ONNX graphs)."""
    name, label, device = "torch", "PyTorch eager, a training checkpoint", "cpu"
    GRAPHS = ("encoder", "attributes", "decoder")

    def __init__(self, model):
        import torch
        self.torch, self.model = torch, model

    def has(self, model, graph: str, precision: str) -> bool:
        return graph in self.GRAPHS and precision == "fp32"

    def load(self, model, graph: str, precision: str):
        torch, net = self.torch, self.model
        fn = {"encoder": lambda f: list(net.encoder(f["image"])),
              "attributes": lambda f: [torch.sigmoid(net.attribute_head(f["image"]))],
              # a model with an edit mask: image and mask, as its decoder graph gives them
              "decoder": lambda f: [t for t in net.decoder(f["z"], f["attributes"], with_mask=True) if t is not None]}[graph]

        class Graph:
            def run(self, feeds):
                with torch.no_grad():
                    out = fn({k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in feeds.items()})
                return [t.numpy() for t in out]
        return Graph()

    def describe(self) -> str:
        return f"{self.name} ({self.label})"
