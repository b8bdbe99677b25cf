"""The dynamic batcher: many concurrent callers, each gets exactly its own result; a bounded queue that says
Overloaded; errors reach every caller of a failed batch; clean shutdown."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from faceedit.engine import DynamicBatcher, Editor
from faceedit.engine.errors import BatcherClosed, EngineError, Overloaded


@pytest.fixture(scope="module")
def editor(tiny_model_dir):
    return Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")


def crops(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 48, 40, 3), dtype=np.uint8)


EDITS = [{"young": 1}, {"smiling": 0.5, "male": 0}, {"bald": 1}, {}]


def test_64_threads_x_100_requests_each_get_their_own_result(editor):
    pool = crops(32)
    expect = {(i, j): editor.edit(pool[i], EDITS[j]) for i in range(len(pool)) for j in range(len(EDITS))}
    failures, done = [], [0]
    lock = threading.Lock()
    with DynamicBatcher(editor, max_batch=32, max_delay_ms=2, max_queue=256) as batcher:
        def client(t):
            rng = np.random.default_rng(t)
            try:
                for _ in range(100):
                    i, j = int(rng.integers(len(pool))), int(rng.integers(len(EDITS)))
                    while True:
                        try:
                            fut = batcher.submit(pool[i], EDITS[j])
                            break
                        except Overloaded:  # a well-behaved client backs off and retries
                            time.sleep(0.001)
                    got = fut.result(timeout=60)
                    if got.shape != pool[i].shape or np.abs(got.astype(int) - expect[i, j]).max() > 1:
                        failures.append((t, i, j))
                    with lock:
                        done[0] += 1
            except Exception as e:  # pragma: no cover - reported below
                failures.append(repr(e))
        threads = [threading.Thread(target=client, args=(t,)) for t in range(64)]
        t0 = time.perf_counter()
        [t.start() for t in threads]
        [t.join() for t in threads]
        elapsed = time.perf_counter() - t0
    assert not failures, failures[:5]
    assert done[0] == 6400
    # requests really were grouped (otherwise this is just a lock)
    assert batcher.stats["rows"] == 6400 and batcher.stats["batches"] < 6400 / 4, batcher.stats
    print(f"6400 requests in {elapsed:.2f}s, {batcher.stats['batches']} batches")


class SlowEditor:
    """Wraps an Editor; edit_crops waits for a gate, so the queue fills deterministically."""

    def __init__(self, editor):
        self.editor, self.gate, self.calls = editor, threading.Event(), 0
        self.size = editor.size

    def request(self, changes, **options):
        return self.editor.request(changes, **options)

    def edit_crops(self, *a):
        self.calls += 1
        self.gate.wait(30)
        return self.editor.edit_crops(*a)


def test_full_queue_raises_overloaded_then_drains(editor):
    slow = SlowEditor(editor)
    b = DynamicBatcher(slow, max_batch=2, max_delay_ms=0, max_queue=4)
    img = crops(1)[0]
    futures = [b.submit(img, {"young": 1})]
    deadline = time.time() + 10
    while slow.calls == 0 and time.time() < deadline:  # the worker took the first and is blocked
        time.sleep(0.005)
    futures += [b.submit(img, {"young": 1}) for _ in range(4)]
    with pytest.raises(Overloaded, match="queue is full"):
        b.submit(img, {"young": 1})
    assert b.stats["rejected"] == 1
    slow.gate.set()
    for f in futures:
        assert f.result(timeout=30).shape == img.shape
    b.close()


def test_bad_request_fails_alone_at_submit(editor):
    with DynamicBatcher(editor) as b:
        with pytest.raises(EngineError, match="Did you mean"):
            b.submit(crops(1)[0], {"yung": 1})
        with pytest.raises(EngineError, match="out of range"):
            b.submit(crops(1)[0], {"young": 5})
        assert b.edit(crops(1)[0], {"young": 1}).shape == (48, 40, 3)


def test_model_failure_reaches_every_caller_in_the_batch(editor):
    class Broken(SlowEditor):
        def edit_crops(self, *a):
            raise RuntimeError("device lost")
    b = DynamicBatcher(Broken(editor), max_batch=8, max_delay_ms=20)
    futs = [b.submit(crops(1)[0], {"young": 1}) for _ in range(5)]
    for f in futs:
        with pytest.raises(RuntimeError, match="device lost"):
            f.result(timeout=10)
    b.close()


def test_close_finishes_pending_then_refuses(editor):
    b = DynamicBatcher(editor, max_batch=4, max_delay_ms=5)
    futs = [b.submit(crops(1, s)[0], {"young": 1}) for s in range(10)]
    b.close()
    assert all(f.done() and f.exception() is None for f in futs)
    assert not any(t.is_alive() for t in b._workers)
    with pytest.raises(BatcherClosed):
        b.submit(crops(1)[0], {"young": 1})
    b.close()  # idempotent


def test_close_can_cancel_pending(editor):
    slow = SlowEditor(editor)
    b = DynamicBatcher(slow, max_batch=1, max_delay_ms=0, max_queue=16)
    futs = [b.submit(crops(1)[0], {"young": 1}) for _ in range(6)]
    deadline = time.time() + 10
    while slow.calls == 0 and time.time() < deadline:
        time.sleep(0.005)
    closer = threading.Thread(target=b.close, kwargs={"cancel_pending": True})
    closer.start()
    time.sleep(0.05)
    slow.gate.set()
    closer.join(10)
    assert not closer.is_alive()
    assert futs[0].result(timeout=10) is not None  # the running one finishes
    assert sum(f.cancelled() for f in futs) == 5


def test_job_batcher_reports_mix_options_in_one_batch_and_each_gets_its_own_edit():
    """submit_report rows with different options share one batch (the Editor groups them); each caller gets the
    one-row CropEdits of its crop edited alone, its post step applied, and the head's reading of that result."""
    from faceedit.engine.job_batcher import JobBatcher
    ed = Editor.load(backend="onnxruntime", precision="fp32")  # the shipped model: auto strength, rules, filter
    faces = list(ed.sample(4, {"young": 0, "male": 1}, seed=1))
    asks = [ed.request({"young": 1}), ed.request({"black_hair": 1}, filtered=False, raw=True),
            ed.request({"mustache": 1}, implied=False), ed.request({"young": 1}, auto_strength=False)]
    posts = [None, lambda im: np.ascontiguousarray(im[:, ::-1]), None, None]
    with JobBatcher(ed, max_batch=16, max_delay_ms=300) as b:
        futures = [b.submit_report(f, r, post=p) for f, r, p in zip(faces, asks, posts)]
        reports = [fu.result(timeout=60) for fu in futures]
    assert b.stats["batches"] == 1 and b.stats["rows"] == 4, b.stats
    for face, r, post, got in zip(faces, asks, posts, reports):
        alone = ed.edit_crops([face], r)
        want = post(alone.images[0]) if post else alone.images[0]
        assert len(got) == 1
        np.testing.assert_array_equal(got.images[0], want)
        np.testing.assert_array_equal(got.multipliers, alone.multipliers)
        np.testing.assert_array_equal(got.implied, alone.implied)
        np.testing.assert_allclose(got.before, alone.before, atol=1e-5)
        np.testing.assert_allclose(got.after, ed.attributes([want]), atol=1e-5)
