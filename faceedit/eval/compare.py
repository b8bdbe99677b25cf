"""`faceedit compare`: the same faces edited by several models, side by side, to look at before choosing one.

eval's figure shows each model's median and worst edit, but two models' median faces are different people,
so a reader compares a blot on one face with a smear on another. This sheet holds the faces still: for each
face of the split, one row per model, one column per attribute, each attribute set to the opposite of what the
first model reads (the same request for every model), rendered as the product's default edit (auto strength,
implied attributes and edit filter where the model has them) at the crop's own size."""
from __future__ import annotations

import cv2
import numpy as np

from faceedit.engine.imageio import write_photo
from faceedit.eval.adapter import render

LABEL_W = 150       # the model-name column
HEAD_H = 18         # the attribute-name row


def dataset_crop(ds, index: int) -> np.ndarray:
    """Face `index` of a CelebA-layout data set as the model's crop of it, at the photo's own resolution (what
    eval's figure shows too: the editor resizes it, the residual edit keeps the photo's detail)."""
    from faceedit.train.data import CROP_FRACTION, IMAGE_DIR, crop_face, decode
    img = decode(ds.root / IMAGE_DIR / ds.names[index])
    return crop_face(img, int(round(CROP_FRACTION * img.shape[1])))


def flip_requests(readings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, mask) [A, A] for one face: row k sets attribute k to the opposite of reading k (the engine reads
    p > 0.5 as having it), every other attribute left to the model."""
    a = len(readings)
    values = np.diag((np.asarray(readings) <= 0.5).astype(np.float32))
    return values, np.eye(a, dtype=np.float32)


def edit_rows(models, crop: np.ndarray) -> list[np.ndarray]:
    """Per model, the crop edited once per attribute, each flipped from the first model's reading: [A, H, W, 3]
    uint8 per model."""
    first = models[0]
    readings = render(first.editor, [crop], np.zeros((1, len(first.attributes)), np.float32),
                      np.zeros((1, len(first.attributes)), np.float32)).probs[0]
    values, mask = flip_requests(readings)
    crops = [crop] * len(values)
    return [np.asarray(render(m.editor, crops, values, mask, auto_strength=True).images) for m in models]


def write_sheet(path, models, labels, data, split: str, start: int, count: int, tile: int = 96) -> int:
    """Write the sheet (PNG) of faces start .. start+count-1 of `split`; returns how many faces it holds.
    models: eval subjects (faceedit.eval.subject.open_model) with the same attributes; labels: their names."""
    from faceedit.train.data import load_celeba
    names = list(models[0].attributes)
    for m, label in zip(models[1:], labels[1:]):
        if list(m.attributes) != names:
            raise ValueError(f"{label} edits other attributes than {labels[0]}: a sheet compares the same edits")
    ds = load_celeba(data)
    idx = ds.split_indices(split)[start:start + count]
    if len(idx) == 0:
        raise ValueError(f"the {split} split has no faces from {start} on ({len(ds.split_indices(split))} in all)")
    width = LABEL_W + tile * (len(names) + 1)
    blocks = [_header(names, width, tile)]
    for n, i in enumerate(idx):
        caption = np.full((14, width, 3), 255, np.uint8)
        cv2.putText(caption, f"{split} face {start + n}: {ds.names[int(i)]}", (4, 11), cv2.FONT_HERSHEY_PLAIN, 0.8,
                    (90, 90, 90), 1)
        blocks.append(caption)
        crop = dataset_crop(ds, int(i))
        for label, images in zip(labels, edit_rows(models, crop)):
            row = np.full((tile, width, 3), 255, np.uint8)
            for k, part in enumerate(_label_lines(label)):
                cv2.putText(row, part, (4, tile // 2 - 4 + 14 * k), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1)
            for c, img in enumerate([crop, *images]):
                row[:, LABEL_W + c * tile:LABEL_W + (c + 1) * tile] = _fit(img, tile)
            blocks.append(row)
    write_photo(path, np.concatenate(blocks))
    return len(idx)


def _label_lines(label: str, width: int = 17) -> list[str]:
    """A model's label in at most two lines that fit the label column: split at its last "/", each part
    keeping its end (the part that tells runs apart)."""
    head, _, tail = label.rpartition("/")
    return [p if len(p) <= width else ".." + p[-(width - 2):] for p in ([head + "/", tail] if head else [tail])]


def _fit(img: np.ndarray, tile: int) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(img[..., :3]), (tile, tile), interpolation=cv2.INTER_AREA)


def _header(names, width: int, tile: int) -> np.ndarray:
    head = np.full((HEAD_H, width, 3), 255, np.uint8)
    for c, name in enumerate(["input", *names]):
        cv2.putText(head, name[:tile // 7], (LABEL_W + c * tile + 2, 13), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
    return head
