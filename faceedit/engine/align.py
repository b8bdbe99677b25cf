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


def face_mask(side: int) -> np.ndarray:
    """side x side float32: 1 over the face and hair, falling smoothly to exactly 0 before the crop's edge."""
    sigma = 0.025 * side
    m = np.zeros((side, side), np.float32)
    cv2.ellipse(m, (round(side * 0.5), round(side * 0.5)), (round(side * 0.38), round(side * 0.42)), 0, 0, 360, 1.0, -1)
    m = cv2.GaussianBlur(m, (0, 0), sigma)
    m[m < 1e-3] = 0.0  # the Gaussian's far tail: make the outside exactly untouched
    return m


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
    touched = np.any(back != 0, axis=2)
    roi[touched] = np.clip(roi[touched].astype(np.float32) + back[touched] + 0.5, 0, 255).astype(np.uint8)
