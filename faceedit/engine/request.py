"""One edit request: the user's attribute settings resolved once against a model's attribute names, with the
options of that edit.

`--set young=1 --set smiling=0.3 --fixed-strength` (or an HTTP query, or a dict from Python) becomes an
EditRequest at the edge, and that object travels down to the decoder: names are matched and values checked
exactly once, and the options ride along instead of as loose flags beside it.

The options say which of the Editor's steps this edit may use. Each defaults to "everything the model can
do"; a request can only turn a step off (Editor.load's switches say what the model/editor can do at all)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from faceedit.core.attributes import resolve
from faceedit.engine.errors import EngineError

VALUE_RANGE = (-1.0, 2.0)  # 0 off, 1 on, in between interpolates, beyond extrapolates


def parse_changes(items) -> dict[str, float]:
    """Attribute settings as text -> the changes Editor.request takes: ["young=1", "smiling=0.3"] ->
    {"young": 1.0, "smiling": 0.3} (names are checked by Editor.request). The CLI's --set and the HTTP
    query's set both come through here; an error has field "set"."""
    out = {}
    for item in items or ():
        name, sep, value = str(item).partition("=")
        if not sep or not name.strip() or not value.strip():
            raise EngineError(f"an attribute setting is NAME=VALUE (e.g. young=1), got '{item}'", field="set")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise EngineError(f"'{value}' is not a number for {name.strip()} (0 off, 1 on, -1..2)",
                              field="set") from None
    return out


@dataclass(frozen=True, eq=False)  # eq=False: compared by identity (its arrays have no single truth value)
class EditRequest:
    target: np.ndarray   # [A] float32: the value asked for each attribute (0 where not set)
    mask: np.ndarray     # [A] float32: 1 where the user set the attribute
    names: tuple         # the model's attribute names (columns of target/mask)
    auto_strength: bool = True  # False: every edit at its attribute's gain (--fixed-strength)
    implied: bool = True        # False: only the attributes named, no implied rules (--literal)
    filtered: bool = True       # False: the decoder's change as it comes, no edit filter (--unfiltered)
    raw: bool = False           # True: the decoder's output instead of the residual edit (--raw)

    @property
    def changed(self) -> set[str]:
        return {n for n, m in zip(self.names, self.mask) if m}

    @property
    def values(self) -> dict[str, float]:
        return {n: float(t) for n, t, m in zip(self.names, self.target, self.mask) if m}

    @property
    def options(self) -> tuple:
        """(auto_strength, implied, filtered, raw): rows with the same options run through the same steps."""
        return (self.auto_strength, self.implied, self.filtered, self.raw)

    def narrowed(self, *, auto_strength: bool = True, implied: bool = True, filtered: bool = True,
                 raw: bool = False) -> "EditRequest":
        """This request with the steps asked for turned off (and raw turned on); an option left at its default
        keeps this request's own, so narrowing never turns a step back on. Unchanged: this very object."""
        opts = dict(auto_strength=self.auto_strength and auto_strength, implied=self.implied and implied,
                    filtered=self.filtered and filtered, raw=self.raw or raw)
        return self if tuple(opts.values()) == self.options else replace(self, **opts)

    @classmethod
    def resolve(cls, changes, names, *, auto_strength: bool = True, implied: bool = True, filtered: bool = True,
                raw: bool = False) -> "EditRequest":
        """{"young": 1, "smiling": 0.3} (any case, CelebA spelling or not) -> EditRequest with these options; an
        EditRequest made for the same attribute names passes through, narrowed by the options given (see
        narrowed). Unknown names and values outside -1..2 raise EngineError with a one-line message."""
        names = tuple(names)
        options = dict(auto_strength=bool(auto_strength), implied=bool(implied), filtered=bool(filtered), raw=bool(raw))
        if isinstance(changes, EditRequest):
            if changes.names != names:
                raise EngineError("this edit request was made for another model's attributes")
            return changes.narrowed(**options)
        target, mask = np.zeros(len(names), np.float32), np.zeros(len(names), np.float32)
        changes = dict(changes or {})
        try:
            matched = resolve(list(changes), list(names)) if changes else []
        except ValueError as e:
            raise EngineError(str(e), field="set") from None
        for requested, name in zip(changes, matched):
            try:
                v = float(changes[requested])
            except (TypeError, ValueError):
                raise EngineError(f"value for {requested} must be a number, got {changes[requested]!r}",
                                  field="set") from None
            if not (VALUE_RANGE[0] <= v <= VALUE_RANGE[1]) or v != v:
                raise EngineError(f"value {v:g} for {requested} is out of range: use 0 (off) .. 1 (on), "
                                  f"or {VALUE_RANGE[0]:g} .. {VALUE_RANGE[1]:g} to extrapolate", field="set")
            i = names.index(name)
            target[i], mask[i] = v, 1.0
        target.setflags(write=False)
        mask.setflags(write=False)
        return cls(target, mask, names, **options)
