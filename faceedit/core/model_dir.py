"""Find a model directory (a path, a name, or the shipped default) and read its verified manifest."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from faceedit.core.attributes import edit_gains
from faceedit.core.manifest import ManifestError as ModelError
from faceedit.core.manifest import load_manifest
from faceedit.core.implied import rule_table
from faceedit.core.strength import top_multipliers
from faceedit.core.tiers import tier_table


def models_root() -> Path:
    from faceedit.models import MODELS_DIR
    return MODELS_DIR


def find_model_dir(model=None) -> Path:
    """None -> the shipped default; an existing path -> itself; a bare name -> a folder of that name under
    $FACEEDIT_MODELS (if set) or the package's models folder."""
    if model is None or str(model) in ("", "default"):
        from faceedit.models import DEFAULT_MODEL
        if not (DEFAULT_MODEL / "manifest.json").is_file():
            raise ModelError(f"the default model is not installed ({DEFAULT_MODEL} has no manifest.json): "
                             "pass --model MODEL_DIR (a folder written by `faceedit export`)")
        return DEFAULT_MODEL
    p = Path(model).expanduser()
    if p.exists() or os.sep in str(model) or str(model).startswith("."):
        return p
    roots = [Path(r) for r in os.environ.get("FACEEDIT_MODELS", "").split(os.pathsep) if r] + [models_root()]
    for root in roots:
        if (root / str(model)).is_dir():
            return root / str(model)
    raise ModelError(f"model '{model}' not found: not a folder, and no model of that name in "
                     + ", ".join(str(r) for r in roots))


@dataclass
class ModelInfo:
    """What the runtime needs from a manifest, checked once."""
    path: Path
    manifest: dict
    image_size: int
    z_shape: tuple
    attribute_names: list
    defaults: list
    crop: dict
    graphs: dict = field(default_factory=dict)
    latent_prior: str | None = None  # file name of the fitted latent Gaussian (sample() draws from it)
    edit_gains: list = field(default_factory=list)  # per attribute: a set value v enters the decoder as
                                                     # 0.5 + gain * (v - 0.5); see manifest "edit_strength"
    edit_tops: list = field(default_factory=list)  # per attribute: auto strength's top multiplier (1 = off)
    implied: object = None  # faceedit.core.implied.rule_table of the manifest's "implied" rules, or None
    eval_summary: dict = field(default_factory=dict)  # manifest "eval": `faceedit eval` figures, if exported with them
    edit_filter: dict | None = None  # manifest "edit_filter": how the edit's change is filtered (engine.edit_filter)
    tiers: dict = field(default_factory=dict)  # attribute -> "stable" | "experimental" (core.tiers); {} if unrated
    edit_mask: bool = False  # manifest "edit_mask": decoder and editor graphs also output the edit's soft mask

    @classmethod
    def load(cls, model=None, verify: bool = True) -> "ModelInfo":
        path = find_model_dir(model)
        m = load_manifest(path, verify=verify)
        try:
            names = [a["name"] for a in m["attributes"]]
            defaults = [float(a.get("default") or 0.0) for a in m["attributes"]]
            info = cls(path=path, manifest=m, image_size=int(m["image_size"]), z_shape=tuple(m["z_shape"]),
                       attribute_names=names, defaults=defaults, crop=dict(m["crop"]), graphs=m["graphs"],
                       edit_gains=edit_gains(m.get("edit_strength"), names),
                       edit_tops=top_multipliers(m.get("edit_strength"), names),
                       latent_prior=(m.get("latent_prior") or {}).get("path"),
                       eval_summary=dict(m.get("eval") or {}), edit_filter=m.get("edit_filter") or None)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{path}/manifest.json lacks a required field ({e}): the model directory is damaged") from None
        try:
            info.implied = rule_table(m.get("implied"), names)
        except (AttributeError, TypeError, ValueError) as e:
            raise ModelError(f"{path}/manifest.json: bad \"implied\" entry: {e}") from None
        try:
            info.tiers = tier_table(m.get("tiers"), names)
        except ValueError as e:
            raise ModelError(f"{path}/manifest.json: bad \"tiers\" entry: {e}") from None
        info.edit_mask = _edit_mask(path, m)
        if m.get("layout", "NCHW") != "NCHW" or m.get("channel_order", "RGB") != "RGB":
            raise ModelError(f"{path}: unsupported layout {m.get('layout')}/{m.get('channel_order')} (expected NCHW RGB)")
        return info

    def weak_edits(self, names, below: float = 0.25) -> list[tuple[str, float, str]]:
        """(name, measured edit success, split) for each attribute whose edits landed on fewer than `below`
        of the evaluated faces: the CLI warns before a user waits for an edit that rarely shows."""
        rates = self.eval_summary.get("edit_success_per_attribute") or {}
        split = str(self.eval_summary.get("split", "evaluation"))
        return [(n, float(rates[n]), split) for n in names if isinstance(rates.get(n), (int, float)) and rates[n] < below]

    def precisions_of(self, graph: str) -> list[str]:
        return list((self.graphs.get(graph) or {}).keys())


def _edit_mask(path, m: dict) -> bool:
    """Whether the manifest has an edit mask: then every decoder and editor graph must end in its output."""
    entry = m.get("edit_mask")
    if not entry:
        return False
    if not isinstance(entry, dict) or not isinstance(entry.get("output"), str):
        raise ModelError(f"{path}/manifest.json: bad \"edit_mask\" entry (expected {{\"output\": NAME, ...}})")
    for graph in ("decoder", "editor"):
        for precision, f in ((m.get("graphs") or {}).get(graph) or {}).items():
            outs = [t.get("name") for t in f.get("outputs") or []]
            if not outs or outs[-1] != entry["output"]:
                raise ModelError(f"{path}/manifest.json: the model has an edit mask but its {graph} graph "
                                 f"({precision}) does not end in output {entry['output']!r}")
    return True
