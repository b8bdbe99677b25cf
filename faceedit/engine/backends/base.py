"""One interface for every backend: pick the file for (graph, precision) from the manifest, load it, run it.

A Graph's run() takes {input name: contiguous float32 array} and returns the outputs in the manifest's
order. run() must be safe to call from many threads at once (the Editor and the batcher rely on it)."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

from faceedit.engine.errors import BackendUnavailable


def cpu_cores() -> int:
    """Cores this process may use (affinity-aware; containers often allow fewer than os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def importable(module: str, install_hint: str = "") -> tuple[bool, str]:
    """available()'s answer for a backend that needs one package: (True, "") or (False, why, and how to get it)."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        return False, f"{module} is not importable ({e})" + (f": {install_hint}" if install_hint else "")
    return True, ""


def cache_dir(kind: str) -> Path:
    root = Path(os.environ.get("FACEEDIT_CACHE") or Path.home() / ".cache" / "faceedit")
    return root / kind


class Graph:
    """A loaded graph. Subclasses implement _run; input/output names come from the manifest."""

    def __init__(self, name: str, entry: dict):
        self.name = name
        self.input_names = [t["name"] for t in entry["inputs"]]
        self.output_names = [t["name"] for t in entry["outputs"]]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._run(feeds)

    def _run(self, feeds):  # pragma: no cover - interface
        raise NotImplementedError


class Backend:
    """Subclasses set name/label/precisions and implement available() and _load()."""
    name = "base"
    label = "base"
    device = "cpu"
    precisions: tuple[str, ...] = ("fp32",)
    default_precision = "fp32"

    def __init__(self, threads: int = 0, cache: bool = True):
        self.threads = threads or cpu_cores()
        self.cache = cache

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(True, "") when this backend can run here, else (False, one line saying what is missing)."""
        raise NotImplementedError

    def entry_for(self, model, graph: str, precision: str) -> dict | None:
        """The manifest FILE entry this backend runs for (graph, precision), or None if there is none."""
        return (model.graphs.get(graph) or {}).get(precision)

    def auto_precision(self, model) -> str:
        """The precision `auto` means on this backend for this model (the fastest the export accepted)."""
        return self.default_precision

    def has(self, model, graph: str, precision: str) -> bool:
        return precision in self.precisions and self.entry_for(model, graph, precision) is not None

    def load(self, model, graph: str, precision: str) -> Graph:
        if precision not in self.precisions:
            raise BackendUnavailable(f"backend {self.name} does not run {precision} "
                                     f"(it runs: {', '.join(self.precisions)})")
        entry = self.entry_for(model, graph, precision)
        if entry is None:
            have = [p for p in self.precisions if self.entry_for(model, graph, p) is not None]
            raise BackendUnavailable(f"model {model.path.name} has no {precision} {graph} graph for backend "
                                     f"{self.name} (available: {', '.join(have) or 'none'})")
        return self._load(model, graph, precision, entry)

    def _load(self, model, graph, precision, entry) -> Graph:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} ({self.label}, {self.threads} threads)" if self.device == "cpu" else \
            f"{self.name} ({self.label})"
