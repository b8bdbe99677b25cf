"""Attribute names: one spelling rule shared by training, export and the engine (no torch here)."""
from __future__ import annotations

import difflib
import re

import numpy as np

# The 13 attributes the face-editing literature (AttGAN, STGAN) edits, plus Smiling.
DEFAULT_ATTRIBUTES = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses",
    "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young", "Smiling",
)
# The 13 standard ones, over which the headline figures are averaged.
STANDARD_13 = DEFAULT_ATTRIBUTES[:13]


def canonical(name: str) -> str:
    """'Blond-Hair', 'blond hair' and 'BLOND_HAIR' all become 'blond_hair'."""
    return re.sub(r"[\s\-_]+", "_", name.strip()).lower()


def resolve(requested: list[str] | tuple[str, ...], available: list[str] | tuple[str, ...]) -> list[str]:
    """Map user spellings onto the available names; unknown names raise ValueError with a suggestion."""
    by_key = {canonical(a): a for a in available}
    out = []
    for name in requested:
        key = canonical(name)
        if key not in by_key:
            raise ValueError(unknown_message(name, available))
        out.append(by_key[key])
    return out


def unknown_message(name: str, available) -> str:
    keys = [canonical(a) for a in available]
    close = difflib.get_close_matches(canonical(name), keys, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown attribute '{name}'.{hint} Valid: {', '.join(keys)}"


def decoder_value(value, gain=1.0):
    """A value a user sets (0 off, 1 on; -1..2 extrapolates) -> the decoder's attribute input:
    0.5 + gain * (value - 0.5). The decoder learnt 0/1 labels; a model's export may record a gain > 1
    (manifest "edit_strength") so that 1 pushes harder. `gain` is a number or one per attribute (the
    last axis of `value`). Works on floats and numpy arrays alike."""
    if np.all(np.asarray(gain) == 1.0):
        return value
    return 0.5 + np.asarray(gain) * (np.asarray(value) - 0.5)


def edit_gains(edit_strength: dict | None, names) -> list[float]:
    """Manifest "edit_strength" -> one decoder gain per attribute: its "per_attribute" entry where there is
    one, else the model's "gain" (1 when the manifest has none)."""
    edit_strength = edit_strength or {}
    base = float(edit_strength.get("gain", 1.0))
    per = edit_strength.get("per_attribute") or {}
    gains = [float(per.get(n, base)) for n in names]
    if not all(0 < g <= 4 for g in gains):  # also catches NaN
        raise ValueError(f"edit gains must be within 0..4, got {gains}")
    return gains
