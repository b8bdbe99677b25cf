"""Where an edit's time goes: seconds per step of Editor.edit_crops, summed over the edits of one thread while
a caller asks for them (`with editor.stage_times() as st: ...`; the bench's per-stage breakdown).

Stages nest: time spent in an inner stage is charged to it, not to the stage around it; inside an absorbing
stage (auto strength's extra renders) inner stages are charged to the absorbing one. Off (no caller asking)
each step costs one thread-local lookup."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager, nullcontext

STAGES = ("conversion", "target", "graph", "auto strength", "residual", "edit filter", "copy")
_OFF = nullcontext()
_local = threading.local()


class StageTimes:
    """Seconds charged to each stage (exclusive of nested stages), the number of edit calls and their total."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.calls = 0
        self.total = 0.0
        self._stack: list = []   # [stage, started, absorbing]

    @contextmanager
    def stage(self, name: str, absorb: bool = False):
        now = time.perf_counter()
        if self._stack:
            top = self._stack[-1]
            if top[2]:            # inside an absorbing stage: everything is its own
                yield
                return
            self.seconds[top[0]] = self.seconds.get(top[0], 0.0) + now - top[1]
        entry = [name, now, absorb]
        self._stack.append(entry)
        try:
            yield
        finally:
            end = time.perf_counter()
            self._stack.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + end - entry[1]
            if self._stack:
                self._stack[-1][1] = end  # the outer stage resumes now

    @contextmanager
    def call(self):
        """One edit call: counted, and its whole time added to the total."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.calls += 1
            self.total += time.perf_counter() - t0

    def as_dict(self) -> dict:
        """{"calls", "total_ms" (per call), "stages_ms": {stage: ms per call}, "other_ms": the rest per call}."""
        n = max(1, self.calls)
        per = {k: round(1e3 * v / n, 4) for k, v in self.seconds.items()}
        return {"calls": self.calls, "total_ms": round(1e3 * self.total / n, 4), "stages_ms": per,
                "other_ms": round(1e3 * (self.total - sum(self.seconds.values())) / n, 4)}


def call():
    """The context of one whole edit call: counted where this thread asked for stage times, else a no-op."""
    st = getattr(_local, "times", None)
    return _OFF if st is None else st.call()


def stage(name: str, absorb: bool = False):
    """The context a step runs in: timed where this thread asked for stage times, else a no-op."""
    st = getattr(_local, "times", None)
    return _OFF if st is None else st.stage(name, absorb)


@contextmanager
def collecting():
    """Stage times of this thread's edits while the block runs."""
    st = StageTimes()
    prev = getattr(_local, "times", None)
    _local.times = st
    try:
        yield st
    finally:
        _local.times = prev
