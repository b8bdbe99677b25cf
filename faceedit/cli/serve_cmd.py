"""`faceedit serve`: the web demo and the HTTP API on uvicorn (needs `pip install 'faceedit[serve]'`)."""
from __future__ import annotations

import ipaddress
import signal
from typing import List, Optional

import typer

from faceedit.cli.reporting import UserError, friendly


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer):
    @app.command("serve")
    @friendly
    def serve(model: Optional[str] = typer.Option(None, "--model", help="Model directory or name (default: the shipped model)."),
              host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Loopback by default; anything else is reachable by others."),
              port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to bind."),
              backend: str = typer.Option("auto", "--backend", help="auto, onnxruntime, openvino, ..."),
              precision: str = typer.Option("auto", "--precision", help="auto, fp32, int8, bf16, fp16 (if the model has it)."),
              threads: int = typer.Option(0, "--threads", min=0, help="Backend threads (0: every core; with --ray: each replica's --replica-cpus)."),
              max_batch: int = typer.Option(16, "--max-batch", min=1, max=32, help="Most face rows per backend call."),
              max_delay_ms: float = typer.Option(2.0, "--max-delay-ms", min=0, help="How long the batcher waits for more rows before running."),
              max_queue: int = typer.Option(256, "--max-queue", min=1, help="Rows that may wait; beyond, requests get 503 with Retry-After."),
              max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.001, help="Refuse uploads over this size (413)."),
              max_pixels: float = typer.Option(40.0, "--max-pixels", min=0.000001, help="Refuse photos over this many megapixels (413), checked from the header before decoding."),
              pixels_in_flight: float = typer.Option(0.0, "--pixels-in-flight", min=0, help="Megapixels of photos all requests may hold at once (memory); more wait, then 503. 0: twice --max-pixels."),
              decoders: int = typer.Option(0, "--decoders", min=0, help="Photos decoded (and detected) at once; 0: one per core."),
              decode_wait_s: float = typer.Option(5.0, "--decode-wait-s", min=0, help="How long a photo may wait for --pixels-in-flight or a decoder before 503 with Retry-After."),
              body_timeout_s: float = typer.Option(30.0, "--body-timeout-s", min=0.001, help="The whole request body must arrive within this (408)."),
              timeout_s: float = typer.Option(30.0, "--timeout-s", min=0.001, help="Answer 504 when the model has not answered a request by then."),
              drain_s: Optional[float] = typer.Option(None, "--drain-s", min=0, help="On SIGTERM, let requests in flight finish for at most this long (default: --timeout-s, at least 5)."),
              cors: List[str] = typer.Option([], "--cors", help="Allow browser calls from this origin (repeatable). No CORS by default."),
              detector_model: Optional[str] = typer.Option(None, "--detector-model", help="YuNet face detector .onnx instead of Haar cascades."),
              triton: Optional[str] = typer.Option(None, "--triton", help="Run the model on the Triton server at this gRPC address (HOST:PORT; `faceedit triton serve`, or NVIDIA's container on a `faceedit export --triton` repository). Detection, alignment, paste-back, the API and the page stay here."),
              log_level: str = typer.Option("info", "--log-level", help="uvicorn log level: critical, error, warning, info, debug."),
              ray: bool = typer.Option(False, "--ray", help="Deploy on Ray Serve instead of uvicorn (pip install 'faceedit[ray]'): replicas, autoscaling, health checks."),
              replicas: Optional[int] = typer.Option(None, "--replicas", min=1, help="Ray: a fixed number of replicas (each one Editor). Default 1."),
              min_replicas: Optional[int] = typer.Option(None, "--min-replicas", min=1, help="Ray: autoscale between --min-replicas and --max-replicas."),
              max_replicas: Optional[int] = typer.Option(None, "--max-replicas", min=1, help="Ray: autoscaling's upper bound."),
              max_ongoing: int = typer.Option(32, "--max-ongoing", min=1, help="Ray: requests in flight per replica (its batcher batches them)."),
              max_queued: int = typer.Option(256, "--max-queued", min=1, help="Ray: requests waiting for a replica; beyond, 503 with Retry-After."),
              replica_cpus: float = typer.Option(1.0, "--replica-cpus", min=0.01, help="Ray: CPUs each replica reserves (its backend threads)."),
              ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray: join this cluster (e.g. ray://head:10001 or auto); default: start a local one."),
              ray_cpus: Optional[float] = typer.Option(None, "--ray-cpus", min=1, help="Ray: CPUs of the local cluster it starts (default: all).")):
        """Serve the web demo at / and the JSON API at /v1 (docs at /docs): `faceedit serve --port 8000`."""
        try:
            import uvicorn  # noqa: F401 (the serve extra: say so before loading anything)
            from faceedit.serve.app import create_app, run
        except ModuleNotFoundError as e:
            raise UserError(f"faceedit serve needs the serve extra ({e.name} is missing): pip install 'faceedit[serve]'") from None
        from faceedit.serve.limits import Limits
        from faceedit.serve.service import ServiceConfig
        if triton:  # the engine's Triton backend, by name; it reads the address from the environment
            if ray:
                raise UserError("--triton and --ray do not combine yet: run `faceedit serve --triton` per machine")
            if backend not in ("auto", "triton"):
                raise UserError(f"--triton runs the model on Triton: drop --backend {backend}")
            import os
            from faceedit.engine.backends.triton_client import URL_ENV, server_ready
            why = server_ready(triton)
            if why:
                raise UserError(f"no Triton server answers at {triton} ({why}): start one with `faceedit triton serve`")
            os.environ[URL_ENV] = triton
            backend = "triton"
        if not _is_loopback(host):
            typer.secho(f"warning: binding {host}, not loopback: anyone who can reach this machine can use the service",
                        fg="yellow", err=True)
        config = ServiceConfig(model=model, backend=backend, precision=precision, threads=threads, max_batch=max_batch,
                               max_delay_ms=max_delay_ms, max_queue=max_queue, max_pixels=int(max_pixels * 1e6),
                               pixels_in_flight=int(pixels_in_flight * 1e6), decoders=decoders,
                               decode_wait_s=decode_wait_s, timeout_s=timeout_s, detector_model=detector_model)
        limits = Limits(int(max_upload_mb * 2**20), body_timeout_s)
        if ray:
            from faceedit.cli.serve_ray import serve_on_ray
            low = min_replicas or replicas or 1
            high = max_replicas or replicas or low
            return serve_on_ray(config, limits, cors, host, port, dict(
                min_replicas=low, max_replicas=high, max_ongoing=max_ongoing, max_queued=max_queued,
                replica_cpus=replica_cpus), ray_address, ray_cpus)
        if replicas or min_replicas or max_replicas or ray_address:
            raise UserError("--replicas, --min-replicas, --max-replicas and --ray-address need --ray")
        app_ = create_app(config, limits, cors=cors or None)
        # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to whatever handler was there
        # before it; a no-op one makes that a clean exit 0 (a service manager reads 0 as "stopped as asked").
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        run(app_, host, port, log_level, max(5.0, timeout_s) if drain_s is None else drain_s)
