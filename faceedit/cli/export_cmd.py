"""`faceedit export`: checkpoint -> model directory (+ optional TensorRT engines, Triton repository).
Needs the [train] extra (torch, onnx)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.reporting import UserError, friendly
from faceedit.core.files import sha256_file


def _parse_batch(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--trt-batch must be MIN,OPT,MAX (e.g. 1,8,64), got '{text}'") from None
    if not 1 <= lo <= opt <= hi:
        raise UserError(f"--trt-batch must satisfy 1 <= MIN <= OPT <= MAX, got '{text}'")
    return lo, opt, hi


def _summary(console, manifest: dict, out: Path):
    from rich.table import Table
    t = Table(title=f"model directory {out}", show_lines=False)
    for col in ("graph", "precision", "file", "MB"):
        t.add_column(col, justify="right" if col == "MB" else "left")
    entries = [(g, p, e) for g, precisions in manifest["graphs"].items() for p, e in precisions.items()]
    users = Counter(c["path"] for _, _, e in entries for c in e.get("companions") or [])
    shared = {}  # a companion several graphs use (weights.bin) gets a row of its own; an IR's .bin counts with it
    for graph, precision, entry in entries:
        size = entry["bytes"]
        for c in entry.get("companions") or []:
            if users[c["path"]] > 1:
                shared[c["path"]] = c["bytes"]
            else:
                size += c["bytes"]
        t.add_row(graph, precision, entry["path"], f"{size / 1e6:.2f}")
    for path, size in shared.items():
        t.add_row("(shared)", "", f"{path} (used by {users[path]} graphs)", f"{size / 1e6:.2f}")
    if manifest.get("latent_prior"):
        t.add_row("latent_prior", "", manifest["latent_prior"]["path"], f"{manifest['latent_prior']['bytes'] / 1e6:.2f}")
    for key, entry in (manifest.get("tensorrt") or {}).get("engines", {}).items():
        t.add_row(key.split("/")[0], "TensorRT fp16", entry["path"], f"{entry['bytes'] / 1e6:.2f}")
    console.print(t)
    p = Table(title="reduced precision vs fp32 (held-out faces)")
    for col in ("precision", "attribute agreement", "PSNR dB", "status"):
        p.add_column(col)
    for name, rec in manifest["precisions"].items():
        if name == "fp32":
            continue
        if "skipped" in rec:
            p.add_row(name, "-", "-", f"skipped: {rec['skipped']}")
            continue
        status = "rejected: " + ", ".join(rec["rejected"]) if rec["rejected"] else "all graphs accepted"
        p.add_row(name, f"{rec['attribute_agreement']:.4f}", f"{rec['psnr_db']:.1f}", status)
    console.print(p)
    strength = manifest.get("edit_strength") or {}
    other = {a: g for a, g in (strength.get("per_attribute") or {}).items() if g != strength.get("gain", 1.0)}
    console.print(f"edit gain {strength.get('gain', 1.0):g}"
                  + (" (" + ", ".join(f"{a} {g:g}" for a, g in other.items()) + ")" if other else ""))


def _gains_from(path: Path, checkpoint: Path) -> dict:
    """Per-attribute gains from a `faceedit eval` validation sweep of `checkpoint`, by the net-effect rule
    (evaluate.best_gains)."""
    import json
    try:
        result = json.loads(path.read_text())
        split, levels = result["split"], result["edit_success"]
        if "attributes" not in result or "edit_disturbance" not in result:
            raise KeyError("attributes")
    except FileNotFoundError:
        raise UserError(f"--edit-gains-from: {path} not found") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--edit-gains-from: {path} is not a `faceedit eval` JSON") from None
    if split == "test":
        raise UserError(f"--edit-gains-from: {path} measures the test split; choose gains on validation (--split val)")
    if len(levels) < 2:
        raise UserError(f"--edit-gains-from: {path} scores one intensity only; run eval with --intensities 1,1.25,1.5,1.75,2")
    measured = result.get("checkpoint_sha256")  # absent in sweeps from before it was recorded
    if measured and checkpoint.is_file() and measured != sha256_file(checkpoint):
        raise UserError(f"--edit-gains-from: {path} measured another checkpoint than {checkpoint}")
    from faceedit.eval.report import best_gains
    try:
        return best_gains(result)
    except (KeyError, TypeError, ValueError):
        raise UserError(f"--edit-gains-from: {path} lacks per-attribute edit figures") from None


def register(app: typer.Typer):
    @app.command("export")
    @friendly
    def export(checkpoint: Path = typer.Option(..., "--checkpoint", help="Training checkpoint (.pt)."),
               out: Path = typer.Option(..., "--out", help="Model directory to write (replaced atomically)."),
               calib_data: Optional[Path] = typer.Option(None, "--calib-data", help="CelebA-layout folder for int8 calibration (default: the checkpoint's data folder)."),
               calib_size: int = typer.Option(256, "--calib-size", help="Train images used to calibrate int8."),
               eval_size: int = typer.Option(256, "--eval-size", help="Held-out (val) images that measure each variant."),
               int8: bool = typer.Option(True, "--int8/--no-int8", help="ONNX Runtime int8 (QDQ) variant."),
               fp16: bool = typer.Option(True, "--fp16/--no-fp16", help="fp16 variant for GPUs (float32 IO)."),
               openvino: bool = typer.Option(True, "--openvino/--no-openvino", help="OpenVINO bf16 figures and NNCF int8 IR."),
               min_agreement: float = typer.Option(0.99, "--min-agreement", help="Budget: attribute decisions that must agree with fp32."),
               min_psnr: float = typer.Option(35.0, "--min-psnr", help="Budget: PSNR (dB) of decoded images vs fp32."),
               eval_json: Optional[Path] = typer.Option(None, "--eval-json", help="`faceedit eval` JSON whose summary goes into the manifest."),
               tensorrt: bool = typer.Option(False, "--tensorrt", help="Also build TensorRT fp16 engines (needs an NVIDIA GPU + TensorRT)."),
               trt_batch: str = typer.Option("1,8,64", "--trt-batch", help="TensorRT optimization profile batch MIN,OPT,MAX."),
               triton: Optional[Path] = typer.Option(None, "--triton", help="Also write a Triton model repository here."),
               triton_max_batch: int = typer.Option(64, "--triton-max-batch"),
               triton_queue_delay_us: int = typer.Option(500, "--triton-queue-delay-us"),
               edit_gain: float = typer.Option(1.0, "--edit-gain", help="Decoder gain for the values users set (0.5..4): pick it on validation with `faceedit eval --split val --intensities 1,1.25,1.5,1.75,2`."),
               edit_gains_from: Optional[Path] = typer.Option(None, "--edit-gains-from", help="A validation sweep (`faceedit eval --split val --intensities 1,1.25,1.5,1.75,2 --json F`): each attribute gets the gain with the best net effect there."),
               edit_gains: List[str] = typer.Option([], "--edit-gains", help="NAME=GAIN: that attribute's gain as given (0.5..4; repeat or separate with commas), e.g. chosen on an earlier sweep; instead of --edit-gains-from."),
               edit_gain_note: str = typer.Option("", "--edit-gain-note", help="How the gain was chosen (recorded in the manifest)."),
               threads: int = typer.Option(0, "--threads", help="CPU threads (0: up to 8).")):
        """Export a checkpoint to a self-describing model directory the engine runs without PyTorch.

        Example: faceedit export --checkpoint runs/celeba64/best.pt --out models/celeba64
        (The judges that score edits are no part of it: `faceedit export-judge` writes them into a judge set.)
        """
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UserError("export needs PyTorch: pip install 'faceedit[train]'") from None
        if not 0 < min_agreement <= 1:
            raise UserError("--min-agreement must be in (0, 1]")
        batch = _parse_batch(trt_batch)
        if edit_gains and edit_gains_from:
            raise UserError("--edit-gains and --edit-gains-from: give one of them")
        from faceedit.cli.options import name_numbers
        per_attribute = (_gains_from(edit_gains_from, checkpoint) if edit_gains_from
                         else name_numbers(edit_gains, "--edit-gains") or None)
        if triton_max_batch < 1 or triton_queue_delay_us < 0:
            raise UserError("--triton-max-batch must be >= 1 and --triton-queue-delay-us >= 0")
        from rich.console import Console

        from faceedit.export import ExportError, export_model, write_triton
        console = Console(stderr=False, highlight=False)
        log = lambda msg: console.print(msg, markup=False)
        try:
            with console.status("exporting...", spinner="dots"):
                manifest = export_model(checkpoint, out, calib_data=calib_data, int8=int8, openvino=openvino,
                                        fp16=fp16, eval_json=eval_json, log=log,
                                        budget={"min_attribute_agreement": min_agreement, "min_psnr_db": min_psnr},
                                        calib_size=calib_size, eval_size=eval_size, tensorrt=tensorrt,
                                        trt_batch=batch, threads=threads, edit_gain=edit_gain,
                                        edit_gains=per_attribute, edit_gain_note=edit_gain_note)
                if triton:
                    names = write_triton(out, triton, max_batch_size=triton_max_batch,
                                         max_queue_delay_us=triton_queue_delay_us)
                    log(f"wrote Triton repository {triton} ({', '.join(names)})")
        except ExportError as e:
            raise UserError(str(e)) from None
        _summary(console, manifest, out)
