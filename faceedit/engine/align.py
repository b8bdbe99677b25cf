"""Photo <-> model crop: a similarity transform that puts the detected eyes where the model's crop has them
(manifest crop.eyes), a feathered face mask, and pasting an edit back as a difference so every pixel the
mask does not reach stays exactly as it was."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_CROP_SIDE = 1024  # work at the face's own resolution, up to this


@dataclass
class Alignment:
    matrix: np.ndarray   # 2x3, photo -> crop
    side: int            # crop is side x side pixels
    box: tuple           # x0, y0, x1, y1: the crop's footprint in the photo (clipped), for the paste


def eye_transform(eyes, crop_eyes, side: int) -> np.ndarray:
    """The similarity (scale, rotation, shift) taking photo eyes (left, right) to crop_eyes * side."""
    (lx, ly), (rx, ry) = eyes
    (dlx, dly), (drx, dry) = [(fx * side, fy * side) for fx, fy in crop_eyes]
    src, dst = complex(rx - lx, ry - ly), complex(drx - dlx, dry - dly)
    if abs(src) < 1e-6:
        raise ValueError("the two eyes are at the same place")
    k = dst / src  # a + ib: scale * rotation
    a, b = k.real, k.imag
    tx, ty = dlx - (a * lx - b * ly), dly - (b * lx + a * ly)
    return np.array([[a, -b, tx], [b, a, ty]], np.float64)


def footprint(matrix: np.ndarray, side: int, shape) -> tuple:
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ inv.T
    h, w = shape[:2]
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def align(photo: np.ndarray, eyes, crop_eyes, model_size: int) -> tuple[np.ndarray, Alignment]:
    """Cut the face out at its own resolution (at least the model's size, at most MAX_CROP_SIDE)."""
    eye_px = float(np.hypot(eyes[1][0] - eyes[0][0], eyes[1][1] - eyes[0][1]))
    eye_frac = float(np.hypot(crop_eyes[1][0] - crop_eyes[0][0], crop_eyes[1][1] - crop_eyes[0][1]))
    side = int(np.clip(round(eye_px / eye_frac), model_size, MAX_CROP_SIDE))
    m = eye_transform(eyes, crop_eyes, side)
    crop = cv2.warpAffine(photo, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return crop, Alignment(m, side, footprint(m, side, photo.shape))


# Where BlazeFace's nose and mouth sit in the model's crop for a face looking straight on (median of 292
# real photos aligned on their eyes), and how far the mask may follow a face away from that
FRONTAL_NOSE_MOUTH = (0.49, 0.657)   # mean of nose and mouth, crop fractions
MIN_FEATHER_PX = 2.0                 # the mask's edge blur (sigma) is never sharper than this, in crop pixels
EDGE_RAMP = 0.04                     # the mask falls to 0 over this fraction of the crop at its border
MAX_SHIFT = 0.04                     # how far the ellipse may move (it shrinks as much: see face_mask)
MASK_DRAW_SIDE = 128                 # face_mask draws and blurs at most this wide, then enlarges


def face_mask(side: int, landmarks=None) -> np.ndarray:
    """side x side float32: 1 over the face and hair, falling smoothly to exactly 0 before the crop's edge.
    landmarks: the face's points in crop fractions (rows: eyes, nose, mouth, ...): the ellipse moves with a
    turned head's nose and mouth (the eyes are where the crop put them), within MAX_SHIFT."""
    sigma = max(0.025 * side, MIN_FEATHER_PX)
    dx = dy = 0.0
    if landmarks is not None and len(landmarks) >= 4:
        nx, ny = np.mean(np.asarray(landmarks, np.float64)[2:4], axis=0)
        dx = float(np.clip(nx - FRONTAL_NOSE_MOUTH[0], -MAX_SHIFT, MAX_SHIFT))
        dy = float(np.clip(ny - FRONTAL_NOSE_MOUTH[1], -MAX_SHIFT, MAX_SHIFT))
    # drawn (and blurred) at most MASK_DRAW_SIDE pixels wide, then enlarged: it is smooth at every scale, and
    # a big face crop's mask costs a fraction of drawing it at full size (docs/photo-path.md)
    n = min(side, MASK_DRAW_SIDE)
    k = n / side
    m = np.zeros((n, n), np.float32)
    # drawn with 4 fractional bits: the ellipse moves smoothly with the face, not in whole pixels
    # the ellipse's centre moves by the shift, its axes shrink by as much: no edge passes the frontal one's
    cx, cy = (((0.5 + d) * side + 0.5) * k - 0.5 for d in (dx, dy))  # crop -> drawing pixels (as resize maps)
    c = (round(cx * 16), round(cy * 16))
    # ... and stay 3 sigma inside the crop, where the blurred edge has faded out (small crops)
    room = side / 2 - 3 * sigma
    axes = (round(min(side * (0.38 - abs(dx)), room) * k * 16), round(min(side * (0.42 - abs(dy)), room) * k * 16))
    cv2.ellipse(m, c, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA, 4)
    m = cv2.GaussianBlur(m, (0, 0), sigma * k)
    # the blur's tail reaches the crop's top and bottom rows (2.6% at 64 px): ramp it to exactly 0 there, or
    # the pasted edit would stop in a step at the crop's border
    m *= box_mask(n, n, EDGE_RAMP)
    m[m < 1e-3] = 0.0  # the Gaussian's far tail: make the outside exactly untouched
    if n != side:  # the border rows stay exactly 0 (resize reads the edge row there)
        m = cv2.resize(m, (side, side), interpolation=cv2.INTER_LINEAR)
    return m


def to_crop(al: "Alignment", points) -> np.ndarray:
    """Photo points -> the crop's fractions (0..1 across the crop)."""
    p = np.asarray(points, np.float64)
    return (p @ al.matrix[:, :2].T + al.matrix[:, 2]) / al.side


def box_mask(h: int, w: int, feather: float = 0.06) -> np.ndarray:
    """A rectangle that ramps to exactly 0 at its border (for --aligned boxes inside a bigger image)."""
    ry = np.clip(np.minimum(np.arange(h), np.arange(h)[::-1]) / max(1.0, feather * h), 0, 1)
    rx = np.clip(np.minimum(np.arange(w), np.arange(w)[::-1]) / max(1.0, feather * w), 0, 1)
    return (ry[:, None] * rx[None, :]).astype(np.float32)


def match_colour(edited: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard transfer in Lab: the edited crop's colour mean/std over the face made the original's (for raw
    decoder output, whose colours drift; the residual edit needs none: the drift cancels)."""
    sel = mask > 0.5
    if sel.sum() < 16:
        return edited
    e = cv2.cvtColor(edited.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    o = cv2.cvtColor(original.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    em, es = e[sel].mean(0), e[sel].std(0) + 1e-6
    om, os_ = o[sel].mean(0), o[sel].std(0)
    out = cv2.cvtColor(((e - em) / es * os_ + om).astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def paste_difference(photo: np.ndarray, delta: np.ndarray, al: Alignment) -> None:
    """photo += inverse_warp(delta) in place, only inside the crop's footprint. delta is side x side x 3
    float32 (pixel units, already multiplied by the feathered mask, so exactly 0 outside the face)."""
    x0, y0, x1, y1 = al.box
    if x1 <= x0 or y1 <= y0:
        return
    m = al.matrix.copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)  # photo ROI coordinates -> crop coordinates
    back = cv2.warpAffine(delta, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    roi = photo[y0:y1, x0:x1]
    # saturating add with rounding: where back is exactly 0 the pixel comes back unchanged
    roi[:] = cv2.add(roi, back, dtype=cv2.CV_8U)
