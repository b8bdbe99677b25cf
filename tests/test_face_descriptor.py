"""The face descriptor (dlib's face-recognition ResNet, ported from face-api's tfjs weights): the vendored files
are the ones NOTICE.md names, the port reproduces face-api's own output, and it behaves like a face
recogniser: the same face close, other images far. One network load, a few 150x150 forward passes."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")

from faceedit.train import face_descriptor as fd  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    # a small net (about 0.3 GMAC a face): on a busy 2-core machine, two torch threads waiting on each other
    # cost ten times the work itself
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rgb(array: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> (1, 3, H, W) in [-1, 1], as the generator's images are."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_vendored_files_match_notice_and_module():
    notice = (fd.WEIGHTS / "NOTICE.md").read_text()
    for name, digest in fd.SHA256.items():
        assert fd.sha256(fd.WEIGHTS / name) == digest, name
        assert re.search(rf"\| {re.escape(name)} \| \d+ \| {digest} \|", notice), f"NOTICE.md lacks {name}'s sha256"
    weights = fd.read_tfjs_weights()
    assert len(weights) == 117 and weights["fc"].shape == (256, 128)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights.values())


def test_port_reproduces_face_api():
    # the reference came from face-api's own tfjs build (verify_tfjs.mjs); at 150x150 neither side resizes
    reference = json.loads((fd.WEIGHTS / "tfjs_reference.json").read_text())
    image = skimage_data.astronaut()[35:185, 145:295]
    with torch.no_grad():
        ours = fd.load_face_descriptor_net()(fd.preprocess(rgb(image)))[0].double().numpy()
    theirs = np.array(reference["descriptor"])
    assert np.abs(ours - theirs).max() < 1e-5
    assert ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs) > 0.99999


def test_same_face_close_other_images_far():
    astronaut, cat = skimage_data.astronaut(), skimage_data.chelsea()
    face = rgb(astronaut[0:220, 120:320])  # 220x200: padded to a square first, as face-api does
    shifted = rgb(astronaut[6:226, 114:314])  # the same face 6 px down and right in the frame
    small = torch.nn.functional.interpolate(shifted, size=(64, 64), mode="bilinear", antialias=True)  # as trained
    not_it = -face.flip(3)  # mirrored, colours inverted
    kitten = rgb(cat[20:250, 100:330])
    with torch.no_grad():
        d = torch.cat([fd.face_descriptor(torch.cat([face, shifted, not_it])), fd.face_descriptor(small),
                       fd.face_descriptor(kitten)])
    assert d.shape == (5, 128) and torch.allclose(d.norm(dim=1), torch.ones(5))
    cos = (d[0] @ d.T).tolist()
    _, same_face, inverted, same_small, other = cos
    assert min(same_face, same_small) > max(inverted, other) + 0.03, cos


def test_identity_loss_and_features_train_the_images_only():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = (x + 0.02 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    loss = fd.identity_loss(x, y)
    loss.backward()
    assert -1e-6 < loss.item() < 0.05 and y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in fd._net_on("cpu").parameters())
    assert fd.identity_loss(fd.face_descriptor(x), fd.face_descriptor(x)).item() == pytest.approx(0, abs=1e-6)
    shapes = [tuple(f.shape) for f in fd.face_features(x)]
    assert shapes == [(2, 32, 35, 35), (2, 64, 17, 17), (2, 128, 8, 8), (2, 256, 2, 2)]


def test_w_identity_adds_the_descriptor_distance_of_input_and_edit(synth_data, tmp_path):
    """--w-identity: loss_g of one step is the same step's without it plus w * identity (same seed), the identity
    term a descriptor distance (0 the same face, ~1 unrelated); a negative weight is refused."""
    from conftest import tiny_config
    from faceedit.train.config import TrainConfig
    from faceedit.train.train import Trainer

    def one_step(out, **kw):
        stats = []
        Trainer(tiny_config(synth_data, out, steps=1, **kw), log=lambda *a: None).fit(
            lambda step, total, s: stats.append(s))
        return stats[0]

    off = one_step(tmp_path / "off")
    on = one_step(tmp_path / "on", w_identity=4.0)
    assert "identity" not in off and 0 < on["identity"] < 2
    assert on["loss_g"] == pytest.approx(off["loss_g"] + 4.0 * on["identity"], rel=1e-5)
    with pytest.raises(ValueError, match="--w-identity"):
        TrainConfig(data=[str(synth_data)], w_identity=-1).check()


def test_loading_the_net_leaves_the_random_stream_alone():
    """A training run's draws must not depend on when its process first loaded the recogniser (resume exactness)."""
    state = torch.get_rng_state()
    fd.load_face_descriptor_net()
    assert torch.equal(state, torch.get_rng_state())
