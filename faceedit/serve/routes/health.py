"""/healthz: the process answers. /readyz: the model is loaded and one probe row ran through the batcher
just now. /metrics: Prometheus exposition."""
from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from faceedit.serve.http_errors import classify, error_response, request_id

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Alive")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready: model loaded and a probe ran through the batcher")
async def readyz(request: Request):
    svc = request.app.state.service
    if svc is None or request.app.state.stopping or request.app.state.draining:
        return error_response(503, "not ready: the model is loading or the server is stopping", "not_ready",
                              {"Retry-After": "1"}, request_id=request_id(request))
    try:
        ms = await svc.probe()
    except Exception as e:
        err = classify(e)
        return error_response(503, f"not ready: {err.message}", "not_ready", {"Retry-After": "1"},
                              request_id=request_id(request))
    return {"status": "ready", "probe_ms": round(ms, 2), "backend": svc.editor.selection}


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request):
    m = request.app.state.metrics
    return Response(m.exposition(), media_type=m.content_type)
