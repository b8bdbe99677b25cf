"""JobBatcher: the DynamicBatcher, extended for a service where every model call goes through one queue.

DynamicBatcher already batches edits of different faces with different requests (each row carries its own
EditRequest: values and options). A service needs three things more, which this subclass adds without
changing it:

- attribute reads (`submit_attributes`): rows for the attribute head alone;
- full edit reports (`submit_report`): the edited crop plus what the CLI prints about it (before/after
  probabilities, what auto strength pushed, what implied rules set), as a one-row CropEdits. Every report row
  of a batch goes to the Editor in one edit_crops call (it groups rows by their options), and the attribute
  head reads every result in one call;
- whole jobs (`submit_job`): a callable run by the worker between batches (samples), so nothing calls the
  backend outside the queue.

One collected batch may mix kinds; each kind is one backend call (an edit: one per option group, inside the
Editor). `on_batch(kind, rows)` is called after every kind, for metrics."""
from __future__ import annotations

import queue
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

from faceedit.engine import tensors
from faceedit.engine.batcher import DynamicBatcher, _Request
from faceedit.engine.errors import BatcherClosed, Overloaded
from faceedit.engine.request import EditRequest


@dataclass
class _AttrRequest:
    x: np.ndarray        # [3,S,S], prepared by the caller
    future: Future


@dataclass
class _ReportRequest:
    crop: np.ndarray
    request: EditRequest
    post: Callable | None  # edited crop -> the crop the user gets (e.g. colour-matched): run before "after"
    future: Future


@dataclass
class _JobRequest:
    fn: Callable
    future: Future


class JobBatcher(DynamicBatcher):
    def __init__(self, editor, max_batch: int = 16, max_delay_ms: float = 2.0, max_queue: int = 1024,
                 on_batch: Callable[[str, int], None] | None = None):
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

    def submit_report(self, crop, request, post: Callable | None = None) -> Future:
        """Future of a one-row CropEdits (with .after: the attribute head on the crop the user gets) for one
        aligned crop. request: an EditRequest (its options included; a dict is resolved here). post: edited
        crop (and, for a model with an edit mask, the row's mask [S,S]) -> the crop the user gets, run by the
        worker before "after" is read (PhotoEditor.finish_crop).
        A bad image or request raises EngineError here, in the caller."""
        crop = tensors.as_rgb(crop)
        request = self.editor.request(request)
        return self._put(_ReportRequest(crop, request, post, Future()))

    def submit_job(self, fn: Callable) -> Future:
        """Future of fn(), run by the worker between batches (a model call that is not rows of a batch)."""
        return self._put(_JobRequest(fn, Future()))

    # ---- worker ----------------------------------------------------------------------------------------
    def _run(self, batch: list):
        plain = [r for r in batch if isinstance(r, _Request)]
        attrs = [r for r in batch if isinstance(r, _AttrRequest)]
        reports = [r for r in batch if isinstance(r, _ReportRequest)]
        if plain:
            super()._run(plain)
            self._observe("edit", len(plain))
        if attrs:
            self._guarded(attrs, lambda: self._run_attributes(attrs), "attributes")
        if reports:
            self._guarded(reports, lambda: self._run_reports(reports), "edit")
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

    def _run_reports(self, rows):
        # one edit of every row (the Editor groups them by options), one attribute read of every result
        out = self.editor.edit_crops([r.crop for r in rows], [r.request for r in rows])
        # post gets the row's edit mask too where the model has one (PhotoEditor.finish_crop gates a raw edit)
        images = [(r.post(im) if out.edit_mask is None else r.post(im, out.edit_mask[i])) if r.post else im
                  for i, (r, im) in enumerate(zip(rows, out.images))]
        out = out.finished(images, self.editor.attributes(images))
        for i, r in enumerate(rows):
            r.future.set_result(out.row(i))
