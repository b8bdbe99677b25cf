"""Prometheus metrics (prometheus-client), in a registry of the app's own so several apps in one process
(tests) never collide: requests by route and status, latency by route, requests in progress, rows per backend
call, the batcher's queue depth, faces per photo, the photo gate (pixels in flight, decodes running, requests
waiting), and the process itself (prometheus-client's ProcessCollector: resident and virtual memory, CPU
seconds, open and most file descriptors, start time; Linux /proc)."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
FACE_BUCKETS = (0, 1, 2, 3, 5, 10, 20)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("faceedit_http_requests", "HTTP requests by route and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("faceedit_http_request_seconds", "HTTP request latency by route",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("faceedit_batch_rows", "Rows per backend call of the batcher, by kind",
                                    ["kind"], buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("faceedit_batcher_queue_depth", "Requests waiting in the batcher's queue",
                                 registry=r)
        self.faces = Histogram("faceedit_faces_per_photo", "Faces found per uploaded photo",
                               buckets=FACE_BUCKETS, registry=r)
        self.in_progress = Gauge("faceedit_http_requests_in_progress", "HTTP requests being answered now",
                                 registry=r)
        self.pixels = Gauge("faceedit_photo_pixels_in_flight", "Pixels of the photos requests hold now", registry=r)
        self.decoding = Gauge("faceedit_photo_decodes_running", "Photos being decoded (and detected) now", registry=r)
        self.gate_waiting = Gauge("faceedit_photo_gate_waiting", "Requests waiting for pixel budget or a decode slot",
                                  registry=r)
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds ...

    def on_batch(self, kind: str, rows: int):
        self.batch_rows.labels(kind).observe(rows)

    def watch_queue(self, depth_fn):
        self.queue_depth.set_function(depth_fn)

    def watch_gate(self, gate):
        """The service's PhotoGate (memory.PhotoGate): read at each scrape."""
        self.pixels.set_function(lambda: gate.pixels)
        self.decoding.set_function(lambda: gate.decoding)
        self.gate_waiting.set_function(lambda: gate.waiting)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI: counts every HTTP response by its route template (not the raw path: bounded labels)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}
        self.metrics.in_progress.inc()

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_progress.dec()
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope["method"], str(status["code"])).inc()
            self.metrics.latency.labels(path, scope["method"]).observe(time.perf_counter() - start)
