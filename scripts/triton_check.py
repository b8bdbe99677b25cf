#!/usr/bin/env python
"""Serve the Triton model repository for real and check it against the engine.

    python scripts/triton_check.py                          # the shipped model, a repository written now
    python scripts/triton_check.py --repository triton/     # one `faceedit export --triton triton/` wrote

Starts a Triton Inference Server on the repository (the `tritonserver` binary when it is on PATH, else the
NGC container through Docker when a Docker daemon answers), waits until every model is ready, then sends an
edit of an aligned face through tritonclient (faceedit.serve.triton: the engine's Editor with its graphs on
the server, fused and three-graph) and the encode_decode ensemble, and compares each with the engine here
(ONNX Runtime, fp32) on the same input. Exit status: 0 every check agrees, 1 a mismatch, 3 no Triton server
can run here (said in one line), 2 anything else (the server did not start, bad arguments)."""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_SERVER = 3
MISMATCH = 1
FAILED = 2
DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def server_command(repo: Path, grpc_port: int, image: str, gpus: bool) -> list[str] | None:
    """The command that runs Triton on repo with gRPC on grpc_port (HTTP and metrics off), or None."""
    common = ["--model-repository", None, "--allow-http", "false", "--allow-metrics", "false",
              "--grpc-port", str(grpc_port), "--exit-on-error", "true"]
    if shutil.which("tritonserver"):
        return ["tritonserver"] + [str(repo) if c is None else c for c in common]
    if docker_answers():
        return (["docker", "run", "--rm", "--network", "host", "-v", f"{repo.resolve()}:/models:ro"]
                + (["--gpus", "all"] if gpus else []) + [image, "tritonserver"]
                + ["/models" if c is None else c for c in common])
    return None


def wait_ready(client, proc, models: list[str], timeout_s: float) -> str | None:
    """None once the server and every model are ready; else why not."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"the server exited with status {proc.returncode}"
        try:
            if client.is_server_ready() and all(client.is_model_ready(m) for m in models):
                return None
        except Exception as e:  # connection refused while it starts
            last = str(e).splitlines()[0] if str(e) else type(e).__name__
        time.sleep(1)
    return f"not ready after {timeout_s:g} s ({last})"


def astronaut_crops(size: int = 96):
    """Aligned-style crops of the astronaut's face (public domain, shipped in examples/)."""
    import numpy as np
    from PIL import Image
    rgb = np.asarray(Image.open(ROOT / "examples" / "astronaut.jpg").convert("RGB"))
    crops = []
    for dx in (0, 6, 12):
        c = Image.fromarray(np.ascontiguousarray(rgb[40:190, 150 + dx:300 + dx])).resize((size, size))
        crops.append(np.asarray(c))
    return crops


def run_checks(url: str, model, client) -> list:
    from faceedit.engine import Editor
    from faceedit.serve.triton import parity_checks, remote_editor
    local_fused = Editor.load(model, backend="onnxruntime", precision="fp32")
    local_three = Editor.load(model, backend="onnxruntime", precision="fp32")
    local_three.fused = False
    crops, changes = astronaut_crops(), {"smiling": 0, "young": 1}
    checks = parity_checks(remote_editor(url, model, fused=True, client=client), local_fused, crops, changes,
                           ensemble_client=client)
    checks += parity_checks(remote_editor(url, model, fused=False, client=client), local_three, crops, changes)
    return checks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="Model directory or name (default: the shipped model)")
    ap.add_argument("--repository", type=Path, help="A repository `faceedit export --triton` wrote (default: write one now)")
    ap.add_argument("--image", default=DEFAULT_IMAGE, help="Triton container for Docker (default %(default)s)")
    ap.add_argument("--gpus", action="store_true", help="Docker: give the container the GPUs (--gpus all)")
    ap.add_argument("--startup-s", type=float, default=180.0, help="Wait this long for the server and models")
    a = ap.parse_args(argv)

    tmp = None
    repo = a.repository
    if repo is None:
        # probe for a server before writing anything: where none can run, say so at once
        if server_command(Path("/nonexistent"), 0, a.image, a.gpus) is None:
            print("no Triton server can run here: no tritonserver on PATH and no Docker daemon answers")
            return NO_SERVER
        from faceedit.core.model_dir import ModelInfo
        from faceedit.export.triton import write_repository
        info = ModelInfo.load(a.model)
        tmp = tempfile.mkdtemp(prefix="faceedit-triton-")
        repo = Path(tmp) / "repository"
        write_repository(info.path, repo, info.manifest)
    elif not (repo / "encode_decode" / "config.pbtxt").is_file():
        print(f"{repo} is not a faceedit Triton repository (no encode_decode/config.pbtxt)")
        return FAILED
    port = free_port()
    cmd = server_command(repo, port, a.image, a.gpus)
    if cmd is None:
        print("no Triton server can run here: no tritonserver on PATH and no Docker daemon answers")
        return NO_SERVER
    from tritonclient.grpc import InferenceServerClient
    url = f"127.0.0.1:{port}"
    print("starting:", " ".join(cmd), flush=True)
    log = open(Path(tempfile.gettempdir()) / f"faceedit-tritonserver-{port}.log", "w")  # kept for a failure
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = InferenceServerClient(url)
        models = sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
        why = wait_ready(client, proc, models, a.startup_s)
        if why:
            print(f"Triton did not serve the repository: {why} (log: {log.name})")
            return FAILED
        print(f"Triton serves {', '.join(models)} at {url}")
        checks = run_checks(url, a.model, client)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    for c in checks:
        print(c.line())
    bad = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(bad)} of {len(checks)} checks agree with the engine")
    return MISMATCH if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
