"""Where each attribute lives on an aligned face, learned from the training labels alone (`--w-mask-outside`).

CelebA's crops are aligned, so an attribute changes the same pixels on most faces: glasses the eyes, a mustache
the upper lip, bald the top of the head. Fit every pixel's colour as a linear function of all the attributes at
once (least squares over the train split, with an intercept); an attribute's coefficient at a pixel is how much
that attribute moves that pixel's colour with the others held fixed, so correlated attributes (Mustache and Male,
Bald and Male) get their own regions rather than each other's. The region map is the coefficient's length over
RGB, blurred for a margin and scaled so its 98th percentile is 1, clipped to [0, 1].

No network and no licence beyond the labels: the teacher the edit mask gets is the data's own statistics. The
mask pays extra for every pixel it opens outside the region of the attributes its edit changes (train.py).
"""
from __future__ import annotations

import numpy as np

CHUNK = 4096  # faces per pass: a (4096, 64*64*3) float32 block is 200 MB


def attribute_regions(images: np.ndarray, labels: np.ndarray, blur: int = 5) -> np.ndarray:
    """(A, S, S) float32 maps in [0, 1] from (N, S, S, 3) uint8 faces and their (N, A) labels in {0, 1}."""
    n, s = len(images), images.shape[1]
    design = np.concatenate([labels.astype(np.float64), np.ones((n, 1))], axis=1)  # (N, A + 1)
    gram = design.T @ design
    cross = np.zeros((design.shape[1], s * s * 3))
    for i in range(0, n, CHUNK):
        block = np.asarray(images[i:i + CHUNK], dtype=np.float32).reshape(-1, s * s * 3) / 127.5 - 1
        cross += design[i:i + CHUNK].T @ block
    # a small ridge keeps an attribute no training face has (or every face has) from making the fit singular
    coef = np.linalg.solve(gram + 1e-3 * np.eye(len(gram)), cross)[:-1]  # (A, S*S*3), intercept dropped
    strength = np.sqrt((coef.reshape(-1, s, s, 3) ** 2).sum(-1))  # (A, S, S)
    maps = np.stack([_box_blur(m, blur) for m in strength])
    scale = np.percentile(maps.reshape(len(maps), -1), 98, axis=1).reshape(-1, 1, 1)
    return np.clip(maps / np.maximum(scale, 1e-8), 0, 1).astype(np.float32)


def _box_blur(image: np.ndarray, k: int) -> np.ndarray:
    """Mean over a k x k window (edges padded by replication): the regions get a margin of k // 2 pixels."""
    if k <= 1:
        return image
    padded = np.pad(image, k // 2, mode="edge")
    sums = np.cumsum(np.cumsum(np.pad(padded, ((1, 0), (1, 0))), 0), 1)
    h, w = image.shape
    return (sums[k:k + h, k:k + w] - sums[:h, k:k + w] - sums[k:k + h, :w] + sums[:h, :w]) / (k * k)


def edit_regions(regions, y, y_edit):
    """(B, 1, S, S): per edit, the union (maximum) of the regions of the attributes it changes; a torch tensor on
    regions' device. An edit that changes nothing gets an empty region (every pixel it opens is outside)."""
    changed = (y_edit - y).abs() > 0.5  # (B, A)
    per_edit = changed[:, :, None, None].to(regions.dtype) * regions[None]  # (B, A, S, S)
    return per_edit.amax(dim=1, keepdim=True)
