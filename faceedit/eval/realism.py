"""Realism measures a classifier-fooling texture cannot pass.

- artifact ratio: high-frequency energy of the edited face over the input's. Energy = mean squared response
  of the 3x3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]], per RGB channel on [0, 1] images at model size
  (reflected borders), inside the head region HEAD_ELLIPSE (an ellipse centred in the crop, 80% of its
  width and 96% of its height: the face and hair, not the background corners). Stripes, checkerboards and
  colour noise raise it; blur and smearing lower it. An edit is realistic only with a ratio in ARTIFACT_BAND.
- two-sample test: a fresh small CNN learns to tell real faces from edited ones on some identities and is
  scored on the others (k-fold by identity, each face's real and edited image in the same fold); 50% means
  it cannot tell them apart. Needs torch (imported here only).
- KID: unbiased squared MMD with the polynomial kernel (x.y/d + 1)^3 between two sets of feature vectors."""
from __future__ import annotations

import time

import cv2
import numpy as np

ARTIFACT_BAND = (0.8, 1.15)
HEAD_ELLIPSE = {"center": (0.5, 0.5), "semi_axes": (0.40, 0.48)}  # fractions of the crop's width, height
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
ARTIFACT_DEFINITION = ("artifact ratio = high-frequency energy of the edited face / that of the input; energy = mean "
                       "squared 3x3 Laplacian response per RGB channel of the [0, 1] image at model size, inside an "
                       "ellipse centred in the crop (80% of its width, 96% of its height); stripes and colour noise "
                       "raise it, blur lowers it")


def head_mask(size: int) -> np.ndarray:
    (cx, cy), (ax, ay) = HEAD_ELLIPSE["center"], HEAD_ELLIPSE["semi_axes"]
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    return ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0


def hf_energy(images: np.ndarray) -> np.ndarray:
    """[N, 3, S, S] in [-1, 1] -> [N] high-frequency energy inside the head region."""
    mask = head_mask(images.shape[-1])
    out = np.empty(len(images), np.float64)
    for i, img in enumerate(images):
        u = (np.asarray(img, np.float32) + 1) / 2
        resp = [cv2.filter2D(ch, -1, LAPLACIAN, borderType=cv2.BORDER_REFLECT_101) for ch in u]
        out[i] = np.mean([(r[mask] ** 2).mean() for r in resp])
    return out


def artifact_ratio(edited: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """[N] high-frequency energy of each edited image over that of its input (1 = unchanged)."""
    return hf_energy(edited) / np.maximum(hf_energy(inputs), 1e-8)


def in_band(ratio: np.ndarray, band=ARTIFACT_BAND) -> np.ndarray:
    return (ratio >= band[0]) & (ratio <= band[1])


# ---- KID -------------------------------------------------------------------------------------------
def kid(a: np.ndarray, b: np.ndarray) -> float | None:
    """Unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al.'s KID) between feature sets [n, d] and
    [m, d]; None with fewer than 2 in either. Near 0 (it can be slightly negative) = the same distribution."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        return None
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1.0) ** 3
    kaa, kbb = k(a, a), k(b, b)
    return float((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
                 - 2 * k(a, b).mean())


# ---- the two-sample test -----------------------------------------------------------------------------
def identity_folds(groups: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number [N] for each face: whole identities go to one fold, identities shuffled then dealt."""
    ids = np.unique(groups)
    order = np.random.default_rng(seed).permutation(len(ids))
    fold_of = dict(zip(ids[order], np.arange(len(ids)) % folds))
    return np.array([fold_of[g] for g in groups])


def HighPass():
    """A module: image [N,3,H,W] -> [image, 4 x its 3x3 Laplacian per channel] (fixed, not learnt)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class _HighPass(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("k", torch.from_numpy(LAPLACIAN)[None, None].repeat(3, 1, 1, 1))

        def forward(self, x):
            return torch.cat([x, 4 * F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.k, groups=3)], 1)
    return _HighPass()


def two_sample_accuracy(real_u8: np.ndarray, edited_u8: np.ndarray, groups: np.ndarray, folds: int = 3,
                        epochs: int = 10, seed: int = 0, crop: int = 32) -> dict:
    """real_u8, edited_u8: [N, S, S, 3] uint8, row i of each from the same face; groups [N] identities.
    k-fold by identity: a fresh CNN trains on the real and edited images of the other folds' faces and
    classifies both images of each held-out face. It is fully convolutional with global pooling: it trains on
    random crop x crop windows (a quarter of the pixels at 64 px: cheaper, and artifacts show in any window)
    and classifies whole images. Returns held-out accuracy (0.5 = indistinguishable) and per-fold figures."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    fold = identity_folds(np.asarray(groups), folds, seed)
    x = torch.from_numpy(np.concatenate([real_u8, edited_u8])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    y = torch.cat([torch.zeros(len(real_u8)), torch.ones(len(edited_u8))])
    f = np.concatenate([fold, fold])
    size = x.shape[-1]
    crop = min(crop, size)
    hits, per_fold, t0 = np.zeros(len(y), bool), [], time.time()
    for k in range(folds):
        train, test = np.flatnonzero(f != k), np.flatnonzero(f == k)
        if not len(train) or not len(test):
            continue
        g = torch.Generator().manual_seed(seed * 100 + k)
        torch.manual_seed(seed * 100 + k)
        # small on purpose (seconds per fold on a CPU core), yet stripes, noise and blur are easy for it
        # the input carries the image and its fixed Laplacian (as image-forensics detectors do): pixel-level
        # artifacts are then as plain to the network as the face itself
        net = nn.Sequential(HighPass(), nn.Conv2d(6, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.LeakyReLU(0.2),
                            nn.Conv2d(32, 48, 3, 2, 1), nn.BatchNorm2d(48), nn.LeakyReLU(0.2),
                            nn.Conv2d(48, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        for _ in range(epochs):
            perm = train[torch.randperm(len(train), generator=g).numpy()]
            for s in range(0, len(perm), 32):
                j = perm[s:s + 32]
                oy, ox = torch.randint(0, size - crop + 1, (2,), generator=g).tolist()
                xb = x[j, :, oy:oy + crop, ox:ox + crop]
                if torch.rand(1, generator=g).item() < 0.5:  # flips and windows alike for both classes: no cue
                    xb = xb.flip(3)
                loss = F.binary_cross_entropy_with_logits(net(xb).squeeze(1), y[j])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(x[test[s:s + 256]]).squeeze(1) for s in range(0, len(test), 256)]) > 0
        hits[test] = (pred.float() == y[test]).numpy()
        per_fold.append(round(float(hits[test].mean()), 4))
    return {"accuracy": round(float(hits.mean()), 4), "per_fold": per_fold, "faces": int(len(real_u8)),
            "seconds": round(time.time() - t0, 1)}
