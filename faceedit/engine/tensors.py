"""uint8 RGB images <-> the model's float tensors (NCHW, [-1, 1]), and the residual edit at full size."""
from __future__ import annotations

import cv2
import numpy as np

from faceedit.engine.errors import EngineError


def as_rgb(img, what: str = "image") -> np.ndarray:
    """An HxWx3 uint8 RGB view of img (greyscale and RGBA accepted; no copy when it already is one)."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise EngineError(f"{what} must be uint8 (got {a.dtype}); scale 16-bit or float images to 0..255 first")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 1:
        raise EngineError(f"{what} must be an HxWx3 RGB array (got shape {a.shape})")
    return a


def split_batch(images) -> tuple[list[np.ndarray], str]:
    """One image, a list of images, or an NxHxWx3 array -> (list of HxWx3, form) so results keep the form."""
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return [as_rgb(im, f"image {i}") for i, im in enumerate(images)], "array"
        return [as_rgb(images)], "single"
    if isinstance(images, (list, tuple)):
        return [as_rgb(im, f"image {i}") for i, im in enumerate(images)], "list"
    return [as_rgb(images)], "single"


def join_batch(items: list, form: str):
    if form == "single":
        return items[0]
    if form == "array":
        try:
            return np.stack(items)
        except ValueError:  # different sizes cannot stack: give the list
            return items
    return list(items)


def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    shrinking = img.shape[1] > w or img.shape[0] > h
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def to_tensor(crops: list[np.ndarray], size: int, out: np.ndarray | None = None) -> np.ndarray:
    """[N,3,S,S] float32 in [-1, 1], written straight into one preallocated array (no per-image tensors)."""
    x = out if out is not None else np.empty((len(crops), 3, size, size), np.float32)
    if len(crops) > 1 and all(c.shape == (size, size, 3) for c in crops):  # the batcher's rows: one array operation
        np.multiply(np.stack(crops).transpose(0, 3, 1, 2), np.float32(1 / 127.5), out=x, casting="unsafe")
    else:
        for i, c in enumerate(crops):
            small = resize(c, size, size)
            np.multiply(small.transpose(2, 0, 1), np.float32(1 / 127.5), out=x[i], casting="unsafe")
    x -= np.float32(1.0)
    return x


def to_uint8(t: np.ndarray) -> np.ndarray:
    """[3,S,S] in [-1, 1] -> SxSx3 uint8."""
    return np.clip((t.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def delta_at(delta: np.ndarray, w: int, h: int) -> np.ndarray:
    """A [3,S,S] difference in model units -> HxWx3 float32 in pixel units, upsampled to the crop's size."""
    d = np.ascontiguousarray(delta.transpose(1, 2, 0)) * np.float32(127.5)
    if d.shape[1] != w or d.shape[0] != h:
        d = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)
    return d


def mask_at(mask: np.ndarray, w: int, h: int) -> np.ndarray:
    """A model's edit mask [S,S] in [0, 1] -> HxW float32 at the crop's size (0 stays 0 away from its edge)."""
    m = np.ascontiguousarray(mask, np.float32)
    if m.shape[1] != w or m.shape[0] != h:
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return m


def apply_delta(crop: np.ndarray, delta_px: np.ndarray) -> np.ndarray:
    return np.clip(crop.astype(np.float32) + delta_px + 0.5, 0, 255).astype(np.uint8)
