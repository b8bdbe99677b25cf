"""One edit request: the user's attribute settings resolved once against a model's attribute names.

`--set young=1 --set smiling=0.3` (or an HTTP body, or a dict from Python) becomes an EditRequest at the
edge, and that object travels down to the decoder: names are matched and values checked exactly once."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceedit.core.attributes import resolve
from faceedit.engine.errors import EngineError

VALUE_RANGE = (-1.0, 2.0)  # 0 off, 1 on, in between interpolates, beyond extrapolates


@dataclass(frozen=True)
class EditRequest:
    target: np.ndarray   # [A] float32: the value asked for each attribute (0 where not set)
    mask: np.ndarray     # [A] float32: 1 where the user set the attribute
    names: tuple         # the model's attribute names (columns of target/mask)

    @property
    def changed(self) -> set[str]:
        return {n for n, m in zip(self.names, self.mask) if m}

    @property
    def values(self) -> dict[str, float]:
        return {n: float(t) for n, t, m in zip(self.names, self.target, self.mask) if m}

    @classmethod
    def resolve(cls, changes, names) -> "EditRequest":
        """{"young": 1, "smiling": 0.3} (any case, CelebA spelling or not) -> EditRequest; an EditRequest made
        for the same attribute names passes through. Unknown names and values outside -1..2 raise EngineError
        with a one-line message."""
        names = tuple(names)
        if isinstance(changes, EditRequest):
            if changes.names != names:
                raise EngineError("this edit request was made for another model's attributes")
            return changes
        target, mask = np.zeros(len(names), np.float32), np.zeros(len(names), np.float32)
        changes = dict(changes or {})
        try:
            matched = resolve(list(changes), list(names)) if changes else []
        except ValueError as e:
            raise EngineError(str(e)) from None
        for requested, name in zip(changes, matched):
            try:
                v = float(changes[requested])
            except (TypeError, ValueError):
                raise EngineError(f"value for {requested} must be a number, got {changes[requested]!r}") from None
            if not (VALUE_RANGE[0] <= v <= VALUE_RANGE[1]) or v != v:
                raise EngineError(f"value {v:g} for {requested} is out of range: use 0 (off) .. 1 (on), "
                                  f"or {VALUE_RANGE[0]:g} .. {VALUE_RANGE[1]:g} to extrapolate")
            i = names.index(name)
            target[i], mask[i] = v, 1.0
        target.setflags(write=False)
        mask.setflags(write=False)
        return cls(target, mask, names)
