"""create_app(): the ASGI app. The model loads in the lifespan (so uvicorn binds only once it is ready to
serve) and the batcher is closed after uvicorn has drained in-flight requests on SIGTERM."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles

from faceedit import __version__
from faceedit.serve import http_errors
from faceedit.serve.limits import Limits
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
        svc = service or FaceService(config, on_batch=metrics.on_batch)
        if service is not None:
            svc.batcher.on_batch = metrics.on_batch
        metrics.watch_queue(svc.batcher.queue_depth)
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
    app.state.service, app.state.stopping = None, False
    app.state.limits, app.state.metrics = limits or Limits(), metrics
    http_errors.install(app)
    app.include_router(api.router)
    app.include_router(health.router)
    app.include_router(page.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors), allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
