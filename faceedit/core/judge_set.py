"""The judge set: the classifiers `faceedit eval` scores edits with, kept apart from every model directory.

A judge set is a folder holding judges.json and the ONNX files it lists:

    judges.json  {"format": "faceedit-judges", "format_version": 1,
                  "judge": FILE + {"attributes", "image_size"},
                  "reporting_judge": FILE + {"attributes", "image_size", "arch", "val_accuracy_mean", "role"}}

FILE is a model directory's file entry (core.manifest.file_entry: path, sha256, bytes, inputs, outputs); either
judge may be absent. Reading a set checks that every listed file is there with its size and sha256. The
repository keeps the shipped model's judges in evaluation/judges/, outside the faceedit package, so a wheel
never carries them: `faceedit eval` finds them there when it runs from a clone (clone_judges_dir), and
`faceedit export-judge` writes into a set. Standard library only."""
from __future__ import annotations

import json
from pathlib import Path

from faceedit.core.files import atomic_write_bytes, read_json_object, sha256_file

JUDGES_NAME = "judges.json"
FORMAT = "faceedit-judges"
FORMAT_VERSION = 1
CHOICE, REPORTING = "judge", "reporting_judge"  # keys in judges.json, and the files' stems


class JudgeSetError(ValueError):
    """A judge set that cannot be used; the message is one line for the user."""


def clone_judges_dir() -> Path:
    """evaluation/judges/ of the repository checkout this faceedit runs from (absent in an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "evaluation" / "judges"


def load_judge_set(folder, verify: bool = True) -> dict:
    """FOLDER/judges.json, checked: format, and every listed file present with its sha256 (verify=False: its
    size only). Raises JudgeSetError with a one-line message otherwise."""
    folder = Path(folder)
    path = folder / JUDGES_NAME
    judges = _read(path)
    for key in (CHOICE, REPORTING):
        entry = judges.get(key)
        if entry is None:
            continue
        rel = Path(str(entry.get("path", ""))) if isinstance(entry, dict) else Path()
        if rel.name != str(rel) or not rel.name:  # a bare file name in the set's own folder
            raise JudgeSetError(f"{path}: bad \"{key}\" entry (a file name in {folder} expected)")
        f = folder / rel
        if not f.is_file():
            raise JudgeSetError(f"judge file {rel} listed in {path} is missing")
        if f.stat().st_size != entry.get("bytes") or (verify and sha256_file(f) != entry.get("sha256")):
            raise JudgeSetError(f"judge file {f} does not match {path} (sha256 differs): damaged or replaced")
    return judges


def _read(path: Path) -> dict:
    if not path.is_file():
        raise JudgeSetError(f"{path.parent} is not a judge set (no {JUDGES_NAME})")
    judges = read_json_object(path, JudgeSetError)
    if judges.get("format") != FORMAT or judges.get("format_version") != FORMAT_VERSION:
        raise JudgeSetError(f"{path} is not a {FORMAT} file of version {FORMAT_VERSION}")
    return judges


def write_judge_entry(folder, key: str, entry: dict) -> dict:
    """List `entry` (its file already in FOLDER) under `key` in FOLDER/judges.json, keeping the other judge;
    written atomically. Returns the new contents."""
    if key not in (CHOICE, REPORTING):
        raise ValueError(f"judge key must be {CHOICE} or {REPORTING}, got {key!r}")
    folder = Path(folder)
    judges = {"format": FORMAT, "format_version": FORMAT_VERSION}
    if (folder / JUDGES_NAME).is_file():
        judges = _read(folder / JUDGES_NAME)
    judges[key] = entry
    atomic_write_bytes(folder / JUDGES_NAME, (json.dumps(judges, indent=2) + "\n").encode())
    return judges
