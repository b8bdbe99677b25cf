"""Auto strength: an edit that does not register with the model's own attribute head is pushed harder.

Each attribute may have a top multiplier on its decoder gain (manifest "edit_strength.auto"). The editor
renders every row at multiplier 1, asks the attribute head whether each attribute the user set to 0 or 1
now reads as asked, and re-renders only the rows where one does not, that attribute RUNG higher, until the
head agrees or the top is reached (the strongest result then stays). Rows that landed at once cost one
extra attribute-head pass. The judge that scores edits is never consulted: it only measures.
No torch here: the engine, `faceedit eval` and the export share this one rule."""
from __future__ import annotations

import numpy as np

RUNG = 0.5  # multiplier step: 1, 1.5, 2, ... (multiplier m on gain g = value 0.5 + m (v - 0.5) at gain g)


def multipliers_up_to(top: float) -> list[float]:
    """The rungs an attribute climbs: 1, 1.5, ..., top."""
    return [1.0 + RUNG * i for i in range(int(round((top - 1.0) / RUNG)) + 1)]


def pushable(values: np.ndarray, mask: np.ndarray, top: np.ndarray) -> np.ndarray:
    """[N, A] bool: set to exactly 'on' or 'off' (1 or 0: a partial value such as 0.3 asks for a partial edit,
    and one beyond, such as 2, is the user's own choice of strength; neither is pushed further), on an
    attribute that has rungs above 1."""
    return (mask > 0) & ((values == 1) | (values == 0)) & (np.asarray(top)[None, :] > 1.0)


def reads_as_asked(probs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[N, A] bool: the attribute head's decision matches the value the user set."""
    return (probs > 0.5) == (values >= 0.5)


def auto_multipliers(render, head, values: np.ndarray, mask: np.ndarray, top) -> np.ndarray:
    """values, mask: [N, A] user values and which attributes were set; top: [A] top multipliers (1 = off).
    render(rows, multipliers[len(rows), A]) renders those rows (the caller keeps the results) and returns
    the images the user will see, at model size; head(images) -> probabilities [len(rows), A].
    Renders every row at multiplier 1 first; returns the multipliers [N, A] each row ended with."""
    values = np.asarray(values, np.float32)
    top = np.asarray(top, np.float32)
    mult = np.ones(values.shape, np.float32)
    rows = np.arange(len(values))
    images = render(rows, mult)
    pending = pushable(values, mask, top)
    live = np.flatnonzero(pending.any(1))
    if len(live):
        pending[live] &= ~reads_as_asked(head(images[live]), values[live])
    while True:
        climb = pending & (mult + RUNG <= top[None, :] + 1e-6)
        live = np.flatnonzero(climb.any(1))
        if not len(live):
            return mult
        mult = np.where(climb, mult + RUNG, mult)
        images = render(live, mult[live])
        pending[:] = False
        pending[live] = climb[live] & ~reads_as_asked(head(images), values[live])


def top_multipliers(edit_strength: dict | None, names) -> list[float]:
    """Manifest "edit_strength" -> one top multiplier per attribute (1 where it has no "auto" entry)."""
    auto = ((edit_strength or {}).get("auto") or {}).get("top_multiplier") or {}
    tops = [float(auto.get(n, 1.0)) for n in names]
    if not all(1.0 <= t <= 4.0 and abs((t - 1.0) / RUNG - round((t - 1.0) / RUNG)) < 1e-6 for t in tops):
        raise ValueError(f"auto strength top multipliers must be 1, 1.5, ... up to 4, got {tops}")
    return tops
