"""The one place faceedit/eval calls the engine's Editor: every edit eval scores is rendered by render(), and
every attribute-head reading of a model-size result by head(), so a change of the Editor's API touches this
file alone.

render() edits uint8 crops the way the product does (engine.Editor.edit_crops with one EditRequest per crop:
implied attributes on, the edit filter where the model has one) and returns the model-size tensors eval
scores: the raw decoder output, the reconstruction, the result the user gets, the attribute head's reading
of the input, and auto strength's multipliers."""
from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np

from faceedit.engine import tensors


class Rendered(NamedTuple):
    edited: np.ndarray          # [N, 3, S, S] the decoder's raw output, in [-1, 1]
    reconstruction: np.ndarray  # [N, 3, S, S] the decoder's reconstruction (the face's own attributes)
    result: np.ndarray          # [N, 3, S, S] what the user gets, at model size: residual, edit filter applied
    probs: np.ndarray           # [N, A] the attribute head on the input
    multipliers: np.ndarray     # [N, A] auto strength's multiplier on each gain (1: rendered once)
    images: list | None = None  # uint8 results at each crop's own size (None where not computed)


def render(editor, crops, values: np.ndarray, mask: np.ndarray, auto_strength: bool = False) -> Rendered:
    """crops: uint8 HxWx3 RGB (a list or [N, H, W, 3]); values, mask [N, A]: each crop's attributes set to
    values where mask is 1. auto_strength=False renders every value at its attribute's gain (eval's fixed
    strength); True pushes edits as the product's default edit does (where the model has auto strength)."""
    crops = list(crops)
    if not _takes_requests(editor):  # the Editor API before edit_crops(crops, requests)
        return _render_tensors(editor, crops, values, mask, auto_strength)
    out = editor.edit_crops(crops, _requests(editor, values, mask, auto_strength))
    mult = getattr(out, "multipliers", None)
    return Rendered(out.edited, out.reconstruction, out.result, out.before,
                    np.ones(np.shape(values), np.float32) if mult is None else mult, getattr(out, "images", None))


def head(editor, x: np.ndarray) -> np.ndarray:
    """The model's attribute head on model-size images [N, 3, S, S] in [-1, 1] (results, read unquantised)."""
    return editor.run_attributes(np.ascontiguousarray(x, np.float32))


def _requests(editor, values, mask, auto_strength) -> list:
    """One EditRequest per row (rows asking the same are given the same request)."""
    names, made, out = editor.attribute_names, {}, []
    for v, m in zip(np.asarray(values, np.float32), np.asarray(mask)):
        key = tuple((int(i), float(v[i])) for i in np.flatnonzero(m))
        if key not in made:
            made[key] = editor.request({names[i]: value for i, value in key}, auto_strength=auto_strength)
        out.append(made[key])
    return out


def _takes_requests(editor) -> bool:
    return "target" not in inspect.signature(editor.edit_crops).parameters


def _render_tensors(editor, crops, values, mask, auto_strength) -> Rendered:
    """render() on the Editor API before EditRequest lists: run_edit_with_strength + residual, fixed strength
    from a twin Editor with auto strength off."""
    ed = editor if auto_strength else _fixed_twin(editor)
    x = tensors.to_tensor(crops, ed.size)
    values, mask = np.asarray(values, np.float32), np.asarray(mask, np.float32)
    edited, recon, probs, mult = ed.run_edit_with_strength(x, values, mask)
    result = ed.residual(x, edited, recon, mask)
    images = None
    if any(c.shape[:2] != (ed.size, ed.size) for c in crops):
        images = [ed.finish(c, edited[i], recon[i], False, mask[i]) for i, c in enumerate(crops)]
    return Rendered(edited, recon, result, probs, mult, images)


def _fixed_twin(editor):
    twin = getattr(editor, "_eval_fixed_twin", None)
    if twin is None:
        twin = type(editor)(editor.model, editor.backend, editor.precision, auto_strength=False,
                            implied=editor.implied, edit_filter=editor.edit_filter)
        editor._eval_fixed_twin = twin
    return twin
