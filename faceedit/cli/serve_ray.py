"""`faceedit serve --ray`: the same application on Ray Serve (faceedit.serve.ray_app), run until Ctrl-C or
SIGTERM, then Serve and the Ray it started are shut down (replicas finish what they hold first)."""
from __future__ import annotations

import signal
import sys
import threading

import typer

from faceedit.cli.reporting import UserError


def serve_on_ray(config, limits, cors, host: str, port: int, scale: dict, address: str | None,
                 num_cpus: float | None):
    try:
        from faceedit.serve import ray_app
    except ModuleNotFoundError as e:
        raise UserError(f"faceedit serve --ray needs the ray extra ({e.name} is missing): "
                        "pip install 'faceedit[ray]'") from None
    options = ray_app.ScaleOptions(**scale)
    try:
        options.check()
    except ValueError as e:
        raise UserError(str(e)) from None
    stop = threading.Event()
    ray_app.start(host, port, address, num_cpus)
    # after ray.init, which installs its own SIGTERM handler (a crash dump and abort): stop cleanly instead
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        ray_app.deploy(ray_app.build_app(config, limits, cors, options))
        replicas = (f"{options.min_replicas}" if options.min_replicas == options.max_replicas
                    else f"{options.min_replicas}..{options.max_replicas} (autoscaling)")
        typer.echo(f"faceedit on Ray Serve: http://{host}:{port}/  ({replicas} replicas; Ctrl-C stops)", err=False)
        sys.stdout.flush()
        stop.wait()
    finally:
        ray_app.stop()
