"""TensorRT engines from the exported ONNX graphs (`faceedit export --tensorrt`).

Engine file names come from faceedit.core.tensorrt_names (shared with the engine's backend). Builds share a timing cache file per (TensorRT, GPU) so re-exports are fast."""
from __future__ import annotations

from pathlib import Path

from faceedit.core.tensorrt_names import engine_filename, nvidia_smi_gpu_name, timing_cache_filename


class TensorRTUnavailable(RuntimeError):
    """No TensorRT or no NVIDIA GPU here; one line for the user."""


def profile_shapes(inputs: list[dict], min_batch: int = 1, opt_batch: int = 8, max_batch: int = 64) -> dict:
    """(min, opt, max) shapes per input from manifest signatures (shape with "N" for the batch)."""
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"batch profile must satisfy 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    out = {}
    for t in inputs:
        dims = t["shape"]
        if not dims or dims[0] != "N" or any(not isinstance(d, int) for d in dims[1:]):
            raise ValueError(f"input {t['name']}: expected shape [N, fixed...], got {dims}")
        out[t["name"]] = tuple(tuple([b] + list(dims[1:])) for b in (min_batch, opt_batch, max_batch))
    return out


def gpu_name() -> str | None:
    """The first NVIDIA GPU's name, or None when there is none."""
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return nvidia_smi_gpu_name()


def check_available() -> tuple[object, str]:
    """(tensorrt module, GPU name), or TensorRTUnavailable with one line saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError:
        raise TensorRTUnavailable("--tensorrt needs TensorRT and an NVIDIA GPU: the tensorrt Python package is "
                                  "not installed (pip install 'faceedit[gpu]')") from None
    name = gpu_name()
    if not name:
        raise TensorRTUnavailable("--tensorrt needs an NVIDIA GPU: none was found (nvidia-smi / CUDA)")
    return trt, name


def build_engine(trt, onnx_path: Path, engine_path: Path, profile: dict, cache_path: Path,
                 fp16: bool = True, workspace_gb: float = 4.0) -> None:
    """Parse ONNX, one optimization profile over the batch, fp16 where faster, timing cache reused."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {Path(onnx_path).name}: {errs.splitlines()[0] if errs else '?'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    prof = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        prof.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(prof)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {Path(onnx_path).name}")
    engine_path.write_bytes(bytes(blob))
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_path.with_suffix(".tmp")
    tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    tmp.replace(cache_path)


def build_all(model_dir: Path, graphs: dict, cache_dir: Path, batch=(1, 8, 64), log=print) -> dict:
    """Engines for every fp32 graph in `graphs` (manifest entries). Returns manifest["tensorrt"]."""
    from faceedit.core.manifest import file_entry
    trt, name = check_available()
    cache_path = Path(cache_dir) / timing_cache_filename(trt.__version__, name)
    engines = {}
    for graph, entry in graphs.items():
        profile = profile_shapes(entry["inputs"], *batch)
        path = Path(model_dir) / engine_filename(graph, trt.__version__, name, "fp16")
        build_engine(trt, Path(model_dir) / entry["path"], path, profile, cache_path)
        engines[f"{graph}/fp16"] = {**file_entry(path, entry["inputs"], entry["outputs"]), "graph": graph,
                                    "profile": {k: [list(s) for s in v] for k, v in profile.items()}}
        log(f"built TensorRT engine {path.name}")
    return {"version": trt.__version__, "gpu": name, "precision": "fp16",
            "batch": {"min": batch[0], "opt": batch[1], "max": batch[2]},
            "timing_cache": str(cache_path), "engines": engines}
