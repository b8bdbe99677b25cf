"""The rooms' import rules, read from the source (lazy imports inside functions count too):

- core: the standard library, numpy and nothing else of faceedit: every room may use it;
- engine: core only, and never torch (the lean runtime installs without it);
- train: core only (no export, engine, cli, bench, eval, serve);
- bench: core and engine; torch only in the PyTorch baseline (bench/eager.py);
- eval: core and engine (the edit goes through engine.Editor), training code only for checkpoints;
- serve: core and engine only, never torch."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "faceedit"
ROOMS = ("core", "engine", "train", "export", "cli", "bench", "eval", "serve")

RULES = {  # room -> (faceedit rooms it must not import, third-party modules it must not import)
    "core": (set(ROOMS) - {"core"}, {"torch", "onnx", "onnxruntime", "openvino", "cv2", "typer"}),
    "engine": (set(ROOMS) - {"core", "engine"}, {"torch", "onnx", "onnxscript"}),
    "train": (set(ROOMS) - {"core", "train"}, set()),
    "bench": ({"export", "cli", "serve", "eval"}, set()),
    "eval": ({"cli", "serve", "bench", "export"}, set()),  # torch and training code only lazily, for checkpoints
    "serve": (set(ROOMS) - {"core", "engine", "serve"}, {"torch", "onnx", "onnxscript"}),
}
TORCH_ALLOWED = {"bench/eager.py"}  # the PyTorch-eager baseline is the one bench module that needs torch


def imports_of(path: Path) -> set[str]:
    """Every module name a file imports, at top level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "faceedit":  # `from faceedit import train`
                names |= {f"faceedit.{a.name}" for a in node.names}
    return names


def violations(room: str) -> list[str]:
    rooms, modules = RULES[room]
    if room == "bench":
        rooms = rooms | {"train"}  # only eager.py may reach the training code (checked below)
    bad = []
    for f in sorted((PACKAGE / room).rglob("*.py")):
        rel = f.relative_to(PACKAGE).as_posix()
        for name in imports_of(f):
            parts = name.split(".")
            if parts[0] == "faceedit" and len(parts) > 1 and parts[1] in rooms:
                if not (rel in TORCH_ALLOWED and parts[1] == "train"):
                    bad.append(f"{rel} imports {name}")
            if parts[0] in modules or (room == "bench" and parts[0] == "torch" and rel not in TORCH_ALLOWED):
                bad.append(f"{rel} imports {name}")
    return bad


@pytest.mark.parametrize("room", sorted(RULES))
def test_room_import_rules(room):
    assert (PACKAGE / room).is_dir()
    assert violations(room) == []


def test_the_checker_sees_lazy_imports(tmp_path, monkeypatch):
    # a rule test that cannot fail proves nothing: a lazy torch import inside a function is caught
    fake = tmp_path / "faceedit" / "engine"
    fake.mkdir(parents=True)
    (fake / "sneaky.py").write_text("def f():\n    import torch\n    from faceedit.train.train import Trainer\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "faceedit")
    assert sorted(violations("engine")) == ["engine/sneaky.py imports faceedit.train.train",
                                            "engine/sneaky.py imports torch"]


def test_shared_modules_live_in_core():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], f"modules at the package top belong in a room (core/ for shared ones): {loose}"
