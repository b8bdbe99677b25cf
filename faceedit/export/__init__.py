"""Checkpoint -> self-describing model directory (docs/model-directory.md).

export_model checks its arguments and the checkpoint, then runs the named stages of faceedit.export.pipeline
(fp32 graphs -> parity vs PyTorch -> reduced precision variants that each pass an accuracy budget -> latent
prior -> TensorRT engines -> shared weights -> manifest) in a hidden sibling directory that is swapped into
place only when complete. The judges `faceedit eval` scores with are no part of it: export.judges.add_judge
(`faceedit export-judge`) writes them into a judge set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["export_model", "export_judge", "ExportError", "DEFAULT_BUDGET", "write_triton"]
# imported on first use (PEP 562): onnx_graphs needs torch, and the Triton repository writer
# (faceedit.export.triton, under this package) runs on the torch-free runtime install
_LAZY = {"ExportError": "faceedit.export.onnx_graphs", "export_judge": "faceedit.export.onnx_graphs",
         "DEFAULT_BUDGET": "faceedit.export.variants"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")



def _data_dir(path) -> Path | None:
    if isinstance(path, (list, tuple)):  # TrainConfig.data is a list of folders: the first one (it validates)
        path = path[0] if path else None
    if not path:
        return None
    p = Path(path).expanduser()
    return p if p.is_dir() else None


def attribute_table(attributes: list[str], data_dir: Path | None) -> tuple[list[dict], str]:
    """Names in order, with train-split frequency and a default (1.0 when most train faces have it)."""
    freq = None
    source = "no data folder: frequencies unknown, defaults 0.0"
    if data_dir is not None:
        from faceedit.train.data import DataError, load_celeba
        try:
            ds = load_celeba(data_dir)
            _, labels = ds.select(attributes)
            idx = ds.split_indices("train")
            if len(idx):
                freq = labels[idx].mean(0)
                source = f"train split of {ds.root} ({len(idx)} images)"
        except (DataError, ValueError):
            pass
    rows = []
    for i, name in enumerate(attributes):
        f = None if freq is None else round(float(freq[i]), 5)
        rows.append({"name": name, "default": 1.0 if f is not None and f > 0.5 else 0.0, "frequency": f})
    return rows, source


def load_eval_json(path) -> dict:
    """An eval JSON file as a dict; ExportError with a one-line message when it cannot be read."""
    from faceedit.export.onnx_graphs import ExportError
    p = Path(path)
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise ExportError(f"eval JSON not found: {p}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"cannot read eval JSON {p}: {str(e).splitlines()[0]}") from None
    if not isinstance(obj, dict):
        raise ExportError(f"eval JSON {p} is not an object")
    return obj


def _read_eval(path) -> dict:
    """The manifest's "eval" entry: the summary of a `faceedit eval` JSON (or a summary given directly)."""
    from faceedit.export.onnx_graphs import ExportError
    p = Path(path)
    obj = load_eval_json(p)
    if "edit_success" in obj:  # a full `faceedit eval` result: keep its summary
        from faceedit.eval.report import summary
        try:
            return {**summary(obj), "source": p.name}
        except (KeyError, TypeError):
            raise ExportError(f"eval JSON {p} is not a faceedit eval result") from None
    return {**obj.get("summary", obj), "source": p.name}


def _versions(extra=()) -> dict:
    import onnx
    import onnxruntime
    import torch
    from faceedit import __version__
    v = {"faceedit": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
         "onnxruntime": onnxruntime.__version__}
    for mod in extra:
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            pass
    return v


def export_model(checkpoint, out_dir, *, calib_data=None, int8=True, openvino=True, fp16=True,
                 eval_json=None, log=print, budget: dict | None = None, calib_size: int = 256,
                 eval_size: int = 256, tensorrt: bool = False, trt_batch=(1, 8, 64), threads: int = 0,
                 edit_gain: float = 1.0, edit_gains: dict | None = None, edit_gain_note: str = "") -> dict:
    """Export `checkpoint` to the model directory `out_dir`; returns the manifest written there.

    budget: {"min_attribute_agreement", "min_psnr_db"} for every reduced-precision variant (a variant over
    budget is reported and recorded as rejected, never written). edit_gain: the decoder gain of set values;
    edit_gains: {attribute: gain} overriding it for those attributes. Raises ExportError (one-line message)."""
    import torch

    from faceedit.export import atomic, pipeline
    from faceedit.export.onnx_graphs import ExportError
    from faceedit.export.variants import DEFAULT_BUDGET
    from faceedit.train.checkpoint import load_checkpoint

    budget = {**DEFAULT_BUDGET, **(budget or {})}
    for name, g in {"all": edit_gain, **(edit_gains or {})}.items():
        if not 0.5 <= g <= 4:
            raise ExportError(f"edit gain must be within 0.5..4, got {g:g} ({name})")
    if tensorrt:  # fail before minutes of work, not after
        from faceedit.export.tensorrt import TensorRTUnavailable, check_available
        try:
            check_available()
        except TensorRTUnavailable as e:
            raise ExportError(str(e)) from None
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise ExportError(f"checkpoint not found: {ckpt}")
    try:
        model, state = load_checkpoint(ckpt)
    except ValueError as e:
        raise ExportError(str(e).splitlines()[0]) from None
    except Exception as e:
        raise ExportError(f"cannot load checkpoint {ckpt}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    eval_summary = _read_eval(eval_json) if eval_json else None
    cfg = model.cfg
    if edit_gains and set(edit_gains) - set(cfg.attributes):
        raise ExportError(f"edit gains name attributes the model lacks: {sorted(set(edit_gains) - set(cfg.attributes))}")
    trained_on = _data_dir(state.get("config", {}).get("data"))
    calib_dir = _data_dir(calib_data) if calib_data else trained_on
    if calib_data and calib_dir is None:
        raise ExportError(f"calibration data folder not found: {calib_data}")
    threads = threads or min(os.cpu_count() or 1, 8)
    torch.set_num_threads(threads)

    job = pipeline.Export(model=model, state=state, checkpoint=ckpt, log=log, budget=budget, threads=threads,
                          trained_on=trained_on, calib_dir=calib_dir, calib_size=calib_size, eval_size=eval_size,
                          int8=int8, fp16=fp16, openvino=openvino, tensorrt=tensorrt,
                          trt_batch=tuple(trt_batch), edit_gain=edit_gain, edit_gains=edit_gains,
                          edit_gain_note=edit_gain_note, eval_summary=eval_summary)
    with atomic.staging_dir(out_dir) as tmp:
        manifest = pipeline.run(job, tmp)
    log(f"wrote {Path(out_dir)}")
    return manifest


def write_triton(model_dir, triton_dir, **kw) -> list[str]:
    """Triton model repository from an exported model directory (see faceedit.export.triton)."""
    from faceedit.export.triton import write_repository
    from faceedit.core.manifest import load_manifest
    return write_repository(model_dir, triton_dir, load_manifest(model_dir), **kw)
