"""create_app(): the ASGI app. The model loads in the lifespan (so uvicorn binds only once it is ready to
serve) and the batcher is closed after uvicorn has drained in-flight requests on SIGTERM. run(): the app on
uvicorn, as `faceedit serve` runs it."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles

from faceedit import __version__
from faceedit.serve import http_errors
from faceedit.serve.limits import BodyLimits, Limits
from faceedit.serve.memory import tune_malloc
from faceedit.serve.metrics import Metrics, MetricsMiddleware
from faceedit.serve.routes import api, docs, health, page
from faceedit.serve.service import FaceService, ServiceConfig

log = logging.getLogger("faceedit.serve")


def create_app(config: ServiceConfig | None = None, limits: Limits | None = None, cors: list[str] | None = None,
               service: FaceService | None = None) -> FastAPI:
    """service: an already-built FaceService (a host that manages its own, e.g. Ray Serve); else one is built
    from config when the app starts."""
    config = config or ServiceConfig()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        tune_malloc()  # a server process: large photo buffers go back to the system when freed (memory.py)
        svc = service or FaceService(config, on_batch=metrics.on_batch)
        if service is not None:
            svc.batcher.on_batch = metrics.on_batch
        metrics.watch_queue(svc.batcher.queue_depth)
        metrics.watch_gate(svc.gate)
        app.state.service = svc
        try:
            await svc.warm_up()
            ms = await svc.probe()
        except BaseException:
            svc.close()
            raise
        log.info("faceedit serve: %s | %s | probe %.1f ms", svc.editor.model.path, svc.editor.describe(), ms)
        try:
            yield
        finally:
            app.state.stopping = True
            svc.close()  # uvicorn has already finished the requests in flight
            log.info("faceedit serve: stopped")

    app = FastAPI(title="faceedit", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # routes/docs.py: the same pages, no CDN
                  description="Face-attribute editing: read the attributes of faces in a photo, edit them, "
                              "reconstruct, sample new faces. Photos go in as the raw request body.")
    # draining: set by `faceedit serve` when SIGTERM arrives (cli/serve_cmd.py), before uvicorn drains; stopping:
    # once it has drained, in the lifespan's shutdown
    app.state.service, app.state.stopping, app.state.draining = None, False, False
    app.state.limits, app.state.metrics = limits or Limits(), metrics
    http_errors.install(app)
    app.include_router(api.router)
    app.include_router(health.router)
    app.include_router(page.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    # innermost first: body limits (size, time, draining), then the request id (every answer carries it; no
    # exception leaves as a plain-text 500), CORS, and the metrics around everything
    app.add_middleware(BodyLimits, limits=app.state.limits,
                       draining=lambda: app.state.draining or app.state.stopping)
    app.add_middleware(http_errors.RequestIdMiddleware)
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors), allow_methods=["GET", "POST"],
                           allow_headers=["*"], expose_headers=[http_errors.REQUEST_ID_HEADER, "Retry-After"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def run(app: FastAPI, host: str, port: int, log_level: str = "info", drain_s: float = 30.0):
    """Serve app on uvicorn until SIGTERM or Ctrl-C. On SIGTERM: stop accepting, answer within a second the
    requests whose body is still arriving (503, limits.BodyLimits: a slow sender never holds shutdown up), let the
    requests in flight finish for at most drain_s, close the batcher, exit. faceedit's own log lines (5xx
    with their request ids and tracebacks) go to stderr beside uvicorn's."""
    import sys

    import uvicorn
    logger = logging.getLogger("faceedit")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(log_level.upper())

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            app.state.draining = True  # before uvicorn waits on the requests in flight
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=drain_s)).run()
