"""`faceedit eval --figure PATH`: per attribute, the median and the worst default edit by artifact ratio,
each beside its input, at the full crop of the data set's photo (the product's residual edit at the crop's own
size, shown enlarged without smoothing so stripes stay visible). Worst = farthest from 1 in log ratio."""
from __future__ import annotations

import cv2
import numpy as np

from faceedit.engine.imageio import write_photo
from faceedit.eval.adapter import render

TILE = 160          # pixels per shown crop
LABEL_W = 230       # the label column


def picks(ratios: np.ndarray) -> tuple[int, int]:
    """(median face, worst face) by artifact ratio."""
    order = np.argsort(ratios)
    return int(order[len(order) // 2]), int(np.argmax(np.abs(np.log(np.maximum(ratios, 1e-8)))))


def write_figure(path, model, data, keep: dict, attributes=None) -> None:
    from faceedit.eval.compare import dataset_crop
    from faceedit.train.data import load_celeba
    ds = load_celeba(data)
    names = list(attributes or keep["ratios"])
    a = len(model.attributes)
    rows = []
    for name in names:
        k = model.attributes.index(name)
        r = keep["ratios"][name]
        tiles = []
        for i in picks(r):
            crop = dataset_crop(ds, keep["index"][i])
            target, mask = np.zeros((1, a), np.float32), np.zeros((1, a), np.float32)
            target[0, k], mask[0, k] = keep["flip_to"][name][i], 1.0
            out = render(model.editor, [crop], target, mask, auto_strength=True).images[0]
            tiles += [(crop, "input"), (out, f"{'+' if target[0, k] > 0.5 else '-'}{name} r={r[i]:.2f}")]
        rows.append(_row(name, tiles))
    head = np.full((40, rows[0].shape[1], 3), 255, np.uint8)
    for c, text in enumerate(("median edit", "worst edit (artifact ratio)")):
        cv2.putText(head, text, (LABEL_W + c * 2 * TILE + 8, 27), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
    write_photo(path, np.concatenate([head, *rows]))


def _row(name, tiles) -> np.ndarray:
    row = np.full((TILE + 22, LABEL_W + TILE * len(tiles), 3), 255, np.uint8)
    cv2.putText(row, name, (6, TILE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    for c, (img, caption) in enumerate(tiles):
        x0 = LABEL_W + c * TILE
        row[:TILE, x0:x0 + TILE] = cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_NEAREST)
        cv2.putText(row, caption, (x0 + 3, TILE + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return row
