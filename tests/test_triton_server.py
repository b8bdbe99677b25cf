"""A real Triton Inference Server: the `tritonserver` binary of the nvidia-pytriton wheel (server 2.51, python
backend only), started on loopback on free ports with the python-backend configuration of the repository
`faceedit export --triton` writes (faceedit's engine inside, ONNX Runtime fp32 here), then:

- the repository parses with Triton's own config schema in both configurations, and the server loaded every
  model from it;
- crops edited through it by the engine's Triton backend (the fused editor model; encoder + attributes +
  decoder; the encode_decode ensemble) agree with the engine in this process, bit for bit or within the
  manifest's parity limit; a whole photo and `faceedit serve --triton`'s backend by name too;
- `faceedit serve --triton URL` answers an edit of a photo, the model run on Triton;
- 32 concurrent clients, one crop each, are merged by Triton's dynamic batcher: by Triton's own statistics,
  fewer executions than rows, and every client gets its own crop's edit back;
- the server stops on SIGINT with every process it started (the python-backend stubs).

Skips only where the wheel's server cannot run: not installed (`pip install --no-deps nvidia-pytriton==0.7.0`;
`make test` installs it), glibc older than 2.35, or a Python without a shared libpython."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")

from faceedit.serve import triton_server as ts  # noqa: E402  (after the skip: it needs nothing extra itself)

pytestmark = pytest.mark.slow  # ~20 s on 2 busy cores: server start, five models loaded in their stubs

ROOT = Path(__file__).resolve().parents[1]
CHANGES = {"smiling": 0, "young": 1}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    from faceedit.export.triton import write_model_repository
    return write_model_repository(None, tmp_path_factory.mktemp("triton") / "repository",
                                  python_backend="onnxruntime")


@pytest.fixture(scope="module")
def server(repository):
    try:
        ts.wheel_layout()
    except ts.ServerUnavailable as e:
        pytest.skip(f"no Triton server can run here: {e}")
    s = ts.TritonServer(repository)
    s.start(timeout_s=300)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def engine():
    from faceedit.engine import Editor
    return Editor.load(backend="onnxruntime", precision="fp32")


def test_one_repository_two_configurations(repository, server):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    for name in ("encoder", "attributes", "decoder", "editor"):
        native = text_format.Parse((repository / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        python = text_format.Parse((repository / name / "configs" / "python.pbtxt").read_text(),
                                   model_config_pb2.ModelConfig())
        assert (native.platform, python.backend) == ("onnxruntime_onnx", "python")
        assert native.input == python.input and native.output == python.output
        assert native.max_batch_size == python.max_batch_size == 64
        assert native.dynamic_batching == python.dynamic_batching
        assert python.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        assert python.parameters["faceedit_backend"].string_value == "onnxruntime"
        assert (repository / name / "1" / "model.py").is_file() and (repository / name / "1" / "model.onnx").is_file()
    index = {m["name"]: m.get("state") for m in server.models()}
    assert index == {m: "READY" for m in ("encoder", "attributes", "decoder", "editor", "encode_decode")}
    # the python models run faceedit's engine (their log lines), on the backend the configuration names
    assert server.log().count("faceedit editor: onnxruntime") == 1


def test_edits_through_triton_match_the_engine(server):
    checks = ts.run_checks(server.grpc_url, engine_backend="onnxruntime")
    print(*(c.line() for c in checks), sep="\n")
    assert len(checks) == 5 and all(c.ok for c in checks), [c.line() for c in checks]
    # the same graphs on the same runtime with the same options: the same numbers, bit for bit, here
    assert max(c.max_abs for c in checks) <= ts.parity_budget()
    print("largest difference:", max(c.max_abs for c in checks))


def test_a_photo_and_the_backend_by_name(server, engine, monkeypatch):
    from faceedit.engine import Editor, PhotoEditor
    from faceedit.engine.imageio import read_photo
    from faceedit.engine.backends.triton_client import URL_ENV
    monkeypatch.setenv(URL_ENV, server.grpc_url)  # what `faceedit serve --triton URL` sets
    remote = Editor.load(backend="triton")        # FaceService's call, with --triton
    assert remote.backend.name == "triton" and server.grpc_url in remote.describe() and remote.fused
    photo = read_photo(ROOT / "examples" / "astronaut.jpg")
    got = PhotoEditor(remote).edit([photo], {"smiling": 0})[0]
    want = PhotoEditor(engine).edit([photo], {"smiling": 0})[0]
    assert len(got.faces) == len(want.faces) >= 1
    assert np.abs(got.photo.rgb.astype(int) - want.photo.rgb.astype(int)).max() <= 1
    assert (got.photo.rgb != photo.rgb).any()


def test_dynamic_batching_under_32_concurrent_clients(server, engine):
    from faceedit.engine.backends.triton_client import remote_editor
    remote = remote_editor(server.grpc_url)
    crops = ts.astronaut_crops(32, 72)
    remote.edit(crops[0], CHANGES)  # every model the edit uses is warm
    before = {m: server.statistics(m) for m in ("editor", "attributes")}
    gate = threading.Barrier(32)
    results, errors = [None] * 32, []

    def client(i):
        try:
            gate.wait(30)
            results[i] = remote.edit(crops[i], CHANGES)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    after = {m: server.statistics(m) for m in ("editor", "attributes")}
    d = {m: {k: after[m][k] - before[m][k] for k in after[m]} for m in after}
    print("Triton statistics, 32 clients:", d)
    # every client's request was answered, and Triton ran fewer executions than the rows it inferred
    assert d["editor"]["success_count"] >= 32 and d["editor"]["inference_count"] >= 32
    assert d["editor"]["execution_count"] < d["editor"]["inference_count"]
    # each client got its own crop back, edited as the engine edits it alone (batching changes no pixel)
    want = engine.edit(crops, CHANGES)
    diffs = [int(np.abs(r.astype(int) - w.astype(int)).max()) for r, w in zip(results, want)]
    assert max(diffs) <= 1, diffs
    assert len({r.tobytes() for r in results}) == 32  # 32 different crops, 32 different answers


def test_faceedit_serve_in_front_of_triton(server):
    """`faceedit serve --triton URL`: the API and page here, every model call on Triton."""
    import base64
    import json
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = ts.free_port()
    url = f"http://127.0.0.1:{port}"
    before = server.statistics("editor")
    proc = subprocess.Popen([sys.executable, "-c", "from faceedit.cli.main import app; app()", "serve", "--triton",
                             server.grpc_url, "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "faceedit serve --triton did not start"
                time.sleep(0.3)
        with urllib.request.urlopen(url + "/v1/model", timeout=30) as r:
            assert json.loads(r.read())["backend"] == "triton"
        body = (ROOT / "examples" / "astronaut.jpg").read_bytes()
        req = urllib.request.Request(url + "/v1/edit?set=smiling=0&format=png", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 200
            out = json.loads(r.read())
        assert out["faces"] and base64.b64decode(out["image"])[:8] == b"\x89PNG\r\n\x1a\n"
        assert server.statistics("editor")["inference_count"] > before["inference_count"]  # edited on Triton
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_the_server_stops_with_every_process_it_started(server):
    proc, workdir = server.proc, server.workdir
    pgid = proc.pid
    stubs = [p for p in ts._process_group_members(pgid) if p != proc.pid]
    assert stubs, "the python models run in stub processes of the server's process group"
    server.stop()
    assert proc.poll() == 0, server.log()[-2000:]  # SIGINT: Triton unloads its models and exits 0
    assert server.leftovers == [] and ts._process_group_members(pgid) == []
    assert not workdir.exists()  # the laid-out server directory is removed
