"""`faceedit triton`: write the Triton model repository of a model directory, serve it on the Triton server
the nvidia-pytriton wheel carries (python backend, faceedit's engine inside), check a running server
against the engine, and time crop edits through it against the engine in this process.

    faceedit triton serve                            # the shipped model, gRPC 127.0.0.1:8001 (HTTP 8010)
    faceedit serve --triton 127.0.0.1:8001           # the page and API here, the model on Triton
    faceedit triton write triton/                    # the repository alone (NVIDIA's containers serve it too)
    faceedit triton check --url HOST:8001            # a running server, either kind, against the engine

Installing the server: `pip install --no-deps nvidia-pytriton==0.7.0` (Linux, glibc 2.35+)."""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import typer

from faceedit.cli.reporting import UserError, fail, friendly

NO_SERVER = 3  # exit status: no Triton server can run here (the old scripts/triton_check.py's)
MISMATCH = 1

triton_app = typer.Typer(no_args_is_help=True, help="Triton Inference Server: write the model repository, serve "
                         "it (python backend, from the nvidia-pytriton wheel), check a server against the engine, time it.")


def _repository_options(model, max_batch, queue_delay_us, instances, engine_backend, threads) -> dict:
    if max_batch < 1 or queue_delay_us < 0 or instances < 1 or threads < 0:
        raise UserError("--max-batch and --instances must be >= 1, --queue-delay-us and --threads >= 0")
    from faceedit.engine.backends import canonical_name
    canonical_name(engine_backend)  # an unknown name fails here, in one line, not in the server's log
    return dict(max_batch_size=max_batch, max_queue_delay_us=queue_delay_us, instances=instances,
                python_backend=engine_backend, python_threads=threads)


def _write(model, out, options) -> Path:
    from faceedit.export.triton import write_model_repository
    return write_model_repository(model, out, **options)


def _start(repository: Path, startup_s: float, **kw):
    from faceedit.serve.triton_server import ServerFailed, ServerUnavailable, TritonServer
    try:
        return TritonServer(repository, **kw).start(startup_s)
    except ServerUnavailable as e:
        fail(f"no Triton server can run here: {e}", NO_SERVER)
    except ServerFailed as e:
        fail(str(e), 2)


def _check_repository(repository: Path):
    if not (repository / "editor" / "configs" / "python.pbtxt").is_file():
        raise UserError(f"{repository} has no python-backend configuration (editor/configs/python.pbtxt): write it "
                        "with `faceedit triton write` or `faceedit export --triton` (this version)")


MODEL = typer.Option(None, "--model", help="Model directory or name (default: the shipped model).")
MAX_BATCH = typer.Option(64, "--max-batch", help="Triton's max_batch_size per model (dynamic batching merges requests up to it).")
QUEUE_DELAY = typer.Option(500, "--queue-delay-us", help="How long Triton's dynamic batcher waits for more requests.")
INSTANCES = typer.Option(1, "--instances", help="Model instances per graph.")
ENGINE = typer.Option("auto", "--engine-backend", help="The engine backend inside the python models: auto (OpenVINO where installed, else ONNX Runtime), openvino, onnxruntime.")
THREADS = typer.Option(0, "--threads", help="Backend threads per model instance (0: every core).")


@triton_app.command("write")
@friendly
def write(out: Path = typer.Argument(..., help="Folder to write (replaced if a faceedit repository is there)."),
          model: Optional[str] = MODEL, max_batch: int = MAX_BATCH, queue_delay_us: int = QUEUE_DELAY,
          instances: int = INSTANCES, engine_backend: str = ENGINE, threads: int = THREADS):
    """Write the Triton model repository of a model directory (no checkpoint or torch needed): each graph with
    Triton's onnxruntime-backend config.pbtxt (NVIDIA's containers) and configs/python.pbtxt (faceedit's engine
    in the python backend: `faceedit triton serve`, or any tritonserver with --model-config-name python)."""
    repo = _write(model, out, _repository_options(model, max_batch, queue_delay_us, instances, engine_backend, threads))
    names = sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
    typer.echo(f"wrote Triton repository {repo} ({', '.join(names)})")


@triton_app.command("serve")
@friendly
def serve(repository: Optional[Path] = typer.Argument(None, help="A repository `faceedit triton write` or `faceedit export --triton` wrote (default: write the model's now, in a temporary folder)."),
          model: Optional[str] = MODEL,
          host: str = typer.Option("127.0.0.1", "--host", help="Address Triton binds (HTTP and gRPC). Loopback by default."),
          grpc_port: int = typer.Option(8001, "--grpc-port", help="gRPC port (what `faceedit serve --triton HOST:PORT` and the engine's Triton backend use)."),
          http_port: int = typer.Option(8010, "--http-port", help="HTTP port (Triton's health, statistics and inference API). Not 8000: `faceedit serve` has it."),
          metrics_port: Optional[int] = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on this port (off by default)."),
          max_batch: int = MAX_BATCH, queue_delay_us: int = QUEUE_DELAY, instances: int = INSTANCES,
          engine_backend: str = ENGINE, threads: int = THREADS,
          startup_s: float = typer.Option(180.0, "--startup-s", help="Wait this long for every model to be ready.")):
    """Run Triton's server from the nvidia-pytriton wheel on the repository's python-backend configuration
    (faceedit's engine on this CPU, Triton's dynamic batching) until Ctrl-C or SIGTERM."""
    import shutil
    tmp = None
    if repository is None:
        repository = _write(model, None, _repository_options(model, max_batch, queue_delay_us, instances, engine_backend, threads))
        tmp = repository.parent
    else:
        _check_repository(repository)
    try:
        server = _start(repository, startup_s, host=host, grpc_port=grpc_port, http_port=http_port,
                        metrics_port=metrics_port)
        try:
            models = ", ".join(m["name"] for m in server.models())
            typer.echo(f"Triton serves {models} from {repository} (python backend, faceedit's engine) in "
                       f"{server.started_s:.1f} s: gRPC {server.grpc_url}, HTTP {server.http_url}"
                       + (f", metrics :{metrics_port}" if metrics_port else ""))
            typer.echo(f"edit through it: faceedit serve --triton {server.grpc_url}   (Ctrl-C stops the server)")
            signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
            try:
                code = server.proc.wait()
                fail(f"tritonserver exited with status {code}" + server.log_tail(), 2)
            except KeyboardInterrupt:
                typer.echo("stopping Triton")
        finally:
            server.stop()
            if server.leftovers:
                typer.secho(f"warning: killed processes that outlived the server: {server.leftovers}", fg="yellow", err=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@triton_app.command("check")
@friendly
def check(repository: Optional[Path] = typer.Argument(None, help="Serve this repository for the check (default: the model's, written now)."),
          url: Optional[str] = typer.Option(None, "--url", help="Check the Triton server already running at this gRPC address instead (either configuration: python or onnxruntime backend)."),
          model: Optional[str] = MODEL,
          engine_backend: Optional[str] = typer.Option(None, "--engine-backend", help="The engine here to compare with (default: the repository's python-backend engine; with --url, onnxruntime, what NVIDIA's containers run)."),
          startup_s: float = typer.Option(180.0, "--startup-s")):
    """Edit through Triton and through the engine here on the same crops: the fused editor model, encoder +
    attributes + decoder, and the encode_decode ensemble. Exit 0: all agree (one uint8 level on pixels, the
    manifest's parity limit on tensors); 1: a mismatch; 3: no Triton server can run here; 2: anything else."""
    import shutil
    from faceedit.serve.triton_server import repository_engine_backend, run_checks
    server = tmp = None
    try:
        if url is None:
            if repository is None:
                repository = _write(model, None, {})
                tmp = repository.parent
            else:
                _check_repository(repository)
            server = _start(repository, startup_s)
            url = server.grpc_url
            typer.echo(f"Triton serves {repository} at {url} in {server.started_s:.1f} s")
        backend = engine_backend or (repository_engine_backend(repository) if repository else "onnxruntime")
        if backend == "auto":
            from faceedit.serve.triton_python import CPU_BACKENDS
            from faceedit.engine.backends import backend_class
            backend = next(b for b in CPU_BACKENDS if backend_class(b).available()[0])
        checks = run_checks(url, model, engine_backend=backend)
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for c in checks:
        typer.echo(c.line())
    bad = [c for c in checks if not c.ok]
    typer.echo(f"{len(checks) - len(bad)} of {len(checks)} checks agree with the engine ({backend}, fp32)")
    if bad:
        raise typer.Exit(MISMATCH)


@triton_app.command("bench")
@friendly
def bench(url: Optional[str] = typer.Option(None, "--url", help="Time the Triton server at this gRPC address (default: start one on the model's repository)."),
          model: Optional[str] = MODEL,
          engine_backend: str = typer.Option("onnxruntime", "--engine-backend", help="The engine backend, here and in the server's python models."),
          threads: int = THREADS,
          clients: str = typer.Option("1,8,64", "--clients", help="Closed-loop client counts."),
          seconds: float = typer.Option(5.0, "--seconds", help="Measured seconds per row."),
          json_path: Optional[Path] = typer.Option(None, "--json", help="Write the rows (and the machine) as JSON here.")):
    """Crop edits through Triton against the engine in this process, in the same run: N closed-loop clients
    each editing one crop at a time; crops/s, p50, p99, and Triton's mean batch from its own statistics."""
    import json
    import platform
    import shutil
    from faceedit.bench.triton import sweep, table
    from faceedit.engine import Editor
    from faceedit.engine.backends.triton_client import remote_editor
    from faceedit.serve.triton_server import astronaut_crops
    try:
        counts = tuple(int(c) for c in clients.split(",") if c.strip())
    except ValueError:
        raise UserError(f"--clients must be comma-separated counts, got '{clients}'") from None
    server = tmp = None
    try:
        if url is None:
            repository = _write(model, None, dict(python_backend=engine_backend, python_threads=threads))
            tmp = repository.parent
            server = _start(repository, 180.0)
            url = server.grpc_url
        local = Editor.load(model, backend=engine_backend, precision="fp32", threads=threads)
        remote = remote_editor(url, model)
        crop, changes = astronaut_crops(1, 64)[0], {"smiling": 0}
        remote.edit(crop, changes)  # connect and warm every model the edit uses
        stats = (lambda: server.statistics("editor")) if server is not None else None
        rows = sweep(local, remote, crop, changes, counts, seconds, statistics=stats, log=typer.echo)
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    typer.echo(table(rows))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"engine_backend": engine_backend, "url": None if server else url,
                                         "server": "nvidia-pytriton tritonserver, python backend" if server else "given",
                                         "machine": {"cpu": platform.processor() or platform.machine(),
                                                     "cores": __import__("os").cpu_count()},
                                         "seconds": seconds, "rows": rows}, indent=2) + "\n")
        typer.echo(f"wrote {json_path}")


def register(app: typer.Typer):
    app.add_typer(triton_app, name="triton")
