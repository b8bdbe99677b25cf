"""The edit filter's batched path (engine.edit_filter: one OpenCV box pass per plane over every row, whole-plane
arithmetic, the coefficients computed once per row) against the per-row numpy path it replaced, kept here as
the reference: on the shipped model's own edits (faces it draws, the attributes its manifest filters, every
filter setting it ships) and on random smooth images. Parity far inside the manifest's accuracy budget:
coefficients within 1e-3 (the 3x3 inverses of near-flat windows amplify float32 rounding), the change within
1e-4 (a 78th of a uint8 level), the uint8 crops within one level."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceedit.engine import Editor
from faceedit.engine.edit_filter import GuidedFilter
from faceedit.engine.tensors import to_tensor


# ---- the replaced path, as it was (per row, per plane) ------------------------------------------------
def _ref_box(planes, r):
    k, n, h, w = planes.shape
    size = (2 * r + 1, 2 * r + 1)
    flat = planes.reshape(k * n, h, w)
    count = cv2.boxFilter(np.ones((h, w), np.float32), -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
    out = np.empty_like(flat)
    for i in range(len(flat)):
        cv2.boxFilter(flat[i], -1, size, dst=out[i], normalize=False, borderType=cv2.BORDER_CONSTANT)
    out /= count
    return out.reshape(k, n, h, w)


def _ref_inverse(u):
    a, b, c, d, e, f = u
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    inv_det = 1 / (a * c00 + b * c01 + c * c02)
    return [[c00 * inv_det, c01 * inv_det, c02 * inv_det], [c01 * inv_det, c11 * inv_det, c12 * inv_det],
            [c02 * inv_det, c12 * inv_det, c22 * inv_det]]


def ref_coefficients(radius, eps, x, delta):
    g = list((np.asarray(x, np.float32).transpose(1, 0, 2, 3) + 1) * np.float32(0.5))
    p = list(np.asarray(delta, np.float32).transpose(1, 0, 2, 3))
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]
    m = _ref_box(np.stack(g + p + [g[i] * g[j] for i, j in pairs] + [g[i] * p[c] for c in range(3) for i in range(3)]),
                 radius)
    mean_i, mean_p = m[0:3], m[3:6]
    cov = [m[6 + k] - mean_i[i] * mean_i[j] + (eps if i == j else 0) for k, (i, j) in enumerate(pairs)]
    inv = _ref_inverse(cov)
    coef = []
    for c in range(3):
        cov_ip = [m[12 + 3 * c + j] - mean_i[j] * mean_p[c] for j in range(3)]
        coef += [sum(inv[i][j] * cov_ip[j] for j in range(3)) for i in range(3)]
    coef += [mean_p[c] - sum(coef[3 * c + i] * mean_i[i] for i in range(3)) for c in range(3)]
    return _ref_box(np.stack(coef), radius)


def ref_at_model_size(coef, x):
    g = (np.asarray(x, np.float32).transpose(1, 0, 2, 3) + 1) * np.float32(0.5)
    out = [coef[3 * c] * g[0] + coef[3 * c + 1] * g[1] + coef[3 * c + 2] * g[2] + coef[9 + c] for c in range(3)]
    return np.ascontiguousarray(np.stack(out, axis=1), np.float32)


# ---- parity -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    return Editor.load(backend="onnxruntime", precision="fp32", threads=1)


def _check(f: GuidedFilter, x, delta):
    new, old = f.coefficients(x, delta), ref_coefficients(f.radius, f.eps, x, delta)
    assert new.shape == old.shape
    assert np.abs(new - old).max() < 1e-3
    np.testing.assert_allclose(GuidedFilter.at_model_size(new, x), ref_at_model_size(old, x), atol=1e-4)
    return new, old


def test_the_shipped_models_filtered_edits_match_the_replaced_path(shipped):
    names = shipped.attribute_names
    filtered = [i for i, f in enumerate(shipped.attribute_filters) if f is not None]
    assert filtered, "the shipped manifest filters some attributes"
    faces = list(shipped.sample(9, seed=4))
    big = [cv2.resize(c, (150, 150), interpolation=cv2.INTER_CUBIC) for c in faces[:3]]
    crops = faces + big
    x = to_tensor(crops, shipped.size)
    seen = set()
    for k in filtered:
        f = shipped.attribute_filters[k]
        seen.add((f.radius, f.eps))
        out = shipped.edit_crops(crops, shipped.request({names[k]: 1}, auto_strength=False))
        new, old = _check(f, x, out.edited - out.reconstruction)
        # the editor's results: the model-size result and the crops (64 px and enlarged) as the old path gives them
        np.testing.assert_allclose(out.result, np.clip(x + ref_at_model_size(old, x), -1, 1), atol=1e-4)
        for i, crop in enumerate(crops):
            ref = np.clip(crop.astype(np.float32) + f.apply(old[:, i], crop) * np.float32(127.5) + 0.5, 0, 255).astype(np.uint8)
            assert np.abs(out.images[i].astype(int) - ref).max() <= 1
    assert len(seen) >= 2  # the shipped model's several settings (radius 1 and 2, eps 1e-3 and 1e-2)


@pytest.mark.parametrize("radius,eps,n", [(1, 1e-3, 1), (2, 1e-3, 5), (1, 1e-2, 32), (4, 1e-3, 3)])
def test_random_smooth_images_match_the_replaced_path(radius, eps, n):
    rng = np.random.default_rng(radius * 100 + n)
    small = rng.uniform(-1, 1, (n, 8, 8, 3)).astype(np.float32)
    x = np.stack([cv2.resize(s, (64, 64), interpolation=cv2.INTER_CUBIC).transpose(2, 0, 1) for s in small]).clip(-1, 1)
    delta = (rng.standard_normal((n, 3, 64, 64)) * 0.1).astype(np.float32)
    _check(GuidedFilter(radius, eps), x, delta)


def test_auto_strength_reuses_the_coefficients_it_judged_with(shipped):
    # an edit filtered and pushed: the result is the filter of the final rendering's change, row by row
    names = shipped.attribute_names
    k = next(i for i, f in enumerate(shipped.attribute_filters) if f is not None and shipped.model.edit_tops[i] > 1)
    faces = list(shipped.sample(12, seed=2))
    flips = shipped.attributes(np.stack(faces))[:, k] <= 0.5
    requests = [shipped.request({names[k]: float(v)}) for v in flips]
    out = shipped.edit_crops(faces, requests)
    f = shipped.attribute_filters[k]
    x = to_tensor(faces, shipped.size)
    ref = np.clip(x + ref_at_model_size(ref_coefficients(f.radius, f.eps, x, out.edited - out.reconstruction), x), -1, 1)
    np.testing.assert_allclose(out.result, ref, atol=1e-4)
    for i, face in enumerate(faces):  # each row as it would come alone
        np.testing.assert_array_equal(out.images[i], shipped.edit_crops([face], requests[i]).images[0])
