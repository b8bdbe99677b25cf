"""faceedit on Ray Serve (faceedit.serve.ray_app) on a local Ray cluster this module starts on loopback and
shuts down at the end: the API answers as `faceedit serve`'s app does (compared with a `faceedit serve`
process), bad uploads get the same JSON errors, a full router queue answers 503 with Retry-After, and with two
replicas, killing one replica's actor mid-load leaves every request answered (a 200 with a whole result, or an
error the client sees) and the application back at two replicas. Bounded: a few hundred requests, each with a
timeout; about a minute on 2 cores."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import request as http_request
from test_serve import Server, free_port

pytest.importorskip("fastapi")
pytest.importorskip("ray.serve")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = (ROOT / "examples" / "astronaut.jpg").read_bytes()
TIMEOUT_S = 60


def request(method, url, body=None, headers=None, timeout=TIMEOUT_S):
    return http_request(method, url, body, headers, timeout)


def crop_png(size: int = 96) -> bytes:
    """An aligned-style square crop of the astronaut's face."""
    rgb = np.asarray(Image.open(io.BytesIO(ASTRONAUT)).convert("RGB"))[40:190, 150:300]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size)).save(buf, format="PNG")
    return buf.getvalue()


def pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")).astype(int)


# ---- the cluster, and the same app run by `faceedit serve`'s code in this process ----------------------
@pytest.fixture(scope="module")
def ray_serve():
    from faceedit.serve import ray_app
    from faceedit.serve.service import ServiceConfig
    port = free_port()
    ray_app.start("127.0.0.1", port, num_cpus=2)
    try:
        # two replicas of half a CPU each, one backend thread each; a third, tight application for backpressure
        ray_app.deploy(ray_app.build_app(ServiceConfig(max_delay_ms=5), scale=ray_app.ScaleOptions(
            min_replicas=2, max_replicas=2, replica_cpus=0.5, health_period_s=2, health_timeout_s=10)))
        ray_app.deploy(ray_app.build_app(ServiceConfig(max_batch=1), scale=ray_app.ScaleOptions(
            max_ongoing=1, max_queued=1, replica_cpus=0.5)), name="tight", route_prefix="/tight")
        yield f"http://127.0.0.1:{port}"
    finally:
        ray_app.stop()


@pytest.fixture(scope="module")
def local():
    """`faceedit serve` itself, a real process on another loopback port, to compare answers with."""
    s = Server("--max-delay-ms", 5, "--threads", 1)  # one backend thread, as each replica has
    yield s.url
    s.close()


# ---- the same API -----------------------------------------------------------------------------------
def test_model_page_and_readiness_match_faceedit_serve(ray_serve, local):
    for path in ("/v1/model", "/healthz"):
        remote, here = request("GET", ray_serve + path), request("GET", local + path)
        assert remote[0] == here[0] == 200
        assert json.loads(remote[2]) == json.loads(here[2]), path
    for path in ("/", "/static/app.js", "/openapi.json"):
        remote, here = request("GET", ray_serve + path), request("GET", local + path)
        assert remote[0] == 200 and remote[2] == here[2], path
    code, _, body = request("GET", ray_serve + "/readyz")
    assert code == 200 and json.loads(body)["status"] == "ready"


def test_edits_and_attributes_match_faceedit_serve(ray_serve, local):
    crop = crop_png()
    for path, body in (("/v1/edit?aligned=true&set=smiling=0&set=young=1", crop),
                       ("/v1/edit?set=smiling=0&format=png", ASTRONAUT),
                       ("/v1/attributes", ASTRONAUT)):
        remote, here = request("POST", ray_serve + path, body), request("POST", local + path, body)
        assert remote[0] == here[0] == 200, (path, remote[2][:200])
        a, b = json.loads(remote[2]), json.loads(here[2])
        assert a.keys() == b.keys() and a["faces_found"] == b["faces_found"] >= 1
        for fa, fb in zip(a["faces"], b["faces"]):
            assert fa["box"] == fb["box"] and fa["attributes"].keys() == fb["attributes"].keys()
            assert max(abs(fa["attributes"][k] - fb["attributes"][k]) for k in fa["attributes"]) < 1e-3
        if "image" in a:
            ra, rb = pixels(a["image"]), pixels(b["image"])
            assert ra.shape == rb.shape and np.abs(ra - rb).max() <= 2, path


@pytest.mark.parametrize("path, body", [
    ("/v1/edit?set=smiling=0", b"this is not an image"),
    ("/v1/edit?set=smiling=0", b""),
    ("/v1/edit?set=no_such_attribute=1", ASTRONAUT),
    ("/v1/edit?set=smiling=7", ASTRONAUT),
    ("/v1/edit", ASTRONAUT),
    ("/v1/attributes?face=banana", ASTRONAUT),
    ("/v1/attributes?aligned=maybe", ASTRONAUT),
])
def test_bad_requests_get_the_same_json_error(ray_serve, local, path, body):
    remote, here = request("POST", ray_serve + path, body), request("POST", local + path, body)
    assert remote[0] == here[0] and 400 <= remote[0] < 500
    err, ours = json.loads(remote[2]), json.loads(here[2])
    assert err.pop("request_id") and ours.pop("request_id")  # every answer has one, its own
    assert err == ours and {"error", "status", "kind"} <= set(err) <= {"error", "status", "kind", "field"}


def test_a_full_queue_answers_503_with_retry_after(ray_serve):
    # the tight application: one replica, one request at a time, one waiting; 8 at once must overflow
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: request("POST", ray_serve + "/tight/v1/edit?set=smiling=0", ASTRONAUT),
                                range(8)))
    codes = sorted(a[0] for a in answers)
    assert set(codes) <= {200, 503} and codes.count(503) >= 1 and codes.count(200) >= 1, codes
    for code, headers, _ in answers:
        if code == 503:
            assert int(headers["retry-after"]) >= 1
    assert request("POST", ray_serve + "/tight/v1/edit?set=smiling=0", ASTRONAUT)[0] == 200  # and it drains


# ---- a replica dies mid-load ---------------------------------------------------------------------------
def replica_actors() -> dict:
    import ray
    return {a["name"]: a for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("SERVE_REPLICA::faceedit#")}


def running_replicas() -> int:
    from ray import serve
    status = serve.status().applications["faceedit"]
    if status.status != "RUNNING":
        return 0
    return sum(d.replica_states.get("RUNNING", 0) for d in status.deployments.values())


def test_killing_a_replica_mid_load_loses_no_request_silently(ray_serve):
    import ray
    before = replica_actors()
    assert len(before) == 2 and running_replicas() == 2
    crop, url = crop_png(), ray_serve + "/v1/edit?aligned=true&set=smiling=0"
    outcomes, lock, stop = [], threading.Lock(), threading.Event()

    def client():
        for _ in range(60):  # bounded: at most 60 requests per client
            if stop.is_set():
                return
            try:
                code, _, body = request("POST", url, crop, timeout=TIMEOUT_S)
                whole = code == 200 and pixels(json.loads(body)["image"]).shape == (96, 96, 3)
                outcome = "ok" if whole else ("bad 200" if code == 200 else f"error {code}")
            except (OSError, ValueError) as e:  # the client sees a dropped connection or a timeout
                outcome = f"error {type(e).__name__}"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(outcomes) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = sorted(before)[0]
    ray.kill(ray.get_actor(victim, namespace=before[victim]["namespace"]), no_restart=True)
    killed_at = len(outcomes)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(TIMEOUT_S * 2)
    assert not any(t.is_alive() for t in threads), "a request never got an answer"
    assert "bad 200" not in outcomes
    errors = [o for o in outcomes if o != "ok"]
    # only requests in flight on the killed replica may fail: at most one per client, plus a few the
    # routers sent before they learnt of the death
    assert len(errors) <= 12, errors
    assert outcomes[killed_at:].count("ok") >= 5, outcomes[killed_at:]

    # the controller replaces the replica and the application serves with two again
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (running_replicas() == 2 and victim not in replica_actors()
                                               and len(replica_actors()) == 2):
        time.sleep(0.5)
    assert running_replicas() == 2 and victim not in replica_actors()
    assert all(request("POST", url, crop)[0] == 200 for _ in range(6))


# ---- pieces checked without a cluster -----------------------------------------------------------------
def test_health_probe_fails_only_when_the_model_cannot_answer():
    from faceedit.engine.errors import BatcherClosed, Overloaded
    from faceedit.serve.ray_app import health_probe
    from faceedit.serve.service import FaceService, ServiceConfig
    svc = FaceService(ServiceConfig(max_delay_ms=5, threads=1))
    try:
        asyncio.run(health_probe(svc, 30))  # a real probe row through the batcher
    finally:
        svc.close()
    with pytest.raises(BatcherClosed):  # and a closed batcher is a dead replica
        asyncio.run(health_probe(svc, 5))

    class Busy:
        async def probe(self, timeout_s):
            raise Overloaded("queue full")

    class Closed:
        async def probe(self, timeout_s):
            raise BatcherClosed("the batcher is closed")
    asyncio.run(health_probe(Busy(), 5))  # busy is alive: Ray must not restart it
    with pytest.raises(BatcherClosed):
        asyncio.run(health_probe(Closed(), 5))


def test_scale_options_and_the_serve_run_builder():
    from faceedit.serve.ray_app import ScaleOptions, build
    fixed = ScaleOptions(min_replicas=3, max_replicas=3).deployment_options(30)
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["backpressure_config"].status_code == 503 and fixed["backpressure_config"].retry_after_s >= 1
    auto = ScaleOptions(min_replicas=1, max_replicas=4).deployment_options(30)
    assert auto["autoscaling_config"]["max_replicas"] == 4 and "num_replicas" not in auto
    with pytest.raises(ValueError, match="min"):
        ScaleOptions(min_replicas=3, max_replicas=2).check()
    app = build({"replicas": "2", "max_batch": "8", "replica_cpus": "0.5", "cors": "http://a.example"})
    assert type(app).__name__ == "Application"
    with pytest.raises(ValueError, match="unknown option"):
        build({"replicass": "2"})


def test_serve_run_arguments_are_typed_by_the_field_defaults():
    import dataclasses

    from faceedit.serve.ray_app import _typed

    @dataclasses.dataclass
    class Options:
        on: bool = True
        count: int = 1
        rate: float = 0.5

    fields = dataclasses.fields(Options)
    assert _typed(fields, {"on": "false", "count": "3", "rate": "2"}) == {"on": False, "count": 3, "rate": 2.0}
    assert _typed(fields, {"on": "True"}) == {"on": True}
    with pytest.raises(ValueError, match="true or false"):
        _typed(fields, {"on": "maybe"})


def test_ray_options_without_ray_are_one_line_errors():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "faceedit", "serve", "--replicas", "2"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and r.stderr.strip() == \
        "error: --replicas, --min-replicas, --max-replicas and --ray-address need --ray"
