"""Multiply-accumulates per image, counted from an ONNX graph: Conv, ConvTranspose, Gemm, MatMul and their
quantized forms, with shapes from ONNX shape inference at batch 1. FLOPs = 2 x MACs.

Needs the `onnx` package (extra `bench`); the runtime itself never does."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# op -> (index of the data input, index of the weight input)
_CONV_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "ConvTranspose": (0, 1)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}


def _shapes(model) -> dict[str, tuple]:
    """Concrete shapes of every value known after inference; None for an unknown dimension."""
    import onnx

    out = {}
    for init in model.graph.initializer:
        out[init.name] = tuple(init.dims)
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    for node in model.graph.node:         # Constant nodes carry weights in some exports
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = tuple(onnx.numpy_helper.to_array(a.t).shape)
    return out


def _with_batch(model, batch: int, symbolic: bool = False):
    """Copy of the model with every symbolic graph-input dimension fixed to `batch`, shapes inferred by
    ONNX (fast) or, symbolic=True, by onnxruntime's symbolic inference (follows Shape -> Expand chains)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        for d in inp.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = batch
    del m.graph.value_info[:]
    if symbolic:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
        return SymbolicShapeInference.infer_shapes(m, auto_merge=True)
    return onnx.shape_inference.infer_shapes(m, data_prop=True)


def _known(shape) -> bool:
    return shape is not None and len(shape) > 0 and all(d is not None and d > 0 for d in shape)


def node_macs(node, shapes) -> int | None:
    """MACs of one node, or None when a needed shape is unknown."""
    op = node.op_type
    if op in _CONV_OPS:
        xi, wi = _CONV_OPS[op]
        w = shapes.get(node.input[wi])
        if op == "ConvTranspose":   # each input pixel scatters (Cout/g) x kh x kw products
            x = shapes.get(node.input[xi])
            return int(np.prod(x)) * int(np.prod(w[1:])) if _known(x) and _known(w) else None
        y = shapes.get(node.output[0])
        return int(np.prod(y)) * int(np.prod(w[1:])) if _known(y) and _known(w) else None
    if op in _MATMUL_OPS:
        ai, _ = _MATMUL_OPS[op]
        a, y = shapes.get(node.input[ai]), shapes.get(node.output[0])
        if not (_known(a) and _known(y)):
            return None
        k = a[-1]
        if op == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute):
            k = a[0]
        return int(np.prod(y)) * int(k)
    return 0


def _count(model, shapes):
    by_op, unknown = {}, []
    for node in model.graph.node:
        macs = node_macs(node, shapes)
        if macs is None:
            unknown.append(node.name or node.op_type)
        elif macs:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
    return by_op, unknown


def count_macs(model_or_path, batch: int = 1) -> dict:
    """{"macs_per_image", "flops_per_image", "by_op": {op: macs}, "unknown_nodes": [...]} at `batch`."""
    import onnx

    model = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    by_op, unknown = _count(model, _shapes(_with_batch(model, batch)))
    if unknown:
        try:
            by_op, unknown = _count(model, _shapes(_with_batch(model, batch, symbolic=True)))
        except Exception:   # symbolic inference is best effort; the ONNX count stands, unknowns listed
            pass
    total = sum(by_op.values())
    return {"macs_per_image": total // batch, "flops_per_image": 2 * total // batch,
            "by_op": {k: v // batch for k, v in sorted(by_op.items())}, "unknown_nodes": unknown}
