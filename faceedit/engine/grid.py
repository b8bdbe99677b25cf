"""Faces [N,S,S,3] -> one near-square grid image with a thin gap."""
from __future__ import annotations

import math

import numpy as np


def grid(faces: np.ndarray, gap: int = 2, background: int = 255) -> np.ndarray:
    n, s = len(faces), faces.shape[1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * s + (rows - 1) * gap, cols * s + (cols - 1) * gap, 3), background, np.uint8)
    for i, f in enumerate(faces):
        r, c = divmod(i, cols)
        out[r * (s + gap):r * (s + gap) + s, c * (s + gap):c * (s + gap) + s] = f
    return out
