"""The Triton path's client half, against a stand-in (tests/test_triton_server.py runs the real server from the
nvidia-pytriton wheel; this file needs neither the wheel nor a server, and runs where the wheel cannot).

RepositoryStandIn is NOT Triton. It reads the repository `faceedit export --triton` writes with Triton's own
config schema (tritonclient's model_config_pb2), refuses any request whose tensor names, datatypes, batch size
or dims differ from the config.pbtxt, runs each model's model.onnx with ONNX Runtime and the ensemble by its
config's step wiring, and answers with a real ModelInferResponse decoded by tritonclient's InferResult. So
these tests prove: the requests the client builds are what the repository declares, the ensemble's wiring
computes encoder -> decoder, the engine's Editor on the remote backend reproduces the engine's pixels, and the
parity check fails when the served result differs. Triton's own server, its dynamic batcher and the python
backend are tests/test_triton_server.py's; Triton's onnxruntime backend (NVIDIA's containers) is tested by
neither (`faceedit triton check --url` checks such a server where one runs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("torch")  # faceedit.export (the repository writer) imports it

ROOT = Path(__file__).resolve().parents[1]
WIRE = {"TYPE_FP32": ("FP32", np.float32)}


class RepositoryStandIn:
    """A stand-in for tritonclient.grpc.InferenceServerClient.infer over a model repository (see above)."""

    def __init__(self, repo: Path):
        import onnxruntime as ort
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
        self.repo, self.configs, self.sessions = repo, {}, {}
        for cfg_path in sorted(repo.glob("*/config.pbtxt")):
            cfg = text_format.Parse(cfg_path.read_text(), model_config_pb2.ModelConfig())
            self.configs[cfg.name] = cfg
            if cfg.platform == "onnxruntime_onnx":
                self.sessions[cfg.name] = ort.InferenceSession(str(repo / cfg.name / "1" / "model.onnx"),
                                                               providers=["CPUExecutionProvider"])
        self.calls = []

    def _type(self, t):
        from tritonclient.grpc import model_config_pb2
        return WIRE[model_config_pb2.DataType.Name(t.data_type)]

    def infer(self, model_name, inputs, outputs=None, client_timeout=None, **_):
        from tritonclient.grpc import InferResult, service_pb2
        cfg = self.configs[model_name]
        declared = {t.name: t for t in cfg.input}
        got = {}
        for inp in inputs:
            t = inp._get_tensor()
            if t.name not in declared:
                raise ValueError(f"{model_name} has no input {t.name!r}")
            wire, dtype = self._type(declared[t.name])
            shape = list(t.shape)
            if t.datatype != wire:
                raise ValueError(f"{model_name}.{t.name}: datatype {t.datatype}, the config says {wire}")
            if not 1 <= shape[0] <= cfg.max_batch_size or shape[1:] != list(declared[t.name].dims):
                raise ValueError(f"{model_name}.{t.name}: shape {shape} vs dims {list(declared[t.name].dims)}, "
                                 f"max_batch_size {cfg.max_batch_size}")
            got[t.name] = np.frombuffer(inp._get_content(), dtype).reshape(shape)
        if set(got) != set(declared) or len({len(v) for v in got.values()}) != 1:
            raise ValueError(f"{model_name}: inputs {sorted(got)} (one batch size) vs {sorted(declared)}")
        self.calls.append((model_name, len(next(iter(got.values())))))
        results = self._run(cfg, got)
        wanted = [o._get_tensor().name for o in outputs or []] or [t.name for t in cfg.output]
        if not set(wanted) <= {t.name for t in cfg.output}:
            raise ValueError(f"{model_name} has no output among {wanted}")
        response = service_pb2.ModelInferResponse(model_name=model_name)
        for name in wanted:
            arr = np.ascontiguousarray(results[name], np.float32)
            response.outputs.add(name=name, datatype="FP32", shape=list(arr.shape))
            response.raw_output_contents.append(arr.tobytes())
        return InferResult(response)

    def _run(self, cfg, feeds: dict) -> dict:
        if cfg.platform == "onnxruntime_onnx":
            sess = self.sessions[cfg.name]
            names = [o.name for o in sess.get_outputs()]
            return dict(zip(names, sess.run(names, feeds)))
        assert cfg.platform == "ensemble"
        tensors = dict(feeds)
        for step in cfg.ensemble_scheduling.step:
            sub = self.configs[step.model_name]
            out = self._run(sub, {model_in: tensors[ens] for model_in, ens in step.input_map.items()})
            tensors.update({ens: out[model_out] for model_out, ens in step.output_map.items()})
        return {t.name: tensors[t.name] for t in cfg.output}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    from faceedit.core.model_dir import ModelInfo
    from faceedit.export.triton import write_repository
    info = ModelInfo.load()
    repo = tmp_path_factory.mktemp("triton") / "repository"
    write_repository(info.path, repo, info.manifest, max_batch_size=8)
    return repo


@pytest.fixture(scope="module")
def stand_in(repository):
    return RepositoryStandIn(repository)


@pytest.fixture(scope="module")
def engine():
    from faceedit.engine import Editor
    return Editor.load(backend="onnxruntime", precision="fp32")


def crops():
    from faceedit.serve.triton_server import astronaut_crops
    return astronaut_crops()


@pytest.mark.parametrize("fused", [True, False])
def test_the_remote_editor_reproduces_the_engine(stand_in, engine, fused):
    import copy
    from faceedit.engine.backends.triton_client import parity_checks, remote_editor
    local = copy.copy(engine)
    local.fused = fused
    remote = remote_editor("stand-in", fused=fused, client=stand_in)
    stand_in.calls.clear()
    checks = parity_checks(remote, local, crops(), {"smiling": 0, "young": 1},
                           ensemble_client=stand_in if fused else None)
    print(*(c.line() for c in checks), sep="\n")
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert max(c.max_abs for c in checks) < 1.0  # same graphs, same runtime: at most a rounding step apart
    models = {m for m, _ in stand_in.calls}
    # the edit went through the models the engine would use, nothing ran locally
    assert models >= ({"editor", "attributes"} if fused else {"encoder", "attributes", "decoder"})
    assert ("editor" in models) == fused
    if fused:
        assert "encode_decode" in models


def test_the_parity_check_fails_when_the_server_differs(stand_in, engine):
    from faceedit.engine.backends.triton_client import parity_checks, remote_editor

    class Drifting:
        """The repository's answers, with the decoder's image shifted by 0.05 (about 6 levels)."""
        def infer(self, model_name, inputs, outputs=None, **kw):
            result = stand_in.infer(model_name, inputs, outputs, **kw)
            if model_name in ("editor", "decoder", "encode_decode"):
                from tritonclient.grpc import InferResult
                r = result.get_response()
                name = r.outputs[0].name
                arr = result.as_numpy(name) + np.float32(0.05)
                r.raw_output_contents[0] = arr.astype(np.float32).tobytes()
                return InferResult(r)
            return result
    checks = parity_checks(remote_editor("drift", client=Drifting()), engine, crops(), {"smiling": 0},
                           ensemble_client=Drifting())
    bad = [c for c in checks if not c.ok]
    assert {c.name.split(":")[0].split(" ")[0] for c in bad} >= {"edit", "encode_decode"}, [c.line() for c in checks]
    assert all(c.line().startswith("MISMATCH") for c in bad)


def test_requests_carry_the_repository_names_types_and_batch(stand_in):
    from faceedit.engine.backends.triton_client import infer_inputs
    x = np.zeros((2, 3, 64, 64), np.float32)
    assert stand_in.infer("attributes", infer_inputs({"image": x})).as_numpy("probabilities").shape == (2, 14)
    t = infer_inputs({"image": x})[0]._get_tensor()
    assert (t.name, t.datatype, list(t.shape)) == ("image", "FP32", [2, 3, 64, 64])
    with pytest.raises(ValueError, match="no input"):
        stand_in.infer("attributes", infer_inputs({"img": x}))
    with pytest.raises(ValueError, match="shape"):
        stand_in.infer("attributes", infer_inputs({"image": np.zeros((9, 3, 64, 64), np.float32)}))  # > max batch 8
    with pytest.raises(ValueError, match="datatype"):
        stand_in.infer("attributes", infer_inputs({"image": x.astype(np.float16)}))


def test_the_check_says_plainly_when_no_server_can_run(monkeypatch):
    from typer.testing import CliRunner
    from faceedit.cli.main import app
    from faceedit.serve import triton_server

    def unavailable():
        raise triton_server.ServerUnavailable("nvidia-pytriton is not installed (Triton's server comes in it)")
    monkeypatch.setattr(triton_server, "wheel_layout", unavailable)
    r = CliRunner().invoke(app, ["triton", "check"])
    assert r.exit_code == 3, r.output
    assert r.output.strip().splitlines() == [
        "error: no Triton server can run here: nvidia-pytriton is not installed (Triton's server comes in it)"]


def test_a_whole_photo_edit_keeps_detection_alignment_and_paste_back_on_the_client(stand_in, engine):
    from faceedit.engine import PhotoEditor
    from faceedit.engine.imageio import read_photo
    from faceedit.engine.backends.triton_client import remote_editor
    photo = read_photo(ROOT / "examples" / "astronaut.jpg")
    stand_in.calls.clear()
    remote = PhotoEditor(remote_editor("stand-in", client=stand_in)).edit([photo], {"smiling": 0})[0]
    local = PhotoEditor(engine).edit([photo], {"smiling": 0})[0]
    assert len(remote.faces) == len(local.faces) >= 1
    diff = np.abs(remote.photo.rgb.astype(int) - local.photo.rgb.astype(int))
    assert diff.max() <= 2 and (remote.photo.rgb != photo.rgb).any()  # edited, and as the engine edits
    # only the model ran remotely: one face, so every request held one row
    assert stand_in.calls and all(rows == 1 for _, rows in stand_in.calls)
