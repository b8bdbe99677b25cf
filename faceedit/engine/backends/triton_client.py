"""The engine's Editor with its graphs run by a Triton Inference Server (the repository `faceedit export
--triton DIR` writes), and the parity check that compares it with the engine run here.

    editor = remote_editor("127.0.0.1:8001")          # the shipped model's manifest; graphs on Triton
    editor.edit(face, {"smiling": 0})                  # same call, same client-side maths

The same backend, by name: `Editor.load(backend="triton")` (`faceedit serve --triton URL`, `faceedit run
--backend triton`) reaches the server at $FACEEDIT_TRITON_URL (default 127.0.0.1:8001). The server may run
either configuration of the repository: Triton's onnxruntime backend (NVIDIA's containers) or its python
backend running faceedit's engine (`faceedit triton serve`, faceedit.serve.triton_server).

Only the graphs move to the server. Everything around them stays with the client, exactly as in the engine:
detection, alignment and paste-back (PhotoEditor), resizing to the model's size, the attribute gains, auto
strength (re-rendering rows the attribute head does not read as asked), implied attributes, and the residual
(crop + upsampled edit - reconstruction). So a Triton deployment needs this package on the client, and the
parity check below proves the server computes what the engine computes."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from faceedit.engine.backends.base import Backend, Graph, importable
from faceedit.engine.editor import Editor

# the repository's dtypes (faceedit.export.triton TRITON_DTYPES) in the names the inference protocol uses
WIRE_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16", np.dtype(np.int64): "INT64",
               np.dtype(bool): "BOOL"}


def infer_inputs(feeds: dict[str, np.ndarray]):
    """{name: array} -> tritonclient.grpc InferInputs, batch dimension first, as the repository declares."""
    from tritonclient.grpc import InferInput
    out = []
    for name, arr in feeds.items():
        arr = np.ascontiguousarray(arr)
        inp = InferInput(name, list(arr.shape), WIRE_DTYPES[arr.dtype])
        inp.set_data_from_numpy(arr)
        out.append(inp)
    return out


class TritonGraph(Graph):
    def __init__(self, name, entry, client, timeout_s: float):
        super().__init__(name, entry)
        self.client, self.timeout_s = client, timeout_s

    def _run(self, feeds):
        from tritonclient.grpc import InferRequestedOutput
        result = self.client.infer(self.name, infer_inputs(feeds),
                                   outputs=[InferRequestedOutput(n) for n in self.output_names],
                                   client_timeout=self.timeout_s)
        # as_numpy views the response's bytes read-only; the Editor writes into its outputs (auto strength
        # re-renders rows in place), as it may into ONNX Runtime's: hand it arrays of its own
        return [np.array(result.as_numpy(n)) for n in self.output_names]


URL_ENV = "FACEEDIT_TRITON_URL"
DEFAULT_URL = "127.0.0.1:8001"


class TritonRemote(Backend):
    """A backend whose graphs are the repository's models on a Triton server (gRPC). In the backend registry
    as "triton" (never picked by `auto`): built by name, it reaches $FACEEDIT_TRITON_URL, else 127.0.0.1:8001."""
    name = "triton"
    label = "Triton Inference Server (gRPC)"
    device = "remote"
    precisions = ("fp32",)  # the repository holds the fp32 graphs

    def __init__(self, url: str | None = None, client=None, timeout_s: float = 60.0, threads: int = 0,
                 cache: bool = True):
        super().__init__(threads=1)  # threads/cache: the registry's arguments; the server has its own
        self.url, self.timeout_s = url or os.environ.get(URL_ENV) or DEFAULT_URL, timeout_s
        if client is None:
            from tritonclient.grpc import InferenceServerClient
            client = InferenceServerClient(self.url)
        self.client = client

    @classmethod
    def available(cls):
        return importable("tritonclient.grpc", "pip install 'tritonclient[grpc]'")

    def _load(self, model, graph, precision, entry):
        return TritonGraph(graph, entry, self.client, self.timeout_s)

    def describe(self) -> str:
        return f"{self.name} ({self.label} at {self.url})"


def server_ready(url: str, timeout_s: float = 10.0) -> str:
    """"" when the Triton server at url (gRPC) says it is ready, else one line saying why not."""
    try:
        from tritonclient.grpc import InferenceServerClient
        client = InferenceServerClient(url)
        try:
            return "" if client.is_server_ready(client_timeout=timeout_s) else "it is not ready"
        finally:
            client.close()
    except Exception as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__


def remote_editor(url: str = DEFAULT_URL, model=None, fused: bool = True, client=None) -> Editor:
    """An Editor on the model's manifest (model: a directory, a name or None for the shipped one) whose graphs
    run on the Triton server at url. fused=False uses the encoder, attribute and decoder models instead of the
    fused editor model (the path the engine takes where a precision has no fused graph)."""
    from faceedit.core.model_dir import ModelInfo
    info = model if isinstance(model, ModelInfo) else ModelInfo.load(model)
    editor = Editor(info, TritonRemote(url, client), "fp32", f"triton at {url}, fp32")
    editor.fused = fused and editor.fused
    return editor


# ---- parity: the server against the engine -------------------------------------------------------------
@dataclass
class Check:
    name: str
    max_abs: float       # largest difference (pixels: 0..255 levels; tensors: their own units)
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs) and self.max_abs <= self.tolerance)

    def line(self) -> str:
        return f"{'ok ' if self.ok else 'MISMATCH'} {self.name}: max |difference| {self.max_abs:.4g} (tolerance {self.tolerance:g})"


def max_abs(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def parity_checks(remote: Editor, local: Editor, crops: list[np.ndarray], changes: dict,
                  ensemble_client=None, pixel_tol: float = 2.0, prob_tol: float = 2e-3,
                  tensor_tol: float = 2e-3) -> list[Check]:
    """The same edit through both Editors (uint8 crops compared) and the attribute read of the same crops,
    through the Editors' public calls only; and, given a client, the repository's encode_decode ensemble
    against the engine's encoder -> decoder (on the attribute head's own reading of the crops)."""
    crops = list(crops)
    a, b = remote.edit(crops, changes), local.edit(crops, changes)
    path = "fused editor model" if remote.fused else "encoder + attributes + decoder models"
    checks = [Check(f"edit {changes} via the {path}: pixels", max(max_abs(x, y) for x, y in zip(a, b)), pixel_tol),
              Check(f"edit via the {path}: attribute head on the input",
                    max_abs(remote.attributes(crops), local.attributes(crops)), prob_tol)]
    if ensemble_client is not None:
        from tritonclient.grpc import InferRequestedOutput
        from faceedit.engine import tensors
        x = tensors.to_tensor(crops, local.size)
        attrs = np.ascontiguousarray((local.run_attributes(x) > 0.5).astype(np.float32))
        got = ensemble_client.infer("encode_decode", infer_inputs({"image": x, "attributes": attrs}),
                                    outputs=[InferRequestedOutput("output")]).as_numpy("output")
        mu = local.run_encoder(x)
        want = local.run_decoder(mu, attrs)
        checks.append(Check("encode_decode ensemble vs the engine's encoder -> decoder: tensor", max_abs(got, want), tensor_tol))
    return checks
