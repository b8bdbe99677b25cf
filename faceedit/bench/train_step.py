"""`faceedit bench train`: images per second of one training step on this machine, split by part.

Each option of `faceedit train` is taken as it is (a config is timed as it would train), on synthetic faces
unless --data names a folder. Steps run exactly as in a run (Trainer.train_step); `Trainer.lap` marks the end of
each part, so a change to the step can be judged by what it costs. Needs the [train] extra (torch)."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def synthetic_data(folder: Path, faces: int = 256) -> Path:
    from faceedit.train.synth import write_synthetic_celeba
    return write_synthetic_celeba(folder, faces, 89, seed=0)


def time_steps(trainer, steps: int, warmup: int) -> dict:
    """Run warmup + steps training steps; per part and in all, the median seconds of the timed steps."""
    parts, totals, last = defaultdict(list), [], [0.0]

    def lap(part):
        now = time.perf_counter()
        parts[part].append(now - last[0])
        last[0] = now
    if hasattr(trainer, "lap"):  # older Trainers have no laps: only the whole step is timed
        trainer.lap = lap
    for i in range(warmup + steps):
        if i == warmup:
            parts.clear()
        x, y = trainer.batch(trainer.step)
        start = last[0] = time.perf_counter()
        trainer.train_step(x, y)
        trainer.step += 1
        if i >= warmup:
            totals.append(time.perf_counter() - start)
    step = statistics.median(totals)
    return {"batch_size": len(x), "steps": steps, "step_s": step, "img_per_s": len(x) / step,
            "step_s_all": totals, "parts_s": {k: statistics.median(v) for k, v in parts.items()}}


def bench_train(cfg, steps: int = 10, warmup: int = 3, log=print) -> dict:
    """Time `steps` steps of the config after `warmup` untimed ones (synthetic faces when cfg.data is empty)."""
    from faceedit.train.train import Trainer
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        if not cfg.data:
            cfg.data = [str(synthetic_data(Path(tmp) / "faces"))]
        cfg.out, cfg.d_warmup = str(Path(tmp) / "run"), 0   # the generator trains in every timed step
        trainer = Trainer(cfg, log=lambda *a: None)
        result = time_steps(trainer, steps, warmup)
    result.update(load_start=load_start, load_end=os.getloadavg(), bf16=trainer.bf16,
                  threads=__import__("torch").get_num_threads())
    return result


def report(result: dict) -> str:
    lines = [f"training step, batch {result['batch_size']}: {result['step_s'] * 1000:.0f} ms median of "
             f"{result['steps']} = {result['img_per_s']:.2f} img/s ({'bf16' if result['bf16'] else 'fp32'}, "
             f"{result['threads']} threads)"]
    total = sum(result["parts_s"].values()) or 1.0
    for part, s in result["parts_s"].items():
        lines.append(f"  {part:<48} {s * 1000:8.0f} ms  {s / total:6.1%}")
    lines.append("load average at start {:.2f} {:.2f} {:.2f}, at end {:.2f} {:.2f} {:.2f}".format(
        *result["load_start"], *result["load_end"]))
    return "\n".join(lines)
