"""JobBatcher: the DynamicBatcher, extended for a service where every model call goes through one queue.

DynamicBatcher already batches edits of different faces with different changes (each row carries its own
target and mask). A service needs three things more, which this subclass adds without changing it:

- attribute reads (`submit_attributes`): rows for the attribute head alone;
- full edit reports (`submit_report`): the edited crop plus what the CLI prints about it (before/after
  probabilities, what auto strength pushed, what implied rules set), with the per-request options
  fixed_strength and literal. Those options are Editor settings, so rows are grouped by them and each group
  runs on a view of the one Editor that shares its loaded graphs (no second copy of the model);
- whole jobs (`submit_job`): a callable run by the worker between batches (samples), so nothing calls the
  backend outside the queue.

One collected batch may mix kinds; each kind (and option group) is one backend call. `on_batch(kind, rows)`
is called after every call, for metrics."""
from __future__ import annotations

import copy
import queue
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

from faceedit.engine import tensors
from faceedit.engine.batcher import DynamicBatcher, _Request
from faceedit.engine.errors import BatcherClosed, Overloaded


@dataclass
class _AttrRequest:
    x: np.ndarray        # [3,S,S], prepared by the caller
    future: Future


@dataclass
class _ReportRequest:
    crop: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    raw: bool
    options: tuple       # (fixed_strength, literal, unfiltered)
    post: Callable | None  # (crop, edited crop) -> the crop the user gets (e.g. colour-matched): run before "after"
    future: Future


@dataclass
class _JobRequest:
    fn: Callable
    future: Future


@dataclass
class EditReport:
    image: np.ndarray          # the edited crop (after post), uint8 at the crop's size
    before: np.ndarray         # [A] attribute probabilities of the input crop
    after: np.ndarray          # [A] attribute head on the edited crop
    multipliers: np.ndarray    # [A] auto strength's multiplier on each gain (1: not pushed)
    implied: np.ndarray        # [A] bool: set by an implied rule where the face read otherwise


class JobBatcher(DynamicBatcher):
    def __init__(self, editor, max_batch: int = 16, max_delay_ms: float = 2.0, max_queue: int = 1024,
                 on_batch: Callable[[str, int], None] | None = None):
        self._views = {(False, False): editor}
        self.on_batch = on_batch
        super().__init__(editor, max_batch=max_batch, max_delay_ms=max_delay_ms, max_queue=max_queue, workers=1)

    # ---- callers -------------------------------------------------------------------------------------
    def _put(self, item):
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.stats["rejected"] += 1
            raise Overloaded(f"the batcher's queue is full ({self.max_queue} requests waiting): retry later, or "
                             "raise max_queue / add capacity") from None
        if self._closed and item.future.cancel():
            raise BatcherClosed("the batcher is closed")
        return item.future

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit_attributes(self, crop) -> Future:
        """Future of the [A] attribute probabilities of one aligned crop."""
        x = tensors.to_tensor([tensors.as_rgb(crop)], self.editor.size)[0]
        return self._put(_AttrRequest(x, Future()))

    def submit_report(self, crop, changes: dict | None = None, raw: bool = False, fixed_strength: bool = False,
                      literal: bool = False, post: Callable | None = None, unfiltered: bool = False) -> Future:
        """Future of an EditReport for one aligned crop. Bad changes raise EngineError here, in the caller."""
        crop = tensors.as_rgb(crop)
        target, mask = self.editor.change_vectors(changes)
        options = (bool(fixed_strength), bool(literal), bool(unfiltered))
        return self._put(_ReportRequest(crop, target, mask, raw, options, post, Future()))

    def submit_job(self, fn: Callable) -> Future:
        """Future of fn(), run by the worker between batches (a model call that is not rows of a batch)."""
        return self._put(_JobRequest(fn, Future()))

    # ---- worker ----------------------------------------------------------------------------------------
    def _view(self, options: tuple):
        """The Editor with auto strength / implied rules / the edit filter turned off as asked, sharing the
        loaded graphs."""
        v = self._views.get(options)
        if v is None:
            fixed, literal, unfiltered = options
            v = copy.copy(self.editor)  # shallow: same backend, same graph dict, same lock
            v.auto_strength = self.editor.auto_strength and not fixed
            if literal:
                v._implied, v.implied = None, False
            if unfiltered:
                v._filter, v.edit_filter = None, False
            self._views[options] = v
        return v

    def _run(self, batch: list):
        plain = [r for r in batch if isinstance(r, _Request)]
        attrs = [r for r in batch if isinstance(r, _AttrRequest)]
        groups: dict = {}
        for r in batch:
            if isinstance(r, _ReportRequest):
                groups.setdefault((r.options, r.raw), []).append(r)
        if plain:
            super()._run(plain)
            self._observe("edit", len(plain))
        if attrs:
            self._guarded(attrs, lambda: self._run_attributes(attrs), "attributes")
        for (options, raw), rows in groups.items():
            self._guarded(rows, lambda: self._run_reports(rows, self._view(options), raw), "edit")
        for r in batch:
            if isinstance(r, _JobRequest):
                self._guarded([r], lambda: r.future.set_result(r.fn()), "job")

    def _guarded(self, rows, fn, kind):
        try:
            fn()
        except BaseException as e:  # the model failed: every caller in this group gets the error
            for r in rows:
                if not r.future.done():
                    r.future.set_exception(e)
            return
        self.stats["batches"] += 1
        self.stats["rows"] += len(rows)
        self._observe(kind, len(rows))

    def _observe(self, kind, n):
        if self.on_batch is not None:
            self.on_batch(kind, n)

    def _run_attributes(self, rows):
        probs = self.editor.run_attributes(np.stack([r.x for r in rows]))
        for r, p in zip(rows, probs):
            r.future.set_result(p)

    def _run_reports(self, rows, editor, raw):
        out = editor.edit_crops([r.crop for r in rows], np.stack([r.target for r in rows]),
                                np.stack([r.mask for r in rows]), raw=raw)
        finals = [r.post(r.crop, im) if r.post else im for r, im in zip(rows, out.images)]
        after = editor.run_attributes(tensors.to_tensor(finals, editor.size))
        a = len(editor.attribute_names)
        for i, r in enumerate(rows):
            mult = out.multipliers[i] if out.multipliers is not None else np.ones(a, np.float32)
            implied = out.implied[i] if out.implied is not None else np.zeros(a, bool)
            r.future.set_result(EditReport(finals[i], out.before[i], after[i], mult, implied))
