"""faceedit on Ray Serve: the same HTTP API and page as `faceedit serve` (create_app, its routes, errors and
limits), deployed as a Ray Serve application (`pip install 'faceedit[ray]'`).

    faceedit serve --ray --replicas 2                              # a local Ray, 127.0.0.1:8000
    serve run faceedit.serve.ray_app:build replicas=2              # Ray's own CLI (its proxy: 127.0.0.1:8000)

Each replica is one Ray actor holding one FaceService (one Editor, one detector, one JobBatcher): requests
routed to a replica are batched there by the engine's batcher, as in `faceedit serve`. Ray Serve adds what one
process cannot: replicas on every machine of a cluster, autoscaling between bounds, a bounded queue in its
routers (beyond it: 503 + Retry-After), and a health check that runs a probe row through each replica's
batcher (a replica that fails it is replaced). Ray is imported here only: `faceedit serve` never loads it."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ray import serve
from ray.serve.config import BackpressureConfig

from faceedit.engine.errors import Overloaded
from faceedit.serve.app import create_app
from faceedit.serve.http_errors import RETRY_AFTER_S
from faceedit.serve.limits import Limits
from faceedit.serve.service import FaceService, ServiceConfig

APP_NAME = "faceedit"


@dataclass
class ScaleOptions:
    """How the application spreads: replicas (fixed when min == max, else autoscaled), the per-replica
    concurrency and Ray's queue in front of the replicas, what each replica reserves, its health check."""
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing: float = 16.0  # autoscaling aims at this many requests in flight per replica
    max_ongoing: int = 32         # in flight per replica at once: >= max_batch, so one batcher can fill a batch
    max_queued: int = 256         # waiting in Ray's routers for a free replica; beyond: 503 + Retry-After
    replica_cpus: float = 1.0     # Ray CPUs each replica reserves; its backend runs that many threads
    health_period_s: float = 10.0
    health_timeout_s: float = 30.0

    def check(self):
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"replicas: need 1 <= min ({self.min_replicas}) <= max ({self.max_replicas})")
        if self.max_ongoing < 1 or self.max_queued < 1 or self.replica_cpus <= 0:
            raise ValueError("max_ongoing and max_queued must be >= 1, replica_cpus > 0")

    def deployment_options(self, timeout_s: float) -> dict:
        opts = dict(max_ongoing_requests=self.max_ongoing, max_queued_requests=self.max_queued,
                    backpressure_config=BackpressureConfig(status_code=503, retry_after_s=RETRY_AFTER_S),
                    health_check_period_s=self.health_period_s, health_check_timeout_s=self.health_timeout_s,
                    # a stopping replica finishes what it holds first, as uvicorn does on SIGTERM
                    graceful_shutdown_timeout_s=max(5.0, timeout_s),
                    ray_actor_options={"num_cpus": self.replica_cpus})
        if self.min_replicas == self.max_replicas:
            opts["num_replicas"] = self.min_replicas
        else:
            opts["autoscaling_config"] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                                          "target_ongoing_requests": self.target_ongoing}
        return opts


async def health_probe(service: FaceService, timeout_s: float):
    """Ray's health check: one probe row through the replica's batcher, so a replica whose model stopped
    answering is replaced. A full queue means busy, not broken: restarting a busy replica would only lose its
    requests."""
    try:
        await service.probe(timeout_s)
    except Overloaded:
        return


@serve.deployment(name="FaceEdit")
@serve.ingress()
class FaceEdit:
    """One replica: a FaceService built here (the model loads in the actor), handed to create_app, whose
    lifespan (which Ray Serve runs) warms it up and probes it before the replica takes traffic."""

    def __init__(self, config: ServiceConfig, limits: Limits, cors: list, probe_timeout_s: float = 20.0):
        self.config, self.limits, self.cors = config, limits, cors or None
        self.probe_timeout_s = probe_timeout_s
        # requests are batched by the service's own JobBatcher: measured against Ray Serve's @serve.batch at
        # 16 clients on 2 cores, 84 vs 52 crop edits/s (benchmarks/results/serve-ray-batching-cpu-2core.json)
        self.service = FaceService(config)

    def __serve_build_asgi_app__(self):
        return create_app(self.config, self.limits, self.cors, service=self.service)

    async def check_health(self):
        await health_probe(self.service, self.probe_timeout_s)


def build_app(config: ServiceConfig | None = None, limits: Limits | None = None, cors: list | None = None,
              scale: ScaleOptions | None = None):
    """The Ray Serve Application (bind it with serve.run, or return it from a `serve run` builder)."""
    config, scale = config or ServiceConfig(), scale or ScaleOptions()
    scale.check()
    # each replica's backend threads = the CPUs Ray reserves for it, so replicas on one machine do not fight
    config = dataclasses.replace(config, threads=config.threads or max(1, math.ceil(scale.replica_cpus)))
    return FaceEdit.options(**scale.deployment_options(config.timeout_s)).bind(
        config, limits or Limits(), list(cors or []), max(1.0, min(20.0, scale.health_timeout_s - 1)))


def _typed(fields, args: dict) -> dict:
    out = {}
    for f in fields:
        if f.name in args:
            v = args[f.name]
            kind = type(f.default) if f.default is not None else str
            if kind is bool and isinstance(v, str):  # bool("false") is True: parse the word instead
                if v.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"{f.name} must be true or false, got {v!r}")
                v = v.lower() in ("true", "1")
            out[f.name] = kind(v) if not isinstance(v, kind) else v
    return out


def build(args: dict):
    """`serve run faceedit.serve.ray_app:build key=value ...`: keys are ServiceConfig and ScaleOptions fields,
    plus replicas (fixed count), max_upload_mb, body_timeout_s and cors (comma-separated origins)."""
    args = dict(args)
    if "replicas" in args:
        args["min_replicas"] = args["max_replicas"] = args.pop("replicas")
    limits = Limits(int(float(args.pop("max_upload_mb", 20)) * 2**20), float(args.pop("body_timeout_s", 30)))
    cors = [c for c in str(args.pop("cors", "")).split(",") if c]
    config = ServiceConfig(**_typed(dataclasses.fields(ServiceConfig), args))
    scale = ScaleOptions(**_typed(dataclasses.fields(ScaleOptions), args))
    unknown = set(args) - {f.name for f in dataclasses.fields(ServiceConfig)} - {f.name for f in dataclasses.fields(ScaleOptions)}
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
    return build_app(config, limits, cors, scale)


def start(host: str = "127.0.0.1", port: int = 8000, address: str | None = None, num_cpus: float | None = None):
    """Connect to the Ray cluster at address (or start a local one, with num_cpus CPUs) and start Serve's
    HTTP proxy on host:port. Returns nothing; stop() undoes it."""
    import ray
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False)
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(address="local", num_cpus=num_cpus, **kw)
    serve.start(http_options={"host": host, "port": port})


def deploy(app, name: str = APP_NAME, route_prefix: str = "/"):
    """Deploy (or update in place) and wait until every replica has passed its start-up probe."""
    return serve.run(app, name=name, route_prefix=route_prefix)


def stop():
    import ray
    serve.shutdown()
    ray.shutdown()
