"""Training batches as tensors, and the random changes that keep classifiers honest.

`jitter` moves every edit before the edit loss's classifiers see it (an edit counts only if it survives a
shift, a rescale and a mirror); `augment` adds light re-lighting for the classifiers that learn from real
faces (--cls-aug, and the guide); `soften` blurs and noises edits for the critics (--critic-soften);
`luminance` and `grey_some` serve --colourless-critics, `smooth_chroma` --critic-chroma-blur, and `chroma` (the
colour planes) those and palette.py. jitter, augment and grey_some draw from the CPU RNG, so a GPU run sees the
same draws.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(batch_u8: np.ndarray, flip: np.ndarray | None = None) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] (channels-last memory, which oneDNN convs prefer); rows where
    `flip` is true are mirrored."""
    if flip is not None and flip.any():
        batch_u8 = batch_u8.copy()
        batch_u8[flip] = batch_u8[flip, :, ::-1]
    x = torch.from_numpy(np.ascontiguousarray(batch_u8)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last)


def jitter(x: torch.Tensor) -> torch.Tensor:
    """Differentiable random per-sample shift (up to 4 px at 64x64), scale (+-8%) and horizontal flip."""
    b = x.shape[0]
    scale = 1 + 0.08 * (2 * torch.rand(b) - 1)
    mirror = torch.where(torch.rand(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * mirror, scale
    theta[:, :, 2] = 0.125 * (2 * torch.rand(b, 2) - 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, padding_mode="reflection", align_corners=False)


def augment(x: torch.Tensor) -> torch.Tensor:
    """Geometric jitter plus +-10% brightness and contrast, for the classifiers that guide edits: on 12k faces
    they otherwise memorise the training set, and an edit that satisfies a memorising classifier does not
    transfer to another one. Mild on colour, since hair colour and pale skin are attributes."""
    b = x.shape[0]
    gain = (1 + 0.1 * (2 * torch.rand(b, 1, 1, 1) - 1)).to(x.device)
    shift = (0.1 * (2 * torch.rand(b, 1, 1, 1) - 1)).to(x.device)
    return (jitter(x) * gain + shift).clamp(-1, 1).contiguous(memory_format=torch.channels_last)


def soften(x: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Differentiable random Gaussian blur (sigma uniform in 0..max_sigma px, per sample) plus mild noise, for
    the edit critics: a high-frequency pattern that fools a classifier does not survive it, so only edits
    that change the face at the scale a person sees satisfy them."""
    if max_sigma <= 0:
        return x
    b, c = x.shape[:2]
    sigma = (torch.rand(b, device=x.device) * max_sigma).clamp_min(1e-3)
    r = int(math.ceil(2 * max_sigma))
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)[:, None, None, :]  # [B*C, 1, 1, K]: one per sample
    h = blur_planes(x.float().reshape(1, b * c, *x.shape[2:]), k)
    return (h.reshape(x.shape) + 0.02 * torch.randn(x.shape, device=x.device)).clamp(-1, 1)


def blur_planes(h: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable blur of each plane of h [N, C, H, W] by its own 1-D kernel, k [C, 1, 1, K] (K odd), across then
    down, borders reflected."""
    r, groups = k.shape[-1] // 2, h.shape[1]
    h = F.conv2d(F.pad(h, (r, r, 0, 0), mode="reflect"), k, groups=groups)
    return F.conv2d(F.pad(h, (0, 0, r, r), mode="reflect"), k.transpose(2, 3), groups=groups)


# Attributes whose meaning is a colour: the only ones that --colourless-critics lets the edit critics judge in
# colour. Every other attribute (glasses, mustache, bald, age, sex, smile, ...) is a change of shape and shade.
COLOUR_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Pale_Skin", "Rosy_Cheeks",
                     "Heavy_Makeup", "Wearing_Lipstick")


def luminance(x: torch.Tensor) -> torch.Tensor:
    """The grey version of RGB images in [-1, 1] (Rec. 601 weights), still 3 channels so any RGB network reads
    it. Differentiable: a hue change that keeps the brightness has no gradient through it."""
    return luma(x).expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)


def luma(x: torch.Tensor) -> torch.Tensor:
    """Brightness Y of RGB images [N, 3, H, W] (Rec. 601 weights), one plane [N, 1, H, W]."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def chroma(x: torch.Tensor) -> torch.Tensor:
    """The colour planes B - Y and R - Y (Cb, Cr unscaled) of RGB images [N, 3, H, W], [N, 2, H, W]."""
    y = luma(x)
    return torch.cat([x[:, 2:3] - y, x[:, 0:1] - y], 1)


def smooth_chroma(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """RGB images in [-1, 1] with their brightness kept and their colour (the two chroma planes B - Y and R - Y)
    blurred with a Gaussian of `sigma` px: a critic shown this view reads hair colour and pale skin, which are
    colour over an area, but nothing of a fine pattern of colour (the streaks and checks that fooled it)."""
    if sigma <= 0:
        return x
    x = x.float()
    y = luma(x)
    r = int(math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum())[None, None, None, :].repeat(2, 1, 1, 1)           # [2, 1, 1, K], one per chroma plane
    blurred = blur_planes(chroma(x), k)
    cb, cr = blurred[:, 0:1], blurred[:, 1:2]
    red, blue = y + cr, y + cb
    green = (y - 0.299 * red - 0.114 * blue) / 0.587
    return torch.cat([red, green, blue], 1).contiguous(memory_format=torch.channels_last)


def grey_some(x: torch.Tensor, share: float) -> torch.Tensor:
    """`share` of the rows (a CPU draw) turned grey: the classifiers that learn from real faces then also know
    grey faces, which --colourless-critics shows them."""
    grey = (torch.rand(x.shape[0]) < share).to(x.device)[:, None, None, None]
    return torch.where(grey, luminance(x), x).contiguous(memory_format=torch.channels_last)


def draw_translate_cutout(b: int, size: int, translate: float = 0.125, cutout: float = 0.5) -> dict:
    """Random parameters of `translate_cutout` for b images of size x size (CPU RNG, so every device draws
    the same). Drawn apart from the images so one draw can move a real face and its reconstruction alike."""
    shift = torch.randint(-int(size * translate), int(size * translate) + 1, (b, 2))
    side = int(size * cutout)
    corner = torch.randint(0, size + 1 - side, (b, 2)) if side else torch.zeros(b, 2, dtype=torch.long)
    return {"shift": shift, "corner": corner, "side": side}


def translate_cutout(x: torch.Tensor, params: dict | None = None) -> torch.Tensor:
    """DiffAugment's translation and cutout (Zhao et al. 2020), differentiable: each image moves by whole
    pixels (the uncovered border is 0) and loses one square. Applied to everything the discriminator judges,
    real and generated alike, it stops D from memorising a small training set without leaking into what G
    draws. No colour transforms: colour is what hair and skin edits change."""
    b, _, h, w = x.shape
    p = params or draw_translate_cutout(b, h)
    dy, dx = p["shift"][:, 0], p["shift"][:, 1]
    # whole-pixel shifts by index gathering: exact, and the gradient flows to the pixels kept
    rows = (torch.arange(h)[None, :] - dy[:, None])                       # (b, h): source row of each row
    cols = (torch.arange(w)[None, :] - dx[:, None])
    keep = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]   # (b, h, w)
    rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    s = p["side"]
    if s:
        cy, cx = p["corner"][:, 0], p["corner"][:, 1]
        ar_h, ar_w = torch.arange(h)[None, :], torch.arange(w)[None, :]
        in_y = (ar_h >= cy[:, None]) & (ar_h < cy[:, None] + s)
        in_x = (ar_w >= cx[:, None]) & (ar_w < cx[:, None] + s)
        keep = keep & ~(in_y[:, :, None] & in_x[:, None, :])
    dev = x.device
    batch = torch.arange(b)[:, None, None]
    out = x[batch.to(dev), :, rows.to(dev)[:, :, None], cols.to(dev)[:, None, :]]  # (b, h, w, c)
    out = out.permute(0, 3, 1, 2) * keep.to(dev, x.dtype)[:, None]
    return out.contiguous(memory_format=torch.channels_last)
