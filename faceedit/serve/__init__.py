"""`faceedit serve`: the web demo and the HTTP service (`pip install 'faceedit[serve]'`).

The stack: FastAPI on Starlette, served by uvicorn, with prometheus-client for /metrics. Why these:
- FastAPI writes the OpenAPI schema and the /docs page from the typed routes, and validates query
  parameters, so the versioned API documents itself without hand-written schema;
- Starlette (under FastAPI) streams request bodies, so an upload over the byte limit is refused before it is
  read whole, runs blocking work in a thread pool, and has the ASGI lifespan to load and close the model;
- uvicorn is the maintained ASGI server: on SIGTERM it stops accepting, lets requests in flight finish, runs
  the lifespan shutdown (the batcher is closed there) and exits 0;
- prometheus-client: counters, histograms and the text exposition format, nothing hand-written.

Layout: service (FaceService: the Editor, detector and JobBatcher, no HTTP: a Ray Serve deployment can
reuse it), app (create_app), routes/ (api, health, page), http_errors (exception -> one JSON error), limits
(upload bytes), metrics, static/ (the page). The load benchmarks live in faceedit.bench (loadgen, ray_bench);
the Triton client backend in faceedit.engine.backends.triton_client."""
