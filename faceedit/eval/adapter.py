"""The one place faceedit/eval calls the engine's Editor: every edit eval scores is rendered by render(), and
every attribute-head reading of a model-size result by head(), so a change of the Editor's API touches this
file alone.

render() edits uint8 crops the way the product does (engine.Editor.edit_crops with one EditRequest per crop:
implied attributes on, the edit filter where the model has one) and returns the model-size tensors eval
scores: the raw decoder output, the reconstruction, the result the user gets, the attribute head's reading
of the input, and auto strength's multipliers. sample() draws new faces with given attributes, as `faceedit
sample` does."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Rendered(NamedTuple):
    edited: np.ndarray          # [N, 3, S, S] the decoder's raw output, in [-1, 1]
    reconstruction: np.ndarray  # [N, 3, S, S] the decoder's reconstruction (the face's own attributes)
    result: np.ndarray          # [N, 3, S, S] what the user gets, at model size: residual, edit filter applied
    probs: np.ndarray           # [N, A] the attribute head on the input
    multipliers: np.ndarray     # [N, A] auto strength's multiplier on each gain (1: rendered once)
    images: list                # uint8 results at each crop's own size


def render(editor, crops, values: np.ndarray, mask: np.ndarray, auto_strength: bool = False) -> Rendered:
    """crops: uint8 HxWx3 RGB (a list or [N, H, W, 3]); values, mask [N, A]: each crop's attributes set to
    values where mask is 1. auto_strength=False renders every value at its attribute's gain (eval's fixed
    strength); True pushes edits as the product's default edit does (where the model has auto strength)."""
    out = editor.edit_crops(list(crops), _requests(editor, values, mask, auto_strength))
    return Rendered(out.edited, out.reconstruction, out.result, out.before, out.multipliers, out.images)


def head(editor, x: np.ndarray) -> np.ndarray:
    """The model's attribute head on model-size images [N, 3, S, S] in [-1, 1] (results, read unquantised)."""
    return editor.run_attributes(np.ascontiguousarray(x, np.float32))


def sample(editor, labels: np.ndarray, seed: int, temperature: float | None = None) -> np.ndarray:
    """One new face per row of labels [N, A] (0/1, the model's attribute order), drawn as the product draws
    them (engine.Editor.sample_rows: every attribute set to the row's value): [N, S, S, 3] uint8."""
    names = editor.attribute_names
    return editor.sample_rows([{n: float(v) for n, v in zip(names, row)} for row in np.asarray(labels)], seed,
                              temperature)


def prior(editor, temperature: float | None = None) -> dict:
    """How sample() draws: the model's latent prior (kind, temperature, sha256 of its file; engine.prior)."""
    return editor.prior.describe(temperature)


def _requests(editor, values, mask, auto_strength) -> list:
    """One EditRequest per row (rows asking the same are given the same request)."""
    names, made, out = editor.attribute_names, {}, []
    for v, m in zip(np.asarray(values, np.float32), np.asarray(mask)):
        key = tuple((int(i), float(v[i])) for i in np.flatnonzero(m))
        if key not in made:
            made[key] = editor.request({names[i]: value for i, value in key}, auto_strength=auto_strength)
        out.append(made[key])
    return out
