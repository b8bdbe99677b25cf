"""The end-to-end test photo: skimage's astronaut (NASA, public domain) upscaled to about 1 megapixel."""
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


def write_photo(path, rgb: np.ndarray) -> Path:
    import cv2
    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
