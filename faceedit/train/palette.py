"""An edit that is not about colour draws with the colours the face already has (`--w-own-palette`).

Bald paints the scalp in the face's skin tone, a mustache in the shade of the brows and hair, glasses in dark or
neutral frames; none of them brings a hue the face does not have. The failures every run showed by eye are
exactly such hues: rainbow washes for bald, green or blue smears for a mustache, blue eye shadow for "less
male". The term measures, at every pixel, how far the edit's chroma (the two colour planes, brightness aside)
lies from the nearest shade of the input's own palette (the mean colours of its face centre in coarse cells,
each from full colour down to grey), and charges only what the edit adds over the reconstruction's own
distance, so backgrounds, blue eyes and coloured clothes that the reconstruction already has cost nothing.
Brightness is free (adding the same amount to R, G and B leaves the chroma as it is): darker, lighter and
greyer are all allowed. Edits that change a colour attribute (hair colours, pale skin, make-up:
augment.COLOUR_ATTRIBUTES) are exempt; their new colour is the point.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from faceedit.train.augment import luma

# The face centre on an aligned crop (fractions of height and width): skin, brows, eyes, lips; the hair at the
# top and the background at the sides stay out of the palette.
CENTRE_ROWS, CENTRE_COLS = (0.30, 0.85), (0.22, 0.78)
CELLS = 6          # the palette: CELLS x CELLS mean colours of the face centre
TOLERANCE = 0.03   # chroma distance (images in [-1, 1]) an edit may add for free: shading, not a new hue


def chroma(x: torch.Tensor) -> torch.Tensor:
    """The colour planes B - Y and R - Y of RGB images in [-1, 1], [N, 2, H, W] (brightness Y removed)."""
    x = x.float()
    y = luma(x)
    return torch.cat([x[:, 2:3] - y, x[:, 0:1] - y], 1)


def face_palette(x: torch.Tensor) -> torch.Tensor:
    """[N, CELLS^2, 2]: the mean chroma of each cell of the face centre."""
    h, w = x.shape[-2:]
    top, bottom = round(CENTRE_ROWS[0] * h), round(CENTRE_ROWS[1] * h)
    left, right = round(CENTRE_COLS[0] * w), round(CENTRE_COLS[1] * w)
    cells = F.adaptive_avg_pool2d(chroma(x[:, :, top:bottom, left:right]), CELLS)  # [N, 2, CELLS, CELLS]
    return cells.flatten(2).transpose(1, 2)


def palette_distance(x: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """[N, H, W]: each pixel's chroma distance to the nearest shade of its row's palette, where the shades of a
    palette colour p are t * p for t in [0, 1] (the same hue from full colour down to grey: a shadow, a dark
    brow, a grey frame)."""
    c = chroma(x).flatten(2).transpose(1, 2)                             # [N, P, 2]
    p = palette.float()                                                  # [N, K, 2]
    t = (c @ p.transpose(1, 2)) / p.pow(2).sum(-1).clamp_min(1e-8)[:, None, :]  # [N, P, K]: projection on each p
    nearest = t.clamp(0, 1)[..., None] * p[:, None, :, :]                # [N, P, K, 2]
    d = (c[:, :, None, :] - nearest).norm(dim=-1).amin(-1)               # [N, P]
    return d.reshape(len(x), *x.shape[-2:])


def own_palette_loss(x: torch.Tensor, x_rec: torch.Tensor, edits: torch.Tensor, exempt: torch.Tensor) -> torch.Tensor:
    """Mean over pixels and rows of the chroma distance from the input's palette that each edit adds beyond the
    reconstruction's, less TOLERANCE. x, x_rec [N, 3, H, W]; edits [k*N, 3, H, W] (k renderings of each face, as
    train.py stacks them); exempt [k*N] bool: rows that change a colour attribute, which pay nothing."""
    k = len(edits) // len(x)
    with torch.no_grad():
        palette = face_palette(x)
        baseline = palette_distance(x_rec, palette)
    excess = F.relu(palette_distance(edits, palette.repeat(k, 1, 1)) - baseline.repeat(k, 1, 1) - TOLERANCE)
    return (excess.mean((1, 2)) * (~exempt).float()).mean()
