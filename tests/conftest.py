"""Shared fixtures: synthetic CelebA-layout data and a tiny trained checkpoint (seconds on 2 cores).

Nothing here reads ../shared: the suite passes on a machine without the real data."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    # decoded-image caches go to a temporary folder, never to the user's ~/.cache
    os.environ["FACEEDIT_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """240 synthetic faces (89x109, CelebA layout): 192 train / 24 val / 24 test."""
    from faceedit.train.synth import write_synthetic_celeba
    return write_synthetic_celeba(tmp_path_factory.mktemp("synth"), 240, 89, seed=0)


def fit_collecting(cfg, resume=False, log=lambda *a: None):
    """Train a run to its end: (trainer, the stats of each of its steps)."""
    from faceedit.train.train import Trainer
    stats = []
    trainer = Trainer(cfg, resume=resume, log=log)
    trainer.fit(lambda step, total, s: stats.append(s))
    return trainer, stats


def side_critic_resumes_and_turns_on(data, tmp_path, option: dict, keys: tuple, name: str):
    """A run with a side critic (`option`, e.g. {"w_projected": 1.0}) resumed at step 4 gives the uninterrupted
    run's losses (`keys`) at steps 5 and 6; a run without it turns it on when it resumes, saying that the `name`
    critic starts fresh. Returns the stats of that first step with it on."""
    import pytest
    kw = dict(ckpt_every=4, eval_every=100, **option)
    _, full = fit_collecting(tiny_config(data, tmp_path / "a", steps=6, **kw))
    fit_collecting(tiny_config(data, tmp_path / "b", steps=4, **kw))
    _, resumed = fit_collecting(tiny_config(data, tmp_path / "b", steps=6, **kw), resume=True)
    for a, b in zip(full[4:], resumed):
        for k in keys:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), k
    fit_collecting(tiny_config(data, tmp_path / "c", steps=4, ckpt_every=4, eval_every=100))
    logs = []
    _, stats = fit_collecting(tiny_config(data, tmp_path / "c", steps=5, **kw), resume=True, log=logs.append)
    assert any(f"no {name} critic" in str(m) for m in logs), logs
    assert len(stats) == 1
    return stats[0]


def tiny_config(data, out, **kw):
    from faceedit.train.config import TrainConfig
    base = dict(data=[str(d) for d in data] if isinstance(data, list) else str(data), out=str(out), steps=4, batch_size=8, width=8, dec_width=32, z_channels=4,
                ckpt_every=2, eval_every=4, max_val=16, threads=2)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_data, tmp_path_factory):
    """A tiny CVAE-GAN trained for 4 steps on synthetic faces: path to its last.pt."""
    torch = pytest.importorskip("torch")
    from faceedit.train.train import Trainer
    out = tmp_path_factory.mktemp("run")
    Trainer(tiny_config(synth_data, out), log=lambda *a: None).fit()
    return out / "last.pt"


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported by the real exporter (fp32 graphs only): the model the engine tests load."""
    pytest.importorskip("onnx")
    from faceedit.export import export_model
    out = tmp_path_factory.mktemp("tiny_model") / "model"
    export_model(tiny_checkpoint, out, int8=False, openvino=False, fp16=False, log=lambda *a: None)
    return out


def model_with(model_dir, dest, **entries):
    """A copy of a model directory with manifest entries replaced: the manifest itself is not hashed (it holds
    the hashes), so the copy is a valid model with other settings."""
    import json
    import shutil
    shutil.copytree(model_dir, dest)
    m = json.loads((dest / "manifest.json").read_text())
    m.update(entries)
    (dest / "manifest.json").write_text(json.dumps(m))
    return dest


def cli(*args):
    """`faceedit ARGS` in-process (typer's runner); every argument as a string."""
    from typer.testing import CliRunner

    from faceedit.cli.main import app
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def model_args(tiny_model_dir):
    """The tiny exported model on ONNX Runtime fp32: what the CLI tests edit with."""
    return ["--model", tiny_model_dir, "--backend", "onnxruntime", "--precision", "fp32"]


def request(method, url, body: bytes | None = None, headers=None, timeout=120):
    """(status, lower-cased headers, body bytes), error statuses included (the serve tests' HTTP client)."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
