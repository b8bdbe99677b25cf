"""`faceedit bench train`: the step is timed whole and by part, on synthetic faces, with any training option."""
from __future__ import annotations

import pytest

from conftest import cli, tiny_config

pytest.importorskip("torch")


def test_bench_train_times_every_part_of_the_step(tmp_path):
    from faceedit.bench.train_step import bench_train, report
    cfg = tiny_config("", tmp_path / "unused", batch_size=4, diff_augment=True, d_residual=True)
    cfg.data = []
    result = bench_train(cfg, steps=2, warmup=1)
    parts = result["parts_s"]
    assert list(parts) == ["generator forward (encoder, head, decoder x2)", "D forward (one pass) + R1",
                           "D backward + Adam", "G losses forward (D, critics, teacher)",
                           "G backward + Adam, EMA, stats"]
    assert all(v > 0 for v in parts.values())
    assert sum(parts.values()) == pytest.approx(result["step_s"], rel=0.25)  # the parts cover the step
    assert result["img_per_s"] == pytest.approx(4 / result["step_s"])
    text = report(result)
    assert "img/s" in text and "load average" in text and "D backward + Adam" in text


def test_bench_train_command_takes_the_training_options():
    r = cli("bench", "train", "--width", "8", "--dec-width", "32", "--z-channels", "4", "--batch-size", "4",
            "--timed-steps", "1", "--warmup", "0", "--no-bf16")
    assert r.exit_code == 0, r.output
    assert "training step, batch 4" in r.output and "fp32" in r.output
