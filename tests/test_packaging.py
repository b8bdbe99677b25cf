"""A non-editable install carries the shipped model: the wheel holds every file the default model's manifest
lists, and the engine edits from the unpacked wheel alone (a missing package-data pattern once left
latent_prior.npz out, and the manifest check then refused the whole model). It carries nothing of the lab:
the judges stay in the clone's evaluation/judges/, and `faceedit eval` from the wheel says so in one line."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from faceedit.core.manifest import MANIFEST_NAME, iter_files, load_manifest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "faceedit" / "models" / "default"

pytestmark = pytest.mark.slow  # builds a wheel


def test_wheel_carries_and_runs_the_default_model(tmp_path):
    # build from a fresh copy of the sources: setuptools reuses an existing build/ folder, which may hold
    # files the package-data patterns no longer (or never) select
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("faceedit", "evaluation"):  # as a clone has them
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(src)], check=True)
    wheel = next((tmp_path / "dist").glob("faceedit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    listed = {MANIFEST_NAME} | {e["path"] for _, e in iter_files(load_manifest(MODEL, verify=False))}
    missing = sorted(p for p in listed if f"faceedit/models/default/{p}" not in names)
    assert not missing, f"the wheel lacks {missing}"
    detector = ROOT / "faceedit" / "models" / "blazeface"
    shipped = sorted(p.name for p in detector.iterdir() if p.is_file())
    missing = [p for p in shipped if f"faceedit/models/blazeface/{p}" not in names]
    assert not missing, f"the wheel lacks the detector's {missing}"
    lab = sorted(n for n in names if n.startswith("evaluation/") or (n.endswith(".onnx") and "judge" in n))
    assert not lab, f"the wheel carries evaluation files: {lab}"

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from faceedit.engine.editor import Editor\n"
            "e = Editor.load(backend='onnxruntime')\n"
            "assert str(e.model.path).startswith(%r), e.model.path\n"
            "faces = e.sample(2, seed=0)\n"
            "out = e.edit(faces, {'smiling': 1})\n"
            "print(out.shape)\n"
            "from faceedit.engine.detect import make_detector\n"
            "d = make_detector(backend=e.backend)\n"
            "assert str(d.files.path).startswith(%r), d.files.path\n") % (str(site), str(site))
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(2, 64, 64, 3)"
    # evaluation needs the judges, which only a clone has: one line that says where they are
    done = subprocess.run([sys.executable, "-m", "faceedit", "eval", "--data", str(tmp_path / "data"), "--split", "val"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "no judge set" in done.stderr and "evaluation/judges" in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
