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
augment.COLOUR_ATTRIBUTES) are exempt, since their new colour is the point; with `--colour-palettes` they pay
too, against the face's palette plus the colours real training faces with that attribute have in its region
(reference_palettes: blond hair's yellows, black hair's near-greys), so a blue eye shadow for blond or a green
streak for black hair costs while the hair colour itself does not.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from faceedit.train import augment

# The face centre on an aligned crop (fractions of height and width): skin, brows, eyes, lips; the hair at the
# top and the background at the sides stay out of the palette.
CENTRE_ROWS, CENTRE_COLS = (0.30, 0.85), (0.22, 0.78)
CELLS = 6          # the palette: CELLS x CELLS mean colours of the face centre
PALETTE_PER = 8    # --colour-palettes: reference colours per colour attribute
MIN_SHARE = 0.05   # reference_palettes: the least share of a region's pixels a reference colour stands for
TOLERANCE = 0.03   # chroma distance (images in [-1, 1]) an edit may add for free: shading, not a new hue


def face_palette(x: torch.Tensor) -> torch.Tensor:
    """[N, CELLS^2, 2]: the mean chroma of each cell of the face centre."""
    h, w = x.shape[-2:]
    top, bottom = round(CENTRE_ROWS[0] * h), round(CENTRE_ROWS[1] * h)
    left, right = round(CENTRE_COLS[0] * w), round(CENTRE_COLS[1] * w)
    centre = augment.chroma(x[:, :, top:bottom, left:right].float())
    cells = F.adaptive_avg_pool2d(centre, CELLS)                         # [N, 2, CELLS, CELLS]
    return cells.flatten(2).transpose(1, 2)


def palette_distance(x: torch.Tensor, palette: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """[N, H, W]: each pixel's chroma distance to the nearest shade of its row's palette [N, K, 2], where the
    shades of a palette colour p are t * p for t in [0, 1] (the same hue from full colour down to grey: a shadow,
    a dark brow, a grey frame). keep [N, K] bool: which palette colours count for each row (all if None)."""
    c = augment.chroma(x.float()).flatten(2).transpose(1, 2)             # [N, P, 2]
    p = palette.float()                                                  # [N, K, 2]
    nearest = nearest_colour(c.detach(), p, keep)                        # [N, P]
    # The gradient of a minimum flows only through the colour that attains it, so only that colour's
    # distance is built with autograd: the same value and gradient as the minimum over all K (ties aside).
    p_near = torch.gather(p, 1, nearest[..., None].expand(-1, -1, 2))    # [N, P, 2]
    d2 = shade_distance2(c.pow(2).sum(-1), (c * p_near).sum(-1), p_near.pow(2).sum(-1))
    return (d2 + 1e-12).sqrt().reshape(len(x), *x.shape[-2:])


def nearest_colour(c: torch.Tensor, p: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """[N, P] index of the palette colour p [N, K, 2] whose nearest shade is nearest each chroma c [N, P, 2].
    One face at a time, without autograd: the [N, P, K] search (20M entries for 64 faces against ~80 colours)
    took most of a training step's time with --colour-palettes when done at once inside the graph."""
    out = torch.empty(c.shape[:2], dtype=torch.long, device=c.device)
    with torch.no_grad():
        c2, norm2 = c.pow(2).sum(-1, keepdim=True), p.pow(2).sum(-1).unsqueeze(-2)
        for i in range(len(c)):
            d2 = shade_distance2(c2[i], c[i] @ p[i].T, norm2[i])         # [P, K]
            if keep is not None:
                d2.masked_fill_(~keep[i], float("inf"))
            out[i] = d2.argmin(-1)
    return out


def shade_distance2(c2: torch.Tensor, dot: torch.Tensor, norm2: torch.Tensor) -> torch.Tensor:
    """|c - t p|^2 for the nearest shade t * p (t in [0, 1]) of colour p, from |c|^2, c.p and |p|^2
    (broadcasting), so no [..., 2] difference is built."""
    t = (dot / norm2.clamp_min(1e-8)).clamp(0, 1)                        # the nearest shade's share of p
    return (c2 - 2 * t * dot + t.pow(2) * norm2).clamp_min(0)


def reference_palettes(images, labels, columns: list[int], regions, per: int = PALETTE_PER, faces: int = 2000,
                       seed: int = 0, among=None):
    """[len(columns), per, 2] float32 (numpy): for each attribute column, `per` chroma colours (k-means centres,
    each standing for at least MIN_SHARE of the pixels) of the pixels in its region (regions[column] > 0.5) of
    up to `faces` training faces that have it: the colours real black, blond or brown hair and pale skin have
    (`--colour-palettes`). images (N, S, S, 3) uint8, labels (N, A) in {0, 1}, regions (A, S, S) from
    regions.attribute_regions; among: the indices faces are drawn from (all if None), so a caller need not copy
    its training split's images."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(columns), per, 2), np.float32)
    pool = np.arange(len(labels)) if among is None else np.asarray(among)
    for i, col in enumerate(columns):
        have = pool[labels[pool, col] > 0.5]
        if len(have) == 0:
            continue  # no training face has it: grey only
        pick = np.sort(rng.choice(have, min(faces, len(have)), replace=False))
        x = torch.from_numpy(np.asarray(images[pick], np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
        pts = augment.chroma(x).permute(0, 2, 3, 1).numpy()[:, regions[col] > 0.5].reshape(-1, 2)
        pts = pts[rng.choice(len(pts), min(len(pts), 200_000), replace=False)]
        centres = pts[rng.choice(len(pts), per, replace=False)]
        for _ in range(20):  # Lloyd's k-means
            nearest = ((pts[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
            centres = np.stack([pts[nearest == j].mean(0) if (nearest == j).any() else centres[j] for j in range(per)])
        # a cluster of few pixels is a tail (the blue sky behind some hair), not a colour of the attribute: it
        # becomes a copy of the largest cluster
        share = np.bincount(nearest, minlength=per) / len(pts)
        centres[share < MIN_SHARE] = centres[share.argmax()]
        out[i] = centres
    return out


def reference_keep(targets: torch.Tensor, sources: torch.Tensor, columns: list[int], per: int) -> torch.Tensor:
    """[R, len(columns) * per] bool: which reference colours an edit may use. An edit that turns colour
    attributes on uses theirs; one that only turns them off (blond to not blond) may use any of them (the
    colour it turns to is not named); one that changes no colour attribute uses none."""
    on = (targets[:, columns] > 0.5) & (sources[:, columns] < 0.5)       # [R, C]
    off = (targets[:, columns] < 0.5) & (sources[:, columns] > 0.5)
    only_off = off.any(1) & ~on.any(1)
    return (on | only_off[:, None]).repeat_interleave(per, 1)


def own_palette_loss(x: torch.Tensor, x_rec: torch.Tensor, edits: torch.Tensor, exempt: torch.Tensor | None = None,
                     references: torch.Tensor | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over pixels and rows of the chroma distance from the input's palette that each edit adds beyond the
    reconstruction's, less TOLERANCE. x, x_rec [N, 3, H, W]; edits [k*N, 3, H, W] (k renderings of each face
    with the same targets, as train.py stacks them); exempt [k*N] bool: rows that pay nothing (None: none).
    references [M, 2] with keep [k*N, M] (`--colour-palettes`): colours each row's palette also holds where keep
    is true (reference_palettes); the same targets give every rendering of a face the same keep row."""
    if (references is None) != (keep is None):
        raise ValueError("own_palette_loss: references and keep go together (give both or neither)")
    n, k = len(x), len(edits) // len(x)
    with torch.no_grad():
        palette = face_palette(x)                                        # [N, K, 2]
        rows = None
        if references is not None:
            palette = torch.cat([palette, references[None].to(palette).expand(n, -1, -1)], 1)
            own = torch.ones(n, palette.shape[1] - len(references), dtype=torch.bool, device=keep.device)
            rows = torch.cat([own, keep[:n]], 1)
        baseline = palette_distance(x_rec, palette, rows)              # once per face, not per rendering
        palette = palette.repeat(k, 1, 1)
        rows = None if rows is None else rows.repeat(k, 1)
    excess = F.relu(palette_distance(edits, palette, rows) - baseline.repeat(k, 1, 1) - TOLERANCE)
    per_row = excess.mean((1, 2))
    return (per_row if exempt is None else per_row * (~exempt).float()).mean()
