"""Reconstruction quality: PSNR and SSIM of images in [-1, 1] (NCHW float)."""
from __future__ import annotations

import cv2
import numpy as np


def psnr(a, b):
    """Per-image PSNR in dB of images in [-1, 1]."""
    mse = (((a - b) / 2) ** 2).reshape(len(a), -1).mean(1)
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def ssim(a, b):
    """Per-image SSIM (Gaussian window 11, sigma 1.5, on [0, 1] images, averaged over channels)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = []
    for x, y in zip((a + 1) / 2, (b + 1) / 2):
        vals = []
        for ch in range(x.shape[0]):
            u, v = x[ch].astype(np.float64), y[ch].astype(np.float64)
            blur = lambda t: cv2.GaussianBlur(t, (11, 11), 1.5)
            mu_u, mu_v = blur(u), blur(v)
            su, sv, suv = blur(u * u) - mu_u ** 2, blur(v * v) - mu_v ** 2, blur(u * v) - mu_u * mu_v
            m = ((2 * mu_u * mu_v + c1) * (2 * suv + c2)) / ((mu_u ** 2 + mu_v ** 2 + c1) * (su + sv + c2))
            vals.append(m.mean())
        out.append(np.mean(vals))
    return np.array(out)
