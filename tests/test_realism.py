"""Realism in `faceedit eval`: a texture that fools a classifier does not pass, an edit that changes nothing
passes realism and fails the judge. Tiny synthetic models (numpy graphs behind the engine's Editor) on
synthetic faces; nothing here reads ../shared."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceedit.core.model_dir import ModelInfo
from faceedit.eval import realism as R
from faceedit.eval.run import EvalConfig, evaluate
from faceedit.eval.subject import UnderTest

NAMES = ["Smiling", "Young"]
SIZE = 64


def stripes(amplitude: float = 0.35) -> np.ndarray:
    """[3, S, S] vertical stripes two pixels wide, in opposite phase on red and blue (stripes and colour noise)."""
    col = np.where((np.arange(SIZE) // 2) % 2 == 0, 1.0, -1.0).astype(np.float32)
    return amplitude * np.stack([col, np.zeros_like(col), -col])[:, None, :].repeat(SIZE, 1)


class FakeBackend:
    """Encoder, attribute head and decoder as numpy functions behind the engine's Backend interface. The head
    reads every attribute off (so each edit sets it on); the decoder draws stripes in proportion to how many
    attributes are set (striped=True), or ignores the attributes altogether (an identity edit)."""
    name, label, device = "fake", "numpy test graphs", "cpu"

    def __init__(self, striped: bool):
        self.striped = striped

    def has(self, model, graph, precision):
        return graph != "editor"

    def load(self, model, graph, precision):
        striped = self.striped

        class Graph:
            def run(self, feeds):
                if graph == "encoder":
                    z = np.zeros((len(feeds["image"]), 4, 8, 8), np.float32)
                    return [z, z]
                if graph == "attributes":
                    return [np.full((len(feeds["image"]), len(NAMES)), 0.2, np.float32)]
                y = feeds["attributes"]
                out = np.zeros((len(y), 3, SIZE, SIZE), np.float32)
                return [out + stripes()[None] * y.sum(1)[:, None, None, None]] if striped else [out]
        return Graph()

    def describe(self):
        return self.name


class TextureJudge:
    """A judge fooled by texture, as classifiers are: it reads every attribute 'on' exactly when the face
    carries more high-frequency energy than any synthetic face has."""
    name = "texture-judge"

    def __call__(self, x):
        on = R.hf_energy(x) > 0.07  # synthetic faces: 0.01-0.06; with these stripes: above 0.08
        return np.repeat(np.where(on, 0.9, 0.1)[:, None], len(NAMES), 1).astype(np.float32)


class StatsFeatures:
    """A stand-in embedding for KID: per-channel mean, spread and high-frequency energy."""
    name = "stats"

    def features(self, x):
        u = (x + 1) / 2
        return np.concatenate([u.mean((2, 3)), u.std((2, 3)), 50 * R.hf_energy(x)[:, None]], 1)


def fake_model(striped: bool) -> UnderTest:
    a = len(NAMES)
    info = ModelInfo(path=Path("fake"), manifest={}, image_size=SIZE, z_shape=(4, 8, 8), attribute_names=NAMES,
                     defaults=[0.0] * a, crop={}, edit_gains=[1.0] * a, edit_tops=[1.0] * a)
    return UnderTest(info, FakeBackend(striped), "test")


@pytest.fixture(scope="module")
def realism_of(synth_data):
    """realism_of[striped]: the realism block of `evaluate` on 96 synthetic faces (each run once)."""
    pytest.importorskip("torch")
    cfg = EvalConfig(synth_data, "train", limit=96, intensities=(1.0,), features=StatsFeatures(), folds=3, epochs=8,
                     log=lambda *a: None)
    return {striped: evaluate(fake_model(striped), TextureJudge(), cfg)["realism"] for striped in (True, False)}


def test_artifact_ratio_rises_with_stripes_and_falls_with_blur():
    import cv2
    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.uniform(-1, 1, (SIZE, SIZE, 3)).astype(np.float32), (0, 0), 1.5)
    x = np.clip(face.transpose(2, 0, 1)[None] * 3, -1, 1)
    blurred = cv2.GaussianBlur(x[0].transpose(1, 2, 0), (0, 0), 1.5).transpose(2, 0, 1)[None]
    assert R.artifact_ratio(x, x)[0] == pytest.approx(1.0)
    assert R.artifact_ratio(np.clip(x + stripes(0.1)[None], -1, 1), x)[0] > R.ARTIFACT_BAND[1]
    assert R.artifact_ratio(blurred, x)[0] < R.ARTIFACT_BAND[0]
    assert R.in_band(np.array([0.79, 0.8, 1.0, 1.15, 1.16])).tolist() == [False, True, True, True, False]


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    assert abs(R.kid(a, b)) < 0.05
    assert R.kid(a, b + 1.0) > 0.5
    assert R.kid(a[:1], b) is None


def test_identity_folds_keep_each_identity_in_one_fold():
    groups = np.array([5, 5, 7, 9, 9, 9, 11, 12])
    fold = R.identity_folds(groups, 3)
    for g in np.unique(groups):
        assert len(set(fold[groups == g])) == 1
    assert set(fold) <= {0, 1, 2}


def test_a_striped_edit_fools_the_judge_but_not_realism(realism_of):
    r = realism_of[True]
    for a in NAMES:
        assert r["edit_success_judged"]["per_attribute"][a] == 1.0      # the texture judge is fooled
        assert r["edit_success_realistic"]["per_attribute"][a] == 0.0   # the artifact band is not
        assert r["artifact_ratio"]["per_attribute"][a]["in_band"] == 0.0
        assert r["two_sample"]["per_attribute"][a] > 0.8                # and a fresh CNN sees it
    assert r["two_sample"]["per_attribute"][a] > r["two_sample"]["reconstruction"] + 0.05 or \
        r["two_sample"]["reconstruction"] > 0.8  # (flat grey reconstructions are easy to tell from faces too)


def test_an_identity_edit_passes_realism_and_fails_the_judge(realism_of):
    r, striped = realism_of[False], realism_of[True]
    for a in NAMES:
        assert r["artifact_ratio"]["per_attribute"][a]["median"] == pytest.approx(1.0)
        assert r["artifact_ratio"]["per_attribute"][a]["in_band"] == 1.0
        assert r["two_sample"]["per_attribute"][a] == 0.5  # identical images: exactly chance
        assert r["edit_success_judged"]["per_attribute"][a] == 0.0
        assert r["edit_success_realistic"]["per_attribute"][a] == 0.0
        assert r["kid"]["per_attribute"][a] < striped["kid"]["per_attribute"][a]
