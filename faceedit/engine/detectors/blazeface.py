"""MediaPipe BlazeFace, shipped in the package (faceedit/models/blazeface: two ONNX graphs, Apache-2.0):
a face box and six landmarks per face (both eyes, nose, mouth, both ears), on the editor's backend.

Passes, from big faces to small. Each finds faces reliably from a floor width w (BlazeFace's box, about
brow to chin) relative to the photo's longest side L:
  whole  the 128-px front graph on the photo letterboxed with WHOLE_MARGIN margins: w from WHOLE_FLOOR L to
         beyond the frame (a tight crop whose face overfills it is found too)
  small  the 256-px back graph on the letterboxed photo: w from SMALL_FLOOR L
  tiles  the back graph on tiles of (0.5 + TILE_OVERLAP) L: w from SMALL_FLOOR of a tile, run where that is
         >= MIN_FIND_PX
With largest_only a finer pass is skipped once a confirmed face is at least as wide as the coarser
passes' floor: any wider face would have been found already.

Every candidate is then refined on an upright crop where its eyes are REFINE_EYES of the 128-px input
apart: once framed by the pass's landmarks, then framed by the refined ones on the crop and its mirror
image (averaged: the mirror cancels the graph's left/right bias), and once more so if that framing still
moved by more than SETTLED. The graph's landmarks shift with the framing, so they are taken where the
framing they give is the one they were measured on, at the scale where they are most accurate
(REFINE_EYES). A candidate any refinement view does not confirm is dropped (most textures that look like a
face in one framing do not in the mirror).

How the floors, the refinement scale and the thread count were chosen, and the eye accuracy and cost per
photo that came of them: docs/photo-path.md."""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, replace

import cv2
import numpy as np

from faceedit.engine.detect import Face
from faceedit.engine.errors import EngineError

CANDIDATE_SCORE = 0.5   # a pass's detections kept for refinement (MediaPipe's own threshold)
CONFIRM_SCORE = 0.6     # the refined score a face needs
NMS_IOU = 0.3           # boxes overlapping more are one face (scores blend them, as MediaPipe does)
WHOLE_MARGIN = 0.2      # the whole-photo pass pads each side by this fraction of L
WHOLE_FLOOR = 0.19      # ... and finds faces from this width (fraction of L) up
SMALL_FLOOR = 0.05      # the back graph on the letterboxed photo: faces from this fraction of L up
TILE_OVERLAP = 0.1      # tiles overlap by this fraction of L (a face cut by one tile is whole in the next)
MIN_FIND_PX = 32        # finer passes run while they can find faces at least this wide (photo pixels)
REFINE_EYES = 0.15      # refinement: the eye distance as a fraction of the 128-px input (measured best)
REFINE_DOWN = 0.45      # ... and the crop's centre below the eye midpoint, in eye distances
MAX_MIRRORED_STEPS = 2  # refinement steps on a crop and its mirror, while the framing moves by more than:
SETTLED = 0.04          # ... this fraction of the eye distance (eye midpoint, eye distance), or radians of tilt
RETRY_BELOW = 320       # a photo with no face found whose long side is under this many pixels is tried again ...
RETRY_SIDE = 128        # ... scaled to this long side ...
RETRY_PAD = 0.5         # ... with this fraction of it added in black on every side


def _anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1]: a 16x16 grid with 2 anchors per cell, then 8x8 with 6, both
    graphs alike (MediaPipe's SSD anchors with fixed size 1: only the centres matter)."""
    out = []
    for cells, per in ((16, 2), (8, 6)):
        ys, xs = np.mgrid[0:cells, 0:cells]
        c = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


ANCHORS = _anchors()


def decode(outputs, size: int):
    """The graph's four outputs -> (scores [896], boxes [896, 4] as cx, cy, w, h, landmarks [896, 6, 2]),
    in input pixels with pixel centres at integers (the graph regresses offsets in pixels from anchor
    centres in [0, 1] image coordinates, whose pixel centres sit at +0.5)."""
    logits = np.concatenate([outputs[0].reshape(-1), outputs[1].reshape(-1)])
    reg = np.concatenate([outputs[2].reshape(-1, 16), outputs[3].reshape(-1, 16)])
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
    origin = ANCHORS * size - 0.5
    boxes = np.concatenate([origin + reg[:, :2], reg[:, 2:4]], 1)
    landmarks = origin[:, None, :] + reg[:, 4:].reshape(-1, 6, 2)
    return scores, boxes, landmarks


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one cx, cy, w, h box with each row of boxes."""
    lo = np.maximum(box[:2] - box[2:] / 2, boxes[:, :2] - boxes[:, 2:] / 2)
    hi = np.minimum(box[:2] + box[2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    return inter / (box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter + 1e-9)


def blend_nms(scores, boxes, landmarks, min_score: float, overlap: float = NMS_IOU):
    """MediaPipe's weighted NMS: each cluster of overlapping boxes becomes their score-weighted mean, with
    the cluster's best score. -> [(score, box [4], landmarks [6, 2])], best first."""
    order = np.nonzero(scores >= min_score)[0]
    order = order[np.argsort(-scores[order], kind="stable")]
    out = []
    while order.size:
        ov = iou(boxes[order[0]], boxes[order])
        group, order = order[ov >= overlap], order[ov < overlap]
        w = scores[group][:, None]
        out.append((float(scores[group[0]]), (boxes[group] * w).sum(0) / w.sum(),
                    (landmarks[group] * w[:, :, None]).sum(0) / w.sum()))
    return out


def square_map(cx: float, cy: float, side: float, size: int, angle: float = 0.0) -> np.ndarray:
    """2x3 photo -> input: the square of `side` photo pixels centred on (cx, cy), turned by -angle (radians;
    angle is the photo's eye-line tilt, so the face comes out level), onto size x size pixels."""
    s = size / side
    a, b = s * math.cos(-angle), s * math.sin(-angle)
    c = (size - 1) / 2
    return np.array([[a, -b, c - a * cx + b * cy], [b, a, c - b * cx - a * cy]], np.float64)


class Pyramid:
    """The photo and its halvings (area-averaged, made on first use): a graph input is warped from the
    level at most 2x its own scale, so the warp never aliases and no pass resizes the whole photo again."""

    def __init__(self, rgb: np.ndarray):
        self.levels = [(rgb, 1.0, 1.0)]  # (image, fx, fy): level x = (photo x + 0.5) * fx - 0.5

    def level_for(self, scale: float):
        while True:
            img, fx, fy = self.levels[-1]
            h, w = img.shape[:2]
            if min(fx, fy) < 2 * scale or min(h, w) < 8:
                break
            half = cv2.resize(img, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
            self.levels.append((half, fx * half.shape[1] / w, fy * half.shape[0] / h))
        # the smallest level still at least as fine as the input
        return next(lv for lv in reversed(self.levels) if min(lv[1], lv[2]) >= scale * 0.999 or lv is self.levels[0])


def warp_input(src, m: np.ndarray, size: int) -> np.ndarray:
    """size x size x 3 uint8 of the photo under m (2x3, photo -> input; black outside the photo). src: a
    Pyramid (or a photo): the warp reads the pyramid level nearest above the input's scale."""
    src = src if isinstance(src, Pyramid) else Pyramid(src)
    img, fx, fy = src.level_for(math.hypot(m[0, 0], m[1, 0]))
    if (fx, fy) != (1.0, 1.0):
        # input = m(photo) and photo = ((level + 0.5) / f - 0.5): fold that into m
        m = np.hstack([m[:, :2] / [fx, fy], (m[:, :2] @ [0.5 / fx - 0.5, 0.5 / fy - 0.5] + m[:, 2])[:, None]])
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def to_photo(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    inv = cv2.invertAffineTransform(m)
    return points @ inv[:, :2].T + inv[:, 2]


@dataclass
class Hit:
    score: float
    box: np.ndarray         # cx, cy, w, h in photo pixels (axis-aligned in the input it was found in)
    landmarks: np.ndarray   # [6, 2] photo pixels: image-left eye, image-right eye, nose, mouth, ears
    how: str

    def as_xywh(self) -> np.ndarray:
        return np.concatenate([self.box[:2] - self.box[2:] / 2, self.box[2:]])


def _to_photo_hit(det, m, size, how) -> Hit:
    score, box, lm = det
    s = math.hypot(m[0, 0], m[1, 0])
    centre = to_photo(m, box[None, :2])[0]
    return Hit(score, np.array([centre[0], centre[1], box[2] / s, box[3] / s]), to_photo(m, lm), how)


def mirror_landmarks(lm: np.ndarray, size: int) -> np.ndarray:
    """Landmarks [..., 6, 2] found on input[:, ::-1] -> the unmirrored input's frame, with the left/right
    pairs (eyes, ears) swapped back."""
    out = lm[..., [1, 0, 2, 3, 5, 4], :].copy()
    out[..., 0] = (size - 1) - out[..., 0]
    return out


class DetectorFiles:
    """faceedit/models/blazeface: detector.json and the graphs it lists, sha256 checked (like a model
    directory's manifest), in the shape engine backends load graphs from (.path, .graphs, .manifest)."""

    def __init__(self, folder=None, verify: bool = True):
        from pathlib import Path

        from faceedit.core.files import sha256_file
        if folder is None:
            from faceedit.models import BLAZEFACE_DIR
            folder = BLAZEFACE_DIR
        self.path = Path(folder)
        try:
            self.manifest = json.loads((self.path / "detector.json").read_text())
            self.graphs = {name: {"fp32": entry} for name, entry in self.manifest["graphs"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise EngineError(f"the BlazeFace detector files in {self.path} are missing or damaged ({e}): "
                              "reinstall faceedit, or choose the haar detector", field="detector") from None
        for name, entry in self.manifest["graphs"].items():
            f = self.path / entry["path"]
            if not f.is_file():
                raise EngineError(f"BlazeFace graph {f} is missing: reinstall faceedit, or choose the haar detector",
                                  field="detector")
            if verify and sha256_file(f) != entry["sha256"]:
                raise EngineError(f"BlazeFace graph {f} does not match its sha256 in detector.json (damaged or "
                                  "replaced): reinstall faceedit, or choose the haar detector", field="detector")


DETECTOR_THREADS = 1  # the 128-px graph runs on one thread: a second one only spins (docs/photo-path.md)


def detector_backend(backend=None):
    """The engine backend kind to run the detector on: the editor's when it is a CPU backend (no second
    runtime to import), else ONNX Runtime on the CPU (a 128-px graph gains nothing from a GPU round
    trip); on DETECTOR_THREADS threads."""
    name = getattr(backend, "name", "onnxruntime")
    if getattr(backend, "device", "cpu") != "cpu" or name not in ("onnxruntime", "openvino"):
        name = "onnxruntime"
    from faceedit.engine.backends import backend_class
    return backend_class(name)(threads=DETECTOR_THREADS, cache=getattr(backend, "cache", True))


class BlazeFaceDetector:
    name = "blazeface"

    def __init__(self, backend=None, folder=None, verify: bool = True):
        self.files = DetectorFiles(folder, verify)
        self.backend = detector_backend(backend)
        self._graphs = {}
        self._lock = threading.Lock()

    # ---- running the graphs ------------------------------------------------------------------------
    def _graph(self, name):
        g = self._graphs.get(name)
        if g is None:
            with self._lock:  # the back graph loads on first use: most photos never need it
                g = self._graphs.get(name)
                if g is None:
                    g = self._graphs[name] = self.backend.load(self.files, name, "fp32")
        return g

    def run(self, name: str, image: np.ndarray):
        """One graph on one size x size x 3 uint8 image -> decode()'s (scores, boxes, landmarks)."""
        x = np.empty((1,) + image.shape, np.float32)
        np.multiply(image, np.float32(2 / 255), out=x[0], casting="unsafe")
        x -= 1.0  # the graphs take RGB in [-1, 1], NHWC
        g = self._graph(name)
        return decode(g.run({g.input_names[0]: x}), image.shape[0])

    def _find(self, src, name, size, m, how) -> list[Hit]:
        dets = blend_nms(*self.run(name, warp_input(src, m, size)), CANDIDATE_SCORE)
        return [_to_photo_hit(d, m, size, how) for d in dets]

    # ---- passes -------------------------------------------------------------------------------------
    def passes(self, h: int, w: int):
        """[(label, floor px, [(graph, size, 2x3 map)])] from big faces to small: floor is the narrowest face
        the pass finds reliably, in photo pixels."""
        L = max(h, w)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        out = [("whole photo, 128 px", WHOLE_FLOOR * L,
                [("front128", 128, square_map(cx, cy, L * (1 + 2 * WHOLE_MARGIN), 128))]),
               ("whole photo, 256 px", SMALL_FLOOR * L, [("back256", 256, square_map(cx, cy, L, 256))])]
        side = L * (0.5 + TILE_OVERLAP)
        if SMALL_FLOOR * L >= MIN_FIND_PX:  # tiles find what the small pass cannot, down to SMALL_FLOOR * side
            centres = [(x, y) for y in _tile_centres(h, side) for x in _tile_centres(w, side)]
            out.append((f"{len(centres)} tiles, 256 px", SMALL_FLOOR * side,
                        [("back256", 256, square_map(x, y, side, 256)) for x, y in centres]))
        return out

    def detect(self, rgb: np.ndarray, largest_only: bool = False) -> list[Face]:
        faces = self._detect(rgb, largest_only)
        if not faces and max(rgb.shape[:2]) < RETRY_BELOW:
            return self._retry_small(rgb, largest_only)
        return faces

    def _detect(self, rgb: np.ndarray, largest_only: bool) -> list[Face]:
        h, w = rgb.shape[:2]
        src = Pyramid(rgb)
        confirmed: list[Hit] = []
        tried: list[Hit] = []
        prev_floor = math.inf
        for label, floor, runs in self.passes(h, w):
            if confirmed and (largest_only and max(c.box[2] for c in confirmed) >= prev_floor):
                break  # every face wider than prev_floor was found already: nothing here can be larger
            if prev_floor < MIN_FIND_PX and confirmed:
                break
            hits = [hit for name, size, m in runs for hit in self._find(src, name, size, m, label)]
            new = self._new(hits, confirmed, tried)
            new.sort(key=lambda t: -t.box[2] * t.box[3])
            for hit in new:
                if largest_only and confirmed and hit.box[2] * hit.box[3] < max(c.box[2] * c.box[3] for c in confirmed):
                    break
                r = self.refine(src, hit)
                if r is None:
                    tried.append(hit)
                elif not any(_same_face(r, c) for c in confirmed):  # e.g. a tile saw part of a big face
                    confirmed.append(r)
            prev_floor = floor
        return [self._face(c) for c in confirmed]

    def _retry_small(self, rgb: np.ndarray, largest_only: bool) -> list[Face]:
        """A small photo with no face found: once more on a copy scaled to RETRY_SIDE and padded by RETRY_PAD
        of it in black on every side (a face cropped about as tight as its own width then sits whole in the
        input, as in the synthetic tight crops the passes were measured on; a mirrored border found more such
        faces, with eyes 12-29% of their distance off, so it is not used); faces mapped back to the photo, kept
        where their eyes are inside it. Every refinement view must still confirm them, as on any photo."""
        h, w = rgb.shape[:2]
        k = RETRY_SIDE / max(h, w)
        big = cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))),
                         interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
        pad = int(round(RETRY_PAD * RETRY_SIDE))
        canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        fx, fy = big.shape[1] / w, big.shape[0] / h  # resize's own scale per axis (pixel centres: (p + 0.5) f - 0.5)
        out = []
        for f in self._detect(canvas, largest_only):
            def back(p):
                return ((p[0] - pad + 0.5) / fx - 0.5, (p[1] - pad + 0.5) / fy - 0.5)
            eyes = tuple(back(e) for e in f.eyes)
            if not all(-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5 for x, y in eyes):
                continue
            x, y, bw, bh = f.box
            x0, y0 = back((x, y))
            out.append(replace(f, box=(x0, y0, bw / fx, bh / fy), eyes=eyes, how=f"{f.how}, scaled x{k:.2g} and padded",
                               landmarks=None if f.landmarks is None else tuple(back(p) for p in f.landmarks)))
        return out

    @staticmethod
    def _new(hits: list[Hit], confirmed: list[Hit], tried: list[Hit] = ()) -> list[Hit]:
        """hits (from all runs of a pass) merged among themselves, minus faces already confirmed and minus
        candidates an earlier pass tried that scored at least as well. A finer pass's better view of a region
        whose coarse candidate failed refinement is tried again: the astronaut pasted ~110 px wide into a
        1675x910 scene scored 0.54 in the whole-photo pass (refinement said no) and 0.84 in a tile (refined to
        0.91), and the first used to hide the second."""
        hits = sorted(hits, key=lambda t: -t.score)
        out = []
        for hit in hits:
            others = out + list(confirmed) + [t for t in tried if t.score >= hit.score]
            if others and iou(hit.box, np.array([o.box for o in others])).max() >= NMS_IOU:
                continue
            out.append(hit)
        return out

    # ---- refinement ---------------------------------------------------------------------------------
    def refine(self, src, hit: Hit) -> Hit | None:
        """The face again, upright at the front graph's best scale: once on the crop the pass's landmarks
        frame, then on the crop the refined ones frame and on its mirror image (averaged), and once more so
        while that framing still moves (the graph's landmarks depend on the framing: they are calibrated
        where the framing they give is the one they were measured on). None where a view does not confirm
        a face."""
        hit = self._refine_once(src, hit, (False,))
        for step in range(MAX_MIRRORED_STEPS):
            if hit is None:
                return None
            new = self._refine_once(src, hit, (False, True))
            if new is not None and step + 1 < MAX_MIRRORED_STEPS and _settled(hit, new):
                return new
            hit = new
        return hit

    def _refine_once(self, src, hit: Hit, views=(False, True)) -> Hit | None:
        left, right = hit.landmarks[0], hit.landmarks[1]
        d = max(float(np.hypot(*(right - left))), 0.1 * hit.box[2], 1.0)
        angle = _tilt(hit.landmarks)
        down = np.array([-math.sin(angle), math.cos(angle)])
        centre = (left + right) / 2 + REFINE_DOWN * d * down
        size = 128
        m = square_map(centre[0], centre[1], d / REFINE_EYES, size, angle)
        crop = warp_input(src, m, size)
        found = []
        for mirrored in views:
            scores, boxes, lms = self.run("front128", crop[:, ::-1] if mirrored else crop)
            if mirrored:
                boxes = boxes.copy()
                boxes[:, 0] = (size - 1) - boxes[:, 0]
                lms = mirror_landmarks(lms, size)
            # the face we came for: the best detection whose box centre is near the crop's centre
            near = np.hypot(boxes[:, 0] - (size - 1) / 2, boxes[:, 1] - (size - 1) / 2) < REFINE_EYES * size
            dets = blend_nms(np.where(near, scores, 0.0), boxes, lms, CANDIDATE_SCORE)
            if dets:
                found.append(dets[0])
        # every view must see it: a face stays a face in the mirror, most false hits (textures) do not
        if len(found) < len(views):
            return None
        score = float(np.mean([f[0] for f in found]))
        if score < CONFIRM_SCORE:
            return None
        box = np.mean([f[1] for f in found], 0)
        lm = np.mean([f[2] for f in found], 0)
        return _to_photo_hit((score, box, lm), m, size, hit.how)

    @staticmethod
    def _face(hit: Hit) -> Face:
        eyes = tuple((float(x), float(y)) for x, y in hit.landmarks[:2])
        return Face(tuple(float(v) for v in hit.as_xywh()), eyes, hit.score, "landmarks",
                    f"{hit.how}, refined upright", tuple((float(x), float(y)) for x, y in hit.landmarks))


def _settled(a: Hit, b: Hit) -> bool:
    """b's framing (eye midpoint, eye distance, tilt) is within SETTLED of a's."""
    da, db = (float(np.hypot(*(h.landmarks[1] - h.landmarks[0]))) for h in (a, b))
    shift = float(np.hypot(*(a.landmarks[:2].mean(0) - b.landmarks[:2].mean(0))))
    return shift < SETTLED * da and abs(db - da) < SETTLED * da and abs(_tilt(a.landmarks) - _tilt(b.landmarks)) < SETTLED


def _same_face(a: Hit, b: Hit) -> bool:
    """Two refined hits on one face: eye midpoints closer than half the smaller eye distance."""
    da, db = (float(np.hypot(*(h.landmarks[1] - h.landmarks[0]))) for h in (a, b))
    return float(np.hypot(*(a.landmarks[:2].mean(0) - b.landmarks[:2].mean(0)))) < 0.5 * min(da, db)


def _tilt(landmarks: np.ndarray) -> float:
    """The eye line's angle (radians, image coordinates: positive turns clockwise on screen)."""
    dx, dy = landmarks[1] - landmarks[0]
    return math.atan2(dy, dx)


def _tile_centres(extent: int, side: float) -> list[float]:
    """Centres of the fewest tiles of `side` covering 0..extent with at least TILE_OVERLAP overlap."""
    if side >= extent:
        return [(extent - 1) / 2]
    n = 2
    while (extent - side) / (n - 1) > side * (1 - TILE_OVERLAP / (0.5 + TILE_OVERLAP)):
        n += 1
    step = (extent - side) / (n - 1)
    return [side / 2 - 0.5 + i * step for i in range(n)]
