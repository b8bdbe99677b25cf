"""The edit's change, filtered by the face it is added to (a guided filter, He, Sun and Tang 2010/2013).

A residual edit adds the decoder's change (edited - reconstruction) to the input crop. Where the decoder draws
a big change (hair colour, a bald head, age) that change also carries its own stripes and colour noise. The
guided filter rewrites the change, in every small window, as a linear function of the input's colours: it
keeps the change's colour and extent and the input's own edges, and drops texture the input does not have.

The coefficients are computed at the model's size (cheap) and applied at each crop's own size with the crop as
the guide (the "fast guided filter", He and Sun 2015), so a large photo gets a change that follows its own
hair and skin edges instead of an upsampled 64-px one. numpy only; the engine's one place for this maths.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


@dataclass(frozen=True)
class GuidedFilter:
    radius: int      # window half-size, in pixels at model size
    eps: float       # regulariser on the guide's variance (guide in [0, 1]); larger is smoother

    def __post_init__(self):
        if self.radius < 1 or not self.eps > 0:
            raise ValueError(f"a guided filter needs radius >= 1 and eps > 0 (got {self.radius}, {self.eps})")

    @classmethod
    def parse(cls, spec: str) -> "GuidedFilter":
        """A command line's "RADIUS,EPS" (e.g. "2,0.001")."""
        try:
            r, e = spec.split(",")
            return cls(int(r), float(e))
        except ValueError:
            raise ValueError(f"edit filter must be RADIUS,EPS (e.g. 2,0.001) or off, got '{spec}'") from None

    def to_dict(self) -> dict:
        return {"radius": self.radius, "eps": self.eps}

    def coefficients(self, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """x, delta [N,3,S,S] (x in [-1, 1]) -> coefficients [12,N,S,S]: the change in channel c is
        sum_i coef[3c + i] * guide_i + coef[9 + c], guide = the input in [0, 1]. Every row at once: each plane
        is one OpenCV box pass over all rows, and the arithmetic is whole planes, whatever the batch size."""
        n, _, h, w = np.shape(x)
        r = self.radius
        # the 21 planes the filter needs, I, p, I_i I_j (6 unique), I_i p_c (9), made straight into the box
        # pass's buffer
        buf, m = _box_buffer(21, n, h, w, r)
        np.add(np.asarray(x, np.float32).transpose(1, 0, 2, 3), np.float32(1), out=m[0:3])
        m[0:3] *= np.float32(0.5)
        g = m[0:3]
        m[3:6] = np.asarray(delta, np.float32).transpose(1, 0, 2, 3)
        for k, (i, j) in enumerate(_PAIRS):
            np.multiply(g[i], g[j], out=m[6 + k])
        for c in range(3):
            np.multiply(g, m[3 + c], out=m[12 + 3 * c:15 + 3 * c])
        _box_mean(buf, r)
        mean_i, mean_p = m[0:3], m[3:6]
        cov = [m[6 + k] - mean_i[i] * mean_i[j] for k, (i, j) in enumerate(_PAIRS)]
        for k in (0, 3, 5):
            cov[k] += np.float32(self.eps)
        inv = _inverse_sym3(cov)
        buf, coef = _box_buffer(12, n, h, w, r)
        for c in range(3):
            cov_ip = m[12 + 3 * c:15 + 3 * c] - mean_i * mean_p[c]          # [3(j), N, S, S]
            for i in range(3):
                a = coef[3 * c + i]
                np.multiply(inv[i][0], cov_ip[0], out=a)
                a += inv[i][1] * cov_ip[1]
                a += inv[i][2] * cov_ip[2]
            np.subtract(mean_p[c], coef[3 * c] * mean_i[0], out=coef[9 + c])
            coef[9 + c] -= coef[3 * c + 1] * mean_i[1]
            coef[9 + c] -= coef[3 * c + 2] * mean_i[2]
        _box_mean(buf, r)  # each pixel lies in many windows: average their models
        return coef

    def apply(self, coef: np.ndarray, guide_rgb: np.ndarray) -> np.ndarray:
        """One crop's coefficients [12,S,S] and the crop (HxWx3 uint8) -> its change, HxWx3 in model units."""
        h, w = guide_rgb.shape[:2]
        planes = np.ascontiguousarray(coef.transpose(1, 2, 0))
        if planes.shape[:2] != (h, w):
            planes = cv2.resize(planes, (w, h), interpolation=cv2.INTER_LINEAR)
        g = guide_rgb.astype(np.float32) * np.float32(1 / 255)
        out = np.empty((h, w, 3), np.float32)
        for c in range(3):
            out[..., c] = (planes[..., 3 * c] * g[..., 0] + planes[..., 3 * c + 1] * g[..., 1]
                           + planes[..., 3 * c + 2] * g[..., 2] + planes[..., 9 + c])
        return out

    def filter(self, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The filtered change at model size, [N,3,S,S] (the guide: x itself)."""
        return self.at_model_size(self.coefficients(x, delta), x)

    @staticmethod
    def at_model_size(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Coefficients [12,N,S,S] applied with x [N,3,S,S] as the guide -> the change, [N,3,S,S]."""
        g = (np.asarray(x, np.float32).transpose(1, 0, 2, 3) + 1) * np.float32(0.5)
        out = np.empty(np.shape(x), np.float32)
        for c in range(3):
            o = out[:, c]
            np.multiply(coef[3 * c], g[0], out=o)
            o += coef[3 * c + 1] * g[1]
            o += coef[3 * c + 2] * g[2]
            o += coef[9 + c]
        return out


class EditFilter:
    """Which edits get which GuidedFilter: the manifest's "edit_filter" entry, either one filter for every
    attribute ({"kind": "guided", "radius": R, "eps": E}) or one per attribute ({"kind": "guided",
    "per_attribute": {"Bald": {"radius": R, "eps": E}, ...}}). A row is filtered only when every attribute the
    user set has a filter (the implied ones follow the user's); with several, the smoothest of theirs. An edit
    that sets an attribute without one (glasses, a mustache: structure the input does not have) stays
    unfiltered, so the filter never blurs away what such an edit must add."""

    def __init__(self, filters: list):
        self.filters = filters  # per attribute: GuidedFilter or None

    @classmethod
    def from_manifest(cls, entry, names: list) -> "EditFilter | None":
        if not entry:
            return None
        if not isinstance(entry, dict) or entry.get("kind") != "guided":
            raise ValueError(f"unknown edit_filter {entry!r} (expected kind 'guided')")
        if "per_attribute" not in entry:
            one = GuidedFilter(int(entry["radius"]), float(entry["eps"]))
            return cls([one] * len(names))
        table = entry["per_attribute"]
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise ValueError(f"edit_filter names attributes this model does not have: {', '.join(unknown)}")
        return cls([GuidedFilter(int(table[n]["radius"]), float(table[n]["eps"])) if n in table else None
                    for n in names])

    @classmethod
    def from_specs(cls, specs: list, names: list) -> "EditFilter | None":
        """Command-line values: "RADIUS,EPS" (every attribute), "NAME=RADIUS,EPS" (one each), or "off"."""
        if any(s.strip().lower() in ("off", "none") for s in specs):
            if len(specs) > 1:
                raise ValueError("'off' cannot be combined with other edit filter values")
            return None
        filters = [None] * len(names)
        lower = {n.lower(): i for i, n in enumerate(names)}
        for spec in specs:
            name, _, setting = spec.rpartition("=")
            f = GuidedFilter.parse(setting)
            if not name:
                filters = [f] * len(names)
            elif name.strip().lower() in lower:
                filters[lower[name.strip().lower()]] = f
            else:
                raise ValueError(f"edit filter for '{name}': not an attribute of this model ({', '.join(names)})")
        return cls(filters)

    def to_manifest(self, names: list) -> dict:
        distinct = set(self.filters)
        if len(distinct) == 1 and None not in distinct:
            return {"kind": "guided", **self.filters[0].to_dict()}
        return {"kind": "guided", "per_attribute": {n: f.to_dict() for n, f in zip(names, self.filters) if f}}

    def for_row(self, mask_row) -> "GuidedFilter | None":
        """The filter of one row of user masks [A] (1 where the user set the attribute), or None."""
        chosen = [self.filters[k] for k in np.flatnonzero(np.asarray(mask_row) > 0)]
        if not chosen or any(f is None for f in chosen):
            return None
        return max(chosen, key=lambda f: (f.radius, f.eps))

    def row_coefficients(self, x: np.ndarray, delta: np.ndarray, mask: np.ndarray) -> list:
        """Per row of delta [N,3,S,S]: (its GuidedFilter, coefficients [12,S,S]) where the row's attributes
        (mask [N,A]) are filtered, else None. Rows that share a filter are computed together."""
        groups: dict = {}
        for i, m in enumerate(np.broadcast_to(mask, (len(delta), len(self.filters)))):
            f = self.for_row(m)
            if f is not None:
                groups.setdefault(f, []).append(i)
        out = [None] * len(delta)
        for f, idx in groups.items():
            coef = f.coefficients(x[idx], delta[idx])
            for j, i in enumerate(idx):
                out[i] = (f, coef[:, j])
        return out

    def filter_rows(self, x: np.ndarray, delta: np.ndarray, mask: np.ndarray, coefs: list | None = None) -> np.ndarray:
        """delta [N,3,S,S] with each row filtered by its own filter (x: the guides, mask: [N,A] user masks;
        coefs: row_coefficients' answer, when already computed)."""
        coefs = self.row_coefficients(x, delta, mask) if coefs is None else coefs
        if not any(coefs):
            return delta
        out = np.array(delta, np.float32, copy=True)
        rows = [i for i, fc in enumerate(coefs) if fc is not None]
        # every filtered row in one pass (the rows' coefficients are views of their group's planes)
        planes = np.stack([coefs[i][1] for i in rows], axis=1)
        out[rows] = GuidedFilter.at_model_size(planes, x[rows])
        return out


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))  # the guide covariance's upper triangle


def _box_buffer(k: int, n: int, h: int, w: int, r: int):
    """A zeroed buffer for k planes of n images each, every plane's images stacked vertically with r zero rows
    after each image, so one OpenCV call per plane filters all n images and no window reaches into a
    neighbour (the zeros are the border). -> (buffer, its [k,n,h,w] view where the planes go)."""
    buf = np.zeros((k, n, h + r, w), np.float32)
    return buf, buf[:, :, :h]


def _box_mean(buf: np.ndarray, r: int) -> None:
    """In place: each plane of _box_buffer's buffer -> its mean over a (2r+1)^2 window, the window cut at the
    border (each pixel averages only what exists): OpenCV's box sum over zero padding, divided by the
    window's count."""
    k, n, hr, w = buf.shape
    h = hr - r
    size = (2 * r + 1, 2 * r + 1)
    for plane in buf.reshape(k, n * hr, w):
        cv2.boxFilter(plane, -1, size, dst=plane, normalize=False, borderType=cv2.BORDER_CONSTANT)
    buf[:, :, :h] *= _inverse_count(h, w, r)


@lru_cache(maxsize=32)
def _inverse_count(h: int, w: int, r: int) -> np.ndarray:
    """1 / the number of pixels of each (2r+1)^2 window inside an h x w image, [h, w]."""
    ones = np.ones((h, w), np.float32)
    return 1 / cv2.boxFilter(ones, -1, (2 * r + 1, 2 * r + 1), normalize=False, borderType=cv2.BORDER_CONSTANT)


def _inverse_sym3(u: list) -> list:
    """Inverses of symmetric 3x3 matrices given as planes of their upper triangles (00 01 02 11 12 22) ->
    rows of planes inv[i][j]."""
    a, b, c, d, e, f = u
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    inv_det = 1 / (a * c00 + b * c01 + c * c02)
    c00 *= inv_det
    c01 *= inv_det
    c02 *= inv_det
    c11 *= inv_det
    c12 *= inv_det
    c22 *= inv_det
    return [[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]
