"""`faceedit bench`: latency and throughput of every way to run the model here, in one process, against
PyTorch eager of the same weights. Thin: the measuring lives in faceedit.bench (torch-free) and
faceedit.bench.eager (the baseline, imported only when torch is installed)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Optional

import typer

from faceedit.cli.reporting import UserError, friendly

EXTRA_BACKENDS = ("pytorch", "openvino-raw")


def parse_batches(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise UserError(f"--batches must be a comma-separated list of sizes (e.g. 1,2,4), got '{text}'") from None
    if not values or values[0] < 1 or values[-1] > 1024:
        raise UserError(f"--batches sizes must be 1..1024, got '{text}'")
    return values


def parse_backends(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    from faceedit.engine.backends import canonical_name
    out = []
    for name in (v.strip().lower() for v in text.split(",") if v.strip()):
        out.append(name if name in EXTRA_BACKENDS else canonical_name(name))
    return tuple(out)


def eager_module(checkpoint: Path | None):
    """faceedit.bench.eager when torch is installed (the baseline: the checkpoint's weights, or without one
    the model directory's own, rebuilt as PyTorch modules), else None."""
    if checkpoint is not None and not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx") is None:
        return None
    from faceedit.bench import eager
    return eager


def register(app: typer.Typer):
    bench_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                            help="Time the engine (the default) or a training step (`faceedit bench train`).")
    app.add_typer(bench_app, name="bench")

    @bench_app.callback()
    @friendly
    def bench(ctx: typer.Context,
              model: Optional[str] = typer.Option(None, "--model", help="Model directory or name (default: the shipped model)."),
              checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="The checkpoint the model was exported from, for the PyTorch-eager baseline. Default: the model directory's own weights rebuilt as PyTorch modules (needs the [train] extra: torch, onnx)."),
              quick: bool = typer.Option(False, "--quick", help="Fewer rows (batch sizes 1 and 32, fused graphs, 1/16/64 clients), the same stop rule for every comparison (a few minutes)."),
              batches: Optional[str] = typer.Option(None, "--batches", help="Batch sizes, e.g. 1,2,4 (default 1,2,4,8,16,32,64; quick 1,32)."),
              out: Path = typer.Option(Path("benchmarks/results"), "--out", help="Folder for MACHINE-KIND.json / .png / .md (the latest run per machine kind)."),
              backends: Optional[str] = typer.Option(None, "--backends", help="Only these, comma-separated: pytorch, openvino-raw and engine backends (onnxruntime, openvino, onnxruntime-cuda, onnxruntime-tensorrt, tensorrt)."),
              photos: Optional[Path] = typer.Option(None, "--photos", help="A folder of real photos: the face detector's report on them (found, eyes from landmarks, ms per photo)."),
              no_faces: Optional[Path] = typer.Option(None, "--no-faces", help="A folder of images that hold no face: every face found there is a false one (default: a built-in set of 50)."),
              photo_only: bool = typer.Option(False, "--photo-only", help="Only the photo path: end to end, face detection, engine load, cold `faceedit run` (no crop-edit tables)."),
              tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Seconds-long smoke run (the test suite's)."),
              save: bool = typer.Option(True, "--save/--no-save", help="Write the result files."),
              json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the whole result as JSON to this file (even with --no-save).")):
        """Time crop edits (batch 1..64), the dynamic batcher under 1..64 clients, 1-MP and 12-MP photos end to
        end, the face detector (synthetic cases, images without a face; --photos FOLDER for real ones) and a cold
        `faceedit run`, against PyTorch eager, raw OpenVINO and the machine's measured peak; every comparison
        interleaved until its 95% interval is within +-3%; print targets pass/miss.

        Example: faceedit bench --quick
        """
        if ctx.invoked_subcommand:  # `faceedit bench train`: its own options, nothing of the engine's
            return
        from rich.console import Console

        from faceedit.bench import report, results
        from faceedit.bench.plan import make_plan
        from faceedit.bench.plots import plot
        from faceedit.bench.suite import run

        console = Console(width=None if sys.stdout.isatty() else 160)  # logs and CI: no 80-column wrap
        mode = "tiny" if tiny else "quick" if quick else "full"
        if photos is not None and not photos.is_dir():
            raise UserError(f"--photos must be a folder of photos: {photos}")
        if no_faces is not None and not no_faces.is_dir():
            raise UserError(f"--no-faces must be a folder of images: {no_faces}")
        plan = make_plan(mode, model=model, checkpoint=checkpoint, batches=parse_batches(batches),
                         backends=parse_backends(backends), photos=photos, no_faces=no_faces)
        plan.crops = not photo_only
        eager = None if photo_only else eager_module(checkpoint)  # the baseline times crop edits only
        result = run(plan, eager_module=eager, log=lambda m: console.print(f"[dim]{m}[/]", highlight=False))
        report.print_report(result, console)
        if json_path is not None:
            console.print(f"wrote {results.write_json(json_path, result)}")
        if save:
            stem = result["machine"]["kind"] + ("" if mode == "full" else f"-{mode}") + ("-photo" if photo_only else "")
            json_path = results.write_json(out / f"{stem}.json", result)
            md_path = results.write_text(out / f"{stem}.md", report.markdown(result))
            png_path = None if photo_only else plot(result, out / f"{stem}.png")
            console.print(f"wrote {json_path}, {md_path}" + (f", {png_path}" if png_path else
                                                              " (no plot)" if photo_only else " (no matplotlib: no plot)")
                          + f" in {result['duration_s']:.0f} s")

    from faceedit.train.config import config_options  # torch-free: the options of `faceedit train`

    @bench_app.command("train")
    @friendly
    @config_options
    def bench_train(steps_timed: int = typer.Option(10, "--timed-steps", min=1, help="Steps timed (after the warm-up)."),
                    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed steps first (allocations, caches)."),
                    cfg=None, resume: bool = False):
        """Images per second of one training step here, split by part (generator forward, D's pass, backward,
        optimisers). Takes every option of `faceedit train`, so a config is timed as it would train; without
        --data it trains on 256 synthetic faces (the step's cost does not depend on the faces).

        Example: faceedit bench train --batch-size 32 --d-residual --diff-augment --cls-aug --projection --ema 0.995
        """
        if importlib.util.find_spec("torch") is None:
            raise UserError("faceedit bench train needs PyTorch: pip install -e '.[train]'")
        from faceedit.bench.train_step import bench_train as run_bench, report
        typer.echo(report(run_bench(cfg, steps=steps_timed, warmup=warmup)))
