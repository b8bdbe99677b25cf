"""Implied attributes: an edit also sets what every training face with the requested value has.

Why: the decoder learnt from real faces, and some combinations never occur there (in CelebA a mustache comes
with a man's face and facial hair; the label counts are in docs/training-log.md). Asked for a mustache on a face
the model reads as female and beardless, the decoder is given a combination it never saw; with Male=1 and
No_Beard=0 set too it is given one it knows. A rule "A=v implies B=w" comes from the train
labels (P(B=w | A=v) >= min_share, and B=w not already near-universal), and the manifest lists the rules an
export adopted (`faceedit export-update --implied-for`), chosen on validation like every other edit setting.

A rule fires when the user sets A fully on (value >= 1) or off (<= 0) and leaves B alone; B then enters the
decoder at plain w, which is the face's own value wherever the face already agrees (so no extra model pass).
Two firing rules that disagree on B leave B alone; an attribute the user set is never overridden.
No torch here: the engine, `faceedit eval` and the export share this one rule."""
from __future__ import annotations

import numpy as np

MIN_SHARE = 0.97   # fixed before any rule was scored (why 0.97, not 0.95: docs/training-log.md, implied attributes)
MAX_BASE = 0.9     # B=w must be informative: not a value nearly every face has anyway


def derive_rules(labels: np.ndarray, names, attributes=None, min_share: float = MIN_SHARE,
                 max_base: float = MAX_BASE) -> dict[str, dict[str, int]]:
    """labels [N, A] 0/1 (training faces) -> {"Mustache=1": {"Male": 1, "No_Beard": 0}, ...} for the
    requested attributes (all if None); a value with no rule is left out."""
    labels = np.asarray(labels).astype(np.float64)
    names = list(names)
    rules = {}
    for a in attributes if attributes is not None else names:
        i = names.index(a)
        for v in (0, 1):
            rows = labels[:, i] == v
            if not rows.any():
                continue
            implied = {}
            for j, b in enumerate(names):
                if j == i:
                    continue
                on, base_on = labels[rows, j].mean(), labels[:, j].mean()
                for w, share, base in ((1, on, base_on), (0, 1 - on, 1 - base_on)):
                    if share >= min_share and base < max_base:
                        implied[b] = w
            if implied:
                rules[f"{a}={v}"] = implied
    return rules


def rule_table(implied: dict | None, names) -> np.ndarray | None:
    """Manifest "implied" -> int8 [2, A, A]: table[v, a, b] = w (0 or 1) where "names[a]=v" implies
    names[b]=w, else -1. None when the manifest has no rules. Raises ValueError on a malformed entry."""
    rules = (implied or {}).get("rules") or {}
    if not rules:
        return None
    names = list(names)
    table = np.full((2, len(names), len(names)), -1, np.int8)
    for key, targets in rules.items():
        a, _, v = str(key).partition("=")
        if a not in names or v not in ("0", "1") or not isinstance(targets, dict):
            raise ValueError(f"implied rule {key!r} must read 'Attribute=0' or 'Attribute=1' over this model's attributes")
        for b, w in targets.items():
            if b not in names or b == a or w not in (0, 1):
                raise ValueError(f"implied rule {key!r}: {b!r}={w!r} must name another attribute and 0 or 1")
            table[int(v), names.index(a), names.index(b)] = w
    return table


def implied_values(table: np.ndarray, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """values, mask [N, A]: what the user set -> (w [N, A] float32, fires [N, A] bool): the attributes the user
    left alone that the rules of the fully set ones (value >= 1 or <= 0) pin to w, where they agree."""
    values, set_ = np.asarray(values, np.float32), np.asarray(mask) > 0
    n, a = values.shape
    votes_on, votes_off = np.zeros((n, a), np.int32), np.zeros((n, a), np.int32)
    for v, full in ((1, set_ & (values >= 1)), (0, set_ & (values <= 0))):
        rows = table[v]                                 # [A, A]: rule of attribute a (row) for attribute b
        fired = full[:, :, None] & (rows[None] >= 0)    # [N, A, A]
        votes_on += (fired & (rows[None] == 1)).sum(1)
        votes_off += (fired & (rows[None] == 0)).sum(1)
    fires = ((votes_on > 0) ^ (votes_off > 0)) & ~set_
    return (votes_on > 0).astype(np.float32), fires


def apply_implied(table, decoder_in: np.ndarray, mask: np.ndarray, values: np.ndarray,
                  user_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's target/mask [N, A] with the implied attributes added (at plain 0/1); unchanged without rules."""
    if table is None:
        return decoder_in, mask
    w, fires = implied_values(table, values, user_mask)
    return (np.where(fires, w, decoder_in).astype(np.float32), np.where(fires, 1.0, mask).astype(np.float32))


def implied_changes(table, values, mask, probabilities) -> np.ndarray:
    """[N, A] bool: attributes an edit set by a rule where the face itself read otherwise (what changed)."""
    if table is None:
        return np.zeros(np.shape(values), bool)
    w, fires = implied_values(table, values, mask)
    return fires & ((np.asarray(probabilities) > 0.5) != (w > 0.5))
