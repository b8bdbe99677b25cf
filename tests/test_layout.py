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
# the bench modules that need torch and the training code: the PyTorch-eager baseline, and the training-step bench
TORCH_ALLOWED = {"bench/eager.py", "bench/train_step.py"}


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


# Underscore names one may use on anything: namedtuple's public API, and the standard library's own.
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make", "_exit", "_getframe"}


def private_names_defined(room: str) -> set[str]:
    """Underscore names a room defines: its functions, classes, module globals and attributes it assigns."""
    names = set()
    for f in (PACKAGE / room).rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    for sub in ast.walk(t):
                        if isinstance(sub, ast.Name):
                            names.add(sub.id)
                        elif isinstance(sub, ast.Attribute):
                            names.add(sub.attr)
    return {n for n in names if n.startswith("_")}


def third_party_aliases(tree) -> set[str]:
    """Names bound to modules from outside faceedit (torch, np, cv2, ...): their private API is their business."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names if not a.name.startswith("faceedit")}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("faceedit") and node.level == 0:
            out |= {a.asname or a.name for a in node.names}
    return out


def private_reach(room: str) -> list[str]:
    """Uses of another room's underscore names: `from faceedit.other.x import _name`, or `obj._name` where no
    module of this room defines `_name` (so it can only be another room's private part)."""
    own = private_names_defined(room)
    bad = []
    for f in sorted((PACKAGE / room).rglob("*.py")):
        rel = f.relative_to(PACKAGE).as_posix()
        tree = ast.parse(f.read_text(), str(f))
        foreign_modules = third_party_aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("faceedit."):
                other = node.module.split(".")[1]
                bad += [f"{rel} imports {node.module}.{a.name}" for a in node.names
                        if other != room and a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in foreign_modules:
                    continue
                if node.attr not in own and node.attr not in PUBLIC_UNDERSCORE:
                    bad.append(f"{rel}:{node.lineno} uses {node.attr}, another room's private name")
    return bad


@pytest.mark.parametrize("room", ROOMS)
def test_no_room_reaches_into_another_rooms_private_names(room):
    assert private_reach(room) == []


def test_the_private_name_check_sees_a_reach_across_rooms(tmp_path, monkeypatch):
    fake = tmp_path / "faceedit"
    (fake / "engine").mkdir(parents=True)
    (fake / "serve").mkdir()
    (fake / "engine" / "photo.py").write_text("class P:\n    def _paste(self):\n        self._mask = 1\n")
    (fake / "serve" / "service.py").write_text(
        "import numpy as np\nfrom faceedit.engine.photo import P, _helper\n"
        "def f(p):\n    np._NoValue\n    p._paste()\n    return p._own\n_own = 1\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert private_reach("engine") == []
    assert private_reach("serve") == ["serve/service.py imports faceedit.engine.photo._helper",
                                      "serve/service.py:5 uses _paste, another room's private name"]


def test_shipped_data_lives_under_models():
    # the package's top holds the rooms and models/ (data only: the editor's model directory and the face
    # detector's graphs); code that runs a model lives in a room (engine/detectors/ for the detectors)
    top = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"
                 and any(f.name != "__pycache__" for f in p.iterdir()))
    assert sorted(set(top) - set(ROOMS)) == ["models"], top
    code = sorted(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "models").rglob("*.py"))
    assert code == ["models/__init__.py"], code


def flags_in_raised_messages(root: Path) -> list[str]:
    """Every `raise` whose message text spells a CLI flag (--name), outside a quoted `faceedit ...` command."""
    import re
    bad = []
    for f in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = " ".join(c.value for c in ast.walk(node.exc)
                                if isinstance(c, ast.Constant) and isinstance(c.value, str))
                if re.search(r"(^|[\s(])--[a-z]", re.sub(r"`[^`]*`", "", text)):
                    bad.append(f"{f.relative_to(root.parent).as_posix()}:{node.lineno}")
    return bad


def test_engine_errors_speak_api_terms(tmp_path):
    # the engine's messages name an option by its API name (EngineError.field); the CLI adds its flag when it
    # reports one (cli.reporting.one_line), the HTTP service its query field
    assert flags_in_raised_messages(PACKAGE / "engine") == []
    fake = tmp_path / "engine"
    fake.mkdir()
    (fake / "m.py").write_text('def f(x):\n    raise ValueError(f"{x}: use --aligned")\n'
                               'def g():\n    raise ValueError("run `faceedit export --tensorrt` here")\n')
    assert flags_in_raised_messages(fake) == ["engine/m.py:2"]
