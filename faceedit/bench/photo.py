"""The end-to-end test photos: skimage's astronaut (NASA, public domain) upscaled to about 1 megapixel, and
within a 12-megapixel frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def astronaut_1mp(side: int = 1024) -> np.ndarray:
    """RGB uint8, side x side (1024: 1.05 MP). Needs scikit-image (extra `bench`)."""
    import cv2
    from skimage import data
    img = data.astronaut()
    if img.shape[:2] == (side, side):
        return img
    return cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC if side > img.shape[0] else cv2.INTER_AREA)


def astronaut_photo(width: int, height: int) -> np.ndarray:
    """A width x height photo (e.g. 4000x3000: 12 MP, a phone's) with the astronaut as its subject: her
    picture upscaled to the photo's shorter side, centred on a blurred, enlarged copy of itself that fills the
    frame (at 4000x3000 her face is about 600 px wide, as in a portrait)."""
    import cv2
    from skimage import data
    img = data.astronaut()
    back = cv2.GaussianBlur(cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR), (0, 0), 8)
    side = min(width, height)
    fg = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
    x0, y0 = (width - side) // 2, (height - side) // 2
    back[y0:y0 + side, x0:x0 + side] = fg
    return back


def write_photo(path, rgb: np.ndarray) -> Path:
    import cv2
    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
