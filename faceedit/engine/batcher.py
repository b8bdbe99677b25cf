"""Dynamic batching for concurrent callers (Triton's idea, in-process).

    with DynamicBatcher(editor, max_batch=16, max_delay_ms=2) as batcher:
        future = batcher.submit(face, {"young": 1})      # from any thread
        edited = future.result()

A worker takes the first waiting request, then keeps collecting until max_batch rows or max_delay_ms have
passed, runs them as one Editor.edit_crops call (each row with its own EditRequest: values and options), and
resolves each caller's own future. Callers validate their own images and requests before queueing, so one bad
request never fails a batch. The queue is bounded: when full, submit raises Overloaded at once."""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from faceedit.engine import tensors
from faceedit.engine.errors import BatcherClosed, EngineError, Overloaded
from faceedit.engine.request import EditRequest

_STOP = object()


@dataclass
class _Request:
    crop: np.ndarray        # HxWx3 uint8, checked by the caller
    request: EditRequest    # resolved by the caller
    future: Future


class DynamicBatcher:
    def __init__(self, editor, max_batch: int = 16, max_delay_ms: float = 2.0, max_queue: int = 1024,
                 workers: int = 1):
        from faceedit.engine.editor import MAX_BATCH
        if not 1 <= max_batch <= MAX_BATCH:
            raise EngineError(f"max_batch must be 1..{MAX_BATCH}, got {max_batch}")
        if max_queue < 1 or workers < 1 or max_delay_ms < 0:
            raise EngineError("max_queue and workers must be >= 1 and max_delay_ms >= 0")
        self.editor = editor
        self.max_batch, self.max_delay = max_batch, max_delay_ms / 1000.0
        self.max_queue = max_queue
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._close_lock = threading.Lock()
        self.stats = {"batches": 0, "rows": 0, "rejected": 0}
        self._workers = [threading.Thread(target=self._loop, name=f"faceedit-batcher-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._workers:
            t.start()

    # ---- callers -------------------------------------------------------------------------------------
    def submit(self, image, changes=None, raw: bool = False) -> Future:
        """Queue one edit of one aligned face crop; returns a Future of the edited crop (uint8, same size).
        changes: a dict or an EditRequest (with its options). Raises EngineError for a bad image or change,
        Overloaded when the queue is full, BatcherClosed after close()."""
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        crop = tensors.as_rgb(image)
        request = self.editor.request(changes, raw=raw)
        fut: Future = Future()
        try:
            self._queue.put_nowait(_Request(crop, request, fut))
        except queue.Full:
            self.stats["rejected"] += 1
            raise Overloaded(f"the batcher's queue is full ({self.max_queue} requests waiting): retry later, or "
                             "raise max_queue / add capacity") from None
        if self._closed:  # closed while we queued: the workers may be gone, do not leave it hanging
            if fut.cancel():
                raise BatcherClosed("the batcher is closed")
        return fut

    def edit(self, image, changes=None, raw: bool = False, timeout: float | None = None):
        """submit() and wait: the blocking call a request handler makes."""
        return self.submit(image, changes, raw).result(timeout)

    # ---- worker ----------------------------------------------------------------------------------------
    def _collect(self) -> list | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        deadline = time.perf_counter() + self.max_delay
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # let this batch finish; the stop is seen next round
                break
            batch.append(item)
        return batch

    def _loop(self):
        while True:
            batch = self._collect()
            if batch is None:
                return
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if live:
                self._run(live)

    def _run(self, batch: list[_Request]):
        try:  # one call for the batch: the Editor groups rows by their options
            out = self.editor.edit_crops([r.crop for r in batch], [r.request for r in batch])
            self.stats["batches"] += 1
            self.stats["rows"] += len(batch)
        except BaseException as e:  # the model failed: every caller in this batch gets the error
            for r in batch:
                r.future.set_exception(e)
            return
        for r, image in zip(batch, out.images):
            r.future.set_result(image)

    # ---- shutdown ----------------------------------------------------------------------------------
    def close(self, wait: bool = True, cancel_pending: bool = False):
        """Stop accepting requests. Pending ones are finished (or cancelled with cancel_pending=True); with
        wait=True, returns once the workers have exited."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if cancel_pending:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    item.future.cancel()
        for _ in self._workers:
            self._queue.put(_STOP)  # blocks only while the queue is full, i.e. until workers drain it
        if wait:
            for t in self._workers:
                t.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
