"""`faceedit train from-model`: an exported directory back into a training checkpoint that computes what its graphs
compute, and that `train --resume` continues from with a fresh discriminator."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_rebuilt_checkpoint_matches_the_graphs_and_resumes(tiny_model_dir, tiny_checkpoint, synth_data, tmp_path):
    import onnxruntime as ort

    from faceedit.cli.main import app
    from faceedit.train.data import ImageCache, load_celeba
    from faceedit.train.checkpoint import load_checkpoint
    from faceedit.train.train import Trainer
    from tests.conftest import tiny_config
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "from-model", "--model", str(tiny_model_dir), "--data", str(synth_data),
                                 "--out", str(run), "--faces", "64"])
    assert r.exit_code == 0, r.output
    model, state = load_checkpoint(run / "last.pt")
    assert state["step"] == torch.load(tiny_checkpoint, weights_only=True)["step"]
    assert not any(k.startswith("discriminator.") for k in state["model"])

    ds = load_celeba(synth_data)
    x = ImageCache(ds, 64).images[ds.split_indices("val")].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    run_graph = lambda name, feed: ort.InferenceSession(str(tiny_model_dir / f"{name}.onnx"),
                                                        providers=["CPUExecutionProvider"]).run(None, feed)
    mu = run_graph("encoder", {"image": x})[0]
    probs = run_graph("attributes", {"image": x})[0]
    y = (probs > 0.5).astype(np.float32)
    image = run_graph("decoder", {"z": mu, "attributes": y})[0]
    with torch.no_grad():
        t = torch.from_numpy(x)
        np.testing.assert_allclose(model.encoder(t)[0].numpy(), mu, atol=1e-4)
        np.testing.assert_allclose(torch.sigmoid(model.attribute_head(t)).numpy(), probs, atol=1e-4)
        np.testing.assert_allclose(model.decoder(torch.from_numpy(mu), torch.from_numpy(y)).numpy(), image, atol=1e-4)
        # every BatchNorm holds the statistics of its own input on training faces, so train mode (batch
        # statistics) normalises close to eval mode instead of undoing the folded scale
        for name, bn in model.named_modules():
            if isinstance(bn, torch.nn.BatchNorm2d) and not name.startswith("discriminator"):
                assert torch.allclose(bn.weight, (bn.running_var + bn.eps).sqrt())

    # the trainer continues from it: weights as rebuilt, a fresh discriminator, the step carried on
    logs = []
    cfg = tiny_config(synth_data, run, steps=state["step"] + 2, ckpt_every=1000, eval_every=1000)
    t = Trainer(cfg, resume=True, log=logs.append)
    assert t.step == state["step"] and any("no discriminator" in m for m in logs), logs
    assert torch.equal(t.model.decoder.out.weight, model.decoder.out.weight)
    t.fit()
    assert t.step == state["step"] + 2


def test_checkpoint_from_model_refuses_bad_input_in_one_line(synth_data, tmp_path):
    from faceedit.cli.main import app
    for args in (["--model", str(tmp_path / "nope"), "--data", str(synth_data)],
                 ["--model", "faceedit/models/default", "--data", str(tmp_path / "nodata")]):
        r = CliRunner().invoke(app, ["train", "from-model", *args, "--out", str(tmp_path / "run")])
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.slow
def test_resize_upsampling_trains_exports_and_rebuilds(synth_data, tmp_path):
    """--upsample resize (nearest x2 + 3x3 conv, issue 17's lever against checkerboard stripes): a tiny run
    trains, its decoder graph has Resize and no ConvTranspose and computes what torch computes, from-model
    rebuilds it as a resize model, and a run cannot switch modes when it resumes."""
    import onnx
    import onnxruntime as ort

    from faceedit.export import export_model
    from faceedit.train.checkpoint import load_checkpoint
    from faceedit.train.from_model import generator_from_model_dir
    from faceedit.train.train import Trainer
    from tests.conftest import tiny_config
    run = tmp_path / "run"
    Trainer(tiny_config(synth_data, run, upsample="resize"), log=lambda *a: None).fit()
    model, state = load_checkpoint(run / "last.pt")
    assert state["model_config"]["upsample"] == "resize"
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())

    out = tmp_path / "model"
    export_model(run / "last.pt", out, int8=False, openvino=False, fp16=False, log=lambda *a: None)
    ops = {n.op_type for n in onnx.load(str(out / "decoder.onnx")).graph.node}
    assert "Resize" in ops and "ConvTranspose" not in ops
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4, 8, 8)).astype(np.float32)
    y = rng.integers(0, 2, (3, model.cfg.n_attr)).astype(np.float32)
    image = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"z": z, "attributes": y})[0]
    with torch.no_grad():
        np.testing.assert_allclose(model.decoder(torch.from_numpy(z), torch.from_numpy(y)).numpy(), image, atol=1e-4)

    rebuilt, _ = generator_from_model_dir(out)
    assert rebuilt.cfg.upsample == "resize"
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt.decoder(torch.from_numpy(z), torch.from_numpy(y)).numpy(), image, atol=1e-4)

    with pytest.raises(RuntimeError, match="trained with --upsample resize"):
        Trainer(tiny_config(synth_data, run, steps=8), resume=True, log=lambda *a: None)
