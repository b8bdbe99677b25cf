"""Image grids for sample sheets (rows x columns of equally sized images, optional column titles)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from faceedit.core.files import atomic_write_bytes


def to_uint8(images) -> np.ndarray:
    """Tensor or array in [-1, 1], (..., 3, H, W) -> uint8 (..., H, W, 3)."""
    a = images.detach().float().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    a = np.moveaxis(a, -3, -1)
    return np.clip((a + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def save_grid(images, path, titles=None, pad: int = 2):
    """images: (rows, cols, 3, H, W) in [-1, 1] or (rows, cols, H, W, 3) uint8. Written atomically."""
    a = images if (isinstance(images, np.ndarray) and images.dtype == np.uint8) else to_uint8(images)
    rows, cols, h, w, _ = a.shape
    top = 14 if titles else 0
    sheet = np.full((top + rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            y, x = top + pad + r * (h + pad), pad + c * (w + pad)
            sheet[y:y + h, x:x + w] = a[r, c]
    for c, t in enumerate(titles or []):
        cv2.putText(sheet, str(t), (pad + c * (w + pad), 11), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    atomic_write_bytes(path, buf.tobytes())
