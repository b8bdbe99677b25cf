"""What an edit returns, one type per level: CropEdits (a batch of crops, from Editor.edit_crops), FaceEdit (one
face of a photo, as the CLI prints it and the HTTP API sends it) and PhotoEdit (one photo with its faces)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from faceedit.engine.imageio import Photo


@dataclass
class CropEdits:
    """One edit of N crops, row i for crop i: the images the user gets and what the model made of them."""
    images: list                # uint8 results at each crop's own size (after the caller's post-processing, if any)
    before: np.ndarray          # [N, A] attribute probabilities of the inputs
    edited: np.ndarray          # [N, 3, S, S] the decoder's output with the edit, at model size
    reconstruction: np.ndarray  # [N, 3, S, S] the decoder's output with the face's own attributes
    result: np.ndarray          # [N, 3, S, S] the model-size image the user gets: residual (+ filter), or edited when raw
    multipliers: np.ndarray     # [N, A] auto strength's multiplier on each gain (1: rendered once)
    implied: np.ndarray         # [N, A] bool: attributes an implied rule set where the face read otherwise
    after: np.ndarray | None = None  # [N, A] the attribute head on `images`, where a caller read it (photos, services)
    edit_mask: np.ndarray | None = None  # [N, S, S] float32 in [0, 1]: where the edit applies (a model with an
                                         # edit mask: `result` and `images` are the crop where it is 0), else None

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def empty(cls, attributes: int, size: int) -> "CropEdits":
        """No crops: the zero-row answer (a photo whose every face was too small to edit)."""
        a, x = np.zeros((0, attributes), np.float32), np.zeros((0, 3, size, size), np.float32)
        return cls([], a, x, x, x, a, a.astype(bool), a)

    def take(self, rows) -> "CropEdits":
        """The rows given (indices or a range), in that order."""
        rows = np.asarray(list(rows) if isinstance(rows, range) else rows, np.intp)
        pick = (lambda a: None if a is None else a[rows])
        return CropEdits([self.images[i] for i in rows], self.before[rows], self.edited[rows],
                         self.reconstruction[rows], self.result[rows], self.multipliers[rows], self.implied[rows],
                         pick(self.after), pick(self.edit_mask))

    def row(self, i: int) -> "CropEdits":
        """Row i alone, its arrays views of this batch's (a batcher hands each caller its row this way: no copy)."""
        one = slice(i, i + 1)
        return replace(self, **{f.name: [self.images[i]] if f.name == "images" else
                                None if getattr(self, f.name) is None else getattr(self, f.name)[one]
                                for f in fields(self)})

    @classmethod
    def concat(cls, parts: list) -> "CropEdits":
        """Rows of several CropEdits, one after the other (after, edit_mask: kept only where every part has it)."""
        if len(parts) == 1:
            return parts[0]
        cat = (lambda name: np.concatenate([getattr(p, name) for p in parts]))
        after = cat("after") if all(p.after is not None for p in parts) else None
        edit_mask = cat("edit_mask") if all(p.edit_mask is not None for p in parts) else None
        return cls([im for p in parts for im in p.images], cat("before"), cat("edited"), cat("reconstruction"),
                   cat("result"), cat("multipliers"), cat("implied"), after, edit_mask)

    def finished(self, images: list, after: np.ndarray) -> "CropEdits":
        """These edits with the images the user gets in the end (e.g. colour-matched) and the head's reading of them."""
        return replace(self, images=list(images), after=after)


@dataclass
class FaceEdit:
    """One face of a photo: where it is, how it was found, and (once edited or read) what the model read."""
    box: tuple                 # x, y, w, h of the face (or the crop box, for aligned inputs), photo pixels
    how: str                   # how it was found / framed
    index: int = 0             # its number among the faces found, left to right (what --face N counts)
    eyes: tuple | None = None  # eye centres ((x, y), (x, y)) in photo pixels; None for aligned inputs
    before: dict = field(default_factory=dict)   # attribute probabilities of the input face
    after: dict = field(default_factory=dict)    # attribute head on the edited face
    pushed: dict = field(default_factory=dict)   # auto strength: attribute -> multiplier on its gain, where > 1
    implied: dict = field(default_factory=dict)  # implied attributes the edit changed: attribute -> 0 or 1
    skipped: str = ""          # why this face was found but not edited (too small), else ""
    extra: dict = field(default_factory=dict)    # more for a front end, e.g. the service's reconstruction PNGs
    edit_mask: np.ndarray | None = None          # [S, S] float32 in [0, 1]: where the edit applied (a mask model)

    def read(self, names, edits: CropEdits, row: int) -> "FaceEdit":
        """Fill before/after/pushed/implied from row `row` of edits (after: where the edits have it)."""
        before = edits.before[row]
        self.before = dict(zip(names, map(float, before)))
        if edits.after is not None:
            self.after = dict(zip(names, map(float, edits.after[row])))
        self.pushed = {n: float(m) for n, m in zip(names, edits.multipliers[row]) if m > 1}
        if edits.edit_mask is not None:
            self.edit_mask = edits.edit_mask[row]
        # the value the rule set is the opposite of what the face read
        self.implied = {n: int(before[i] <= 0.5) for i, n in enumerate(names) if edits.implied[row][i]}
        return self


@dataclass
class PhotoEdit:
    photo: Photo               # the edited photo (rgb replaced; alpha, path and source format kept)
    faces: list                # [FaceEdit], the faces chosen, in order (skipped ones included)
