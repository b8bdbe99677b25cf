"""The model directory's manifest: writing it (export) and reading + verifying it (engine).

Standard library only, so the lean runtime can import it without torch or numpy. See
docs/model-directory.md for the contract.
"""
from __future__ import annotations

import json
from pathlib import Path

from faceedit.core.files import atomic_write_bytes, read_json_object, sha256_file

MANIFEST_NAME = "manifest.json"
FORMAT = "faceedit-model"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A model directory that cannot be used; the message is one line for the user."""


def file_entry(path, inputs, outputs) -> dict:
    """A FILE entry: the path relative to the model directory (its base name), its hash and size, and
    its tensor signature. inputs/outputs: lists of {"name", "dtype", "shape"} (shape may use "N")."""
    p = Path(path)
    return {"path": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size,
            "inputs": [dict(t) for t in inputs], "outputs": [dict(t) for t in outputs]}


def decoder_fingerprint(manifest: dict) -> str:
    """What identifies the weights an evaluation of a model directory measured: the fp32 decoder's sha256
    (one export writes every graph, so a new export changes it too). `faceedit eval` records it and
    `faceedit export-update` checks it."""
    return manifest["graphs"]["decoder"]["fp32"]["sha256"]


def write_manifest(model_dir, manifest: dict) -> Path:
    """Write manifest.json atomically (temp file in the same folder, fsync, rename): a reader sees the
    old manifest or the new one, never half of one."""
    model_dir = Path(model_dir)
    target = model_dir / MANIFEST_NAME
    atomic_write_bytes(target, (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode())
    return target


def iter_files(manifest: dict):
    """Every file the manifest lists: graphs (all precisions), the latent prior, TensorRT engines, and the
    companions of an entry (an OpenVINO IR's .bin weights). The judges that score edits are no part of a model
    directory (core.judge_set); a "judge" entry of an older manifest is ignored."""
    entries = []
    for graph, precisions in (manifest.get("graphs") or {}).items():
        for precision, entry in (precisions or {}).items():
            entries.append((f"{graph}/{precision}", entry))
    entries.append(("latent_prior", manifest.get("latent_prior")))
    trt = manifest.get("tensorrt")
    if isinstance(trt, dict):
        entries += [(f"tensorrt/{k}", e) for k, e in (trt.get("engines") or {}).items()]
    for key, entry in entries:
        if isinstance(entry, dict) and "path" in entry:
            yield key, entry
            for extra in entry.get("companions") or ():
                if isinstance(extra, dict) and "path" in extra:
                    yield key, extra


def load_manifest(model_dir, verify: bool = True) -> dict:
    """Read MODEL_DIR/manifest.json and check it: format and version, every listed file present, and
    (verify=True) every file's sha256. Raises ManifestError with a one-line message otherwise.

    verify=False skips only the hashing (seconds for big graphs), never the presence checks."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise ManifestError(f"model directory {model_dir} does not exist")
    if not model_dir.is_dir():
        raise ManifestError(f"{model_dir} is not a directory (expected a model directory from `faceedit export`)")
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{model_dir} has no {MANIFEST_NAME}: not a model directory written by `faceedit export`")
    manifest = read_json_object(path, ManifestError, ": the model directory is damaged")
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ManifestError(f"{path} has format version {manifest.get('format_version')!r}; this faceedit reads "
                            f"version {FORMAT_VERSION} (re-export the model with this faceedit)")
    if not isinstance(manifest.get("graphs"), dict) or not manifest["graphs"]:
        raise ManifestError(f"{path} lists no graphs: the model directory is damaged")
    checked = set()  # a companion shared by several graphs (weights.bin) is hashed once
    for _, entry in iter_files(manifest):
        rel = entry["path"]
        if (rel, entry.get("sha256")) in checked:
            continue
        checked.add((rel, entry.get("sha256")))
        # a manifest may only name files inside its own directory
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ManifestError(f"{path} names a file outside the model directory ({rel})")
        f = model_dir / rel
        if not f.is_file():
            raise ManifestError(f"model file {rel} listed in the manifest is missing from {model_dir}")
        if verify:
            # a size mismatch is a sha256 mismatch found without reading the file
            if ("bytes" in entry and f.stat().st_size != entry["bytes"]) or sha256_file(f) != entry.get("sha256"):
                raise ManifestError(f"model file {rel} does not match its manifest (sha256 differs): "
                                    "the model directory is damaged or was edited")
    return manifest
