"""How well a face detector finds faces and their eyes.

Two measures, both torch-free:
- synthetic_cases(): photos made here from scikit-image's astronaut (NASA, public domain) whose true eye
  positions are known: her eyes were set by hand on the 512x512 original (checked on an enlarged view) and
  every case moves them with the exact warp that made it. Scaled (faces from ~40 px to the whole frame),
  rotated up to 30 degrees, cropped tight, padded, and several faces side by side.
- folder_report(): found / eyes from landmarks / time per photo on a folder of real photos (no labels).
Both are printed by `faceedit bench` (the folder with --photos) and the synthetic one is asserted in
tests/test_detect_blazeface.py."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# the astronaut's eye centres (image-left, image-right) in skimage.data.astronaut(), pixel centres at
# integers; set by hand on a 16x enlarged view of each eye (iris centre)
ASTRONAUT_EYES = ((202.5, 100.5), (246.0, 102.5))
ASTRONAUT_FACE_PER_EYE = 2.35  # her face (brow to chin box) is this many eye distances wide


@dataclass
class Case:
    name: str
    rgb: np.ndarray
    eyes: list = field(default_factory=list)   # per face: ((lx, ly), (rx, ry)), photo pixels
    kind: str = ""

    @property
    def face_widths(self) -> list[float]:
        return [ASTRONAUT_FACE_PER_EYE * math.dist(*e) for e in self.eyes]


def _astronaut():
    from skimage import data
    return data.astronaut()


def _background(h: int, w: int) -> np.ndarray:
    """A faceless public-domain photo (skimage's coffee cup) filling h x w."""
    import cv2
    from skimage import data
    return cv2.resize(data.coffee(), (w, h), interpolation=cv2.INTER_AREA)


def similarity(eye_distance: float, angle_deg: float, centre: tuple) -> np.ndarray:
    """2x3 astronaut -> photo: her eyes `eye_distance` apart, the eye line turned by angle_deg (clockwise on
    screen), the eye midpoint at centre."""
    (lx, ly), (rx, ry) = ASTRONAUT_EYES
    s = eye_distance / math.hypot(rx - lx, ry - ly)
    t = math.radians(angle_deg)
    a, b = s * math.cos(t), s * math.sin(t)
    mx, my = (lx + rx) / 2, (ly + ry) / 2
    return np.array([[a, -b, centre[0] - (a * mx - b * my)], [b, a, centre[1] - (b * mx + a * my)]])


HEAD = (120, 10, 330, 250)  # x0, y0, x1, y1: her head and shoulders in the astronaut photo


def paste(canvas: np.ndarray, m: np.ndarray, region: tuple | None = None) -> tuple:
    """Draw the astronaut photo (or only its region x0, y0, x1, y1) into canvas under m; -> (image-left
    eye, image-right eye) there."""
    import cv2
    src = _astronaut()
    if region is not None:
        x0, y0, x1, y1 = region
        src = src[y0:y1, x0:x1]
        m = np.hstack([m[:, :2], (m[:, :2] @ np.array([x0, y0], float) + m[:, 2])[:, None]])
        eyes = np.asarray(ASTRONAUT_EYES) - [x0, y0]
    else:
        eyes = np.asarray(ASTRONAUT_EYES)
    h, w = canvas.shape[:2]
    s = math.hypot(m[0, 0], m[1, 0])
    flags = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    if s < 0.5:  # area-shrink first: a warp alone would alias
        k = 2 * s
        small = cv2.resize(src, (round(src.shape[1] * k), round(src.shape[0] * k)), interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / src.shape[1], small.shape[0] / src.shape[0]
        inv_small = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5]])
        m_small = np.hstack([m[:, :2] @ inv_small[:, :2], (m[:, :2] @ inv_small[:, 2] + m[:, 2])[:, None]])
        cv2.warpAffine(small, m_small, (w, h), dst=canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    else:
        cv2.warpAffine(src, m, (w, h), dst=canvas, flags=flags, borderMode=cv2.BORDER_TRANSPARENT)
    eyes = eyes @ m[:, :2].T + m[:, 2]
    return tuple(map(tuple, eyes.tolist()))


def synthetic_cases(seed: int = 0) -> list[Case]:
    import cv2
    rng = np.random.default_rng(seed)
    cases = []
    # scale: one face, 40 px to most of a 1024x768 photo
    for face_px in (40, 64, 100, 200, 400, 700):
        canvas = _background(768, 1024)
        d = face_px / ASTRONAUT_FACE_PER_EYE
        centre = (rng.uniform(0.3, 0.7) * 1024, rng.uniform(0.35, 0.5) * 768)
        eyes = paste(canvas, similarity(d, 0.0, centre))
        cases.append(Case(f"scaled, {face_px}-px face in 1024x768", canvas, [eyes], "scale"))
    # rotation up to 30 degrees, both ways
    for angle in (-30, -20, -10, 10, 20, 30):
        canvas = _background(640, 640)
        eyes = paste(canvas, similarity(80, angle, (320 + rng.uniform(-20, 20), 280 + rng.uniform(-20, 20))))
        cases.append(Case(f"rotated {angle:+d} degrees", canvas, [eyes], "rotation"))
    # tight crops: ~115 px where the face fills the frame (as in many real photo sets)
    for fill, dy in ((0.85, -0.05), (1.0, 0.0), (1.1, 0.05), (1.2, 0.0)):
        side = 115
        d = fill * side / ASTRONAUT_FACE_PER_EYE
        canvas = np.zeros((side, side, 3), np.uint8)
        eyes = paste(canvas, similarity(d, rng.uniform(-5, 5), (side / 2, side * (0.38 + dy))))
        cases.append(Case(f"tight crop, face {fill:.0%} of a {side}-px frame", canvas, [eyes], "tight"))
    # padded: the astronaut photo itself with wide black and white borders
    for value, pad in ((0, 256), (255, 128)):
        src = _astronaut()
        canvas = cv2.copyMakeBorder(src, pad, pad, pad // 2, pad * 2, cv2.BORDER_CONSTANT, value=(value,) * 3)
        eyes = tuple((x + pad // 2, y + pad) for x, y in ASTRONAUT_EYES)
        cases.append(Case(f"padded astronaut, {'black' if value == 0 else 'white'} borders", canvas, [eyes], "padded"))
    # several faces side by side, of different sizes and tilts
    canvas = _background(560, 1280)
    eyes = [paste(canvas, similarity(d, a, c), HEAD) for d, a, c in
            ((30, 0, (180, 260)), (55, -12, (520, 240)), (90, 8, (960, 250)))]
    cases.append(Case("three faces side by side", canvas, eyes, "several"))
    canvas = _background(400, 1600)
    eyes = [paste(canvas, similarity(18 + 6 * i, 0, (100 + i * 235, 200)), HEAD) for i in range(7)]
    cases.append(Case("seven small faces in a row", canvas, eyes, "several"))
    return cases


def faceless_cases() -> list[Case]:
    """Public-domain photos without a human face: every face found there is a false one."""
    from skimage import data
    return [Case(name, getattr(data, name)(), [], "faceless") for name in ("coffee", "rocket", "chelsea", "hubble_deep_field")]


# scikit-image's sample images that hold no human face (camera and astronaut do; chelsea is a cat)
NO_FACE_SAMPLES = ("coins", "checkerboard", "coffee", "rocket", "hubble_deep_field", "moon", "page", "text", "horse",
                   "clock", "grass", "gravel", "brick", "cell", "immunohistochemistry", "retina",
                   "shepp_logan_phantom", "logo", "colorwheel", "chelsea", "microaneurysms", "binary_blobs")
SMALL_CROPS = ("coffee", "rocket", "chelsea", "brick", "gravel", "grass", "immunohistochemistry",
               "hubble_deep_field", "clock", "coins")


def _rgb(a) -> np.ndarray:
    """Any scikit-image sample (bool, float, grey, RGBA) -> HxWx3 uint8."""
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(a * (255 if a.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def no_face_set(n: int = 50, seed: int = 0) -> list[Case]:
    """n images that hold no face, all public domain or made here: scikit-image's faceless samples, 100x120
    crops of some (small photos: where the detector tries once more, enlarged), and synthetic scenes (flat
    colours, gradients, noise, stripes, checkers, shapes, smooth random fields, text). Every face found on
    them is a false one."""
    import cv2
    from skimage import data
    rng = np.random.default_rng(seed)
    out = [Case(name, _rgb(getattr(data, name)()), [], "no face") for name in NO_FACE_SAMPLES]
    for name in SMALL_CROPS:
        img = _rgb(getattr(data, name)())
        y, x = rng.integers(0, img.shape[0] - 120), rng.integers(0, img.shape[1] - 100)
        out.append(Case(f"{name}, 100x120 crop", np.ascontiguousarray(img[y:y + 120, x:x + 100]), [], "no face, small"))
    k = 0
    while len(out) < n:
        h, w = (int(v) for v in rng.integers(96, 720, 2))
        kind = k % 8
        if kind == 0:
            img = np.empty((h, w, 3), np.uint8)
            img[:] = rng.integers(0, 256, 3)
        elif kind == 1:
            ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * np.linspace(0.3, 1, h, dtype=np.float32)[:, None, None]
            img = (ramp * rng.integers(64, 256, 3) + rng.integers(0, 64, 3)).astype(np.uint8)
        elif kind == 2:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif kind == 3:
            period = int(rng.integers(4, 40))
            stripes = ((np.arange(w) // period) % 2).astype(np.uint8) * 200 + 30
            img = np.repeat(np.repeat(stripes[None, :, None], h, 0), 3, 2)
        elif kind == 4:
            cell = int(rng.integers(6, 60))
            yy, xx = np.mgrid[0:h, 0:w]
            img = np.repeat((((yy // cell + xx // cell) % 2) * 255).astype(np.uint8)[:, :, None], 3, 2)
        elif kind == 5:
            img = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
            for _ in range(12):
                c = tuple(int(v) for v in rng.integers(0, 256, 3))
                if rng.random() < 0.5:
                    cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(5, 80)), c, -1)
                else:
                    p = rng.integers(0, [w, h], (2, 2))
                    cv2.rectangle(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), c, -1)
        elif kind == 6:
            small = rng.integers(0, 256, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3), dtype=np.uint8)
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        else:
            img = np.full((h, w, 3), 245, np.uint8)
            for row in range(20, h - 10, 28):
                cv2.putText(img, "faceedit bench no face " + str(row), (8, row), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (20, 20, 20), 2)
        out.append(Case(f"synthetic {('flat', 'gradient', 'noise', 'stripes', 'checker', 'shapes', 'smooth field', 'text')[kind]} "
                        f"{w}x{h}", np.ascontiguousarray(img), [], "no face, synthetic"))
        k += 1
    return out[:n]


def folder_cases(folder) -> list[Case]:
    """Every image in a folder of photos that hold no face (bench --no-faces FOLDER)."""
    from faceedit.engine.imageio import read_photo
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [Case(p.name, read_photo(p).rgb, [], "no face, folder") for p in files]


def no_face_report(detector, cases: list[Case]) -> dict:
    """Images that hold no face: how many of them the detector finds a face on (each one is false)."""
    rows = []
    for c in cases:
        t0 = time.perf_counter()
        faces = detector.detect(c.rgb)
        rows.append({"image": c.name, "faces": len(faces), "ms": round(1000 * (time.perf_counter() - t0), 2)})
    bad = [r["image"] for r in rows if r["faces"]]
    return {"images": len(rows), "with_false_faces": len(bad), "false_faces": sum(r["faces"] for r in rows),
            "false_on": bad, "ms_p50": round(float(np.median([r["ms"] for r in rows])), 2) if rows else None}


def eye_error(found_eyes, true_eyes) -> float:
    """The larger of the two eyes' distances from the truth, as a fraction of the true eye distance."""
    f, t = np.asarray(found_eyes, float), np.asarray(true_eyes, float)
    return float(np.hypot(*(f - t).T).max() / math.dist(*true_eyes))


def match(faces, true_eyes: list) -> list:
    """For each true face: the found face whose eye midpoint is nearest, if within one eye distance."""
    out = []
    for t in true_eyes:
        mid = np.mean(t, 0)
        best = min(faces, key=lambda f: math.dist(np.mean(f.eyes, 0), mid), default=None)
        out.append(best if best is not None and math.dist(np.mean(best.eyes, 0), mid) < math.dist(*t) else None)
    return out


def evaluate(detector, cases: list[Case], repeats: int = 1) -> dict:
    """Per case: faces expected / found / with landmark eyes, eye errors, false faces, time."""
    rows = []
    for c in cases:
        ts = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            faces = detector.detect(c.rgb)
            ts.append(time.perf_counter() - t0)
        matched = match(faces, c.eyes)
        errors = [None if f is None else round(eye_error(f.eyes, t), 4) for f, t in zip(matched, c.eyes)]
        rows.append({"case": c.name, "kind": c.kind, "faces": len(c.eyes), "found": sum(f is not None for f in matched),
                     "landmark_eyes": sum(f is not None and f.eyes_from == "landmarks" for f in matched),
                     "eye_errors": errors, "false_faces": len(faces) - sum(f is not None for f in matched),
                     "ms": round(1000 * float(np.median(ts)), 2)})
    errs = [e for r in rows for e in r["eye_errors"] if e is not None]
    total = sum(r["faces"] for r in rows)
    return {"cases": rows, "faces": total, "found": sum(r["found"] for r in rows),
            "landmark_eyes": sum(r["landmark_eyes"] for r in rows),
            "false_faces": sum(r["false_faces"] for r in rows),
            "eye_error_mean": round(float(np.mean(errs)), 4) if errs else None,
            "eye_error_max": round(float(np.max(errs)), 4) if errs else None,
            "within_5pct": sum(e <= 0.05 for e in errs)}


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def folder_report(detector, folder, largest_only: bool = True, limit: int | None = None, log=None) -> dict:
    """On every photo in a folder (no labels): found a face, its eyes from landmarks, both eyes inside its
    box, and the time per photo (decode, detect). Photos are read, never copied or written anywhere."""
    from faceedit.engine.imageio import read_photo
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    rows, decode_ms, detect_ms = [], [], []
    for p in files:
        t0 = time.perf_counter()
        rgb = read_photo(p).rgb
        t1 = time.perf_counter()
        faces = detector.detect(rgb, largest_only=largest_only)
        t2 = time.perf_counter()
        decode_ms.append(1000 * (t1 - t0))
        detect_ms.append(1000 * (t2 - t1))
        f = max(faces, key=lambda f: f.area, default=None)
        inside = f is not None and all(f.box[0] <= x <= f.box[0] + f.box[2] and f.box[1] <= y <= f.box[1] + f.box[3]
                                       for x, y in f.eyes)
        rows.append({"photo": p.name, "size": list(rgb.shape[1::-1]), "found": f is not None,
                     "landmark_eyes": f is not None and f.eyes_from == "landmarks", "eyes_inside": inside,
                     "how": f.how if f else "", "ms": round(detect_ms[-1], 2)})
    n = len(rows)
    ok = sum(r["found"] and r["landmark_eyes"] and r["eyes_inside"] for r in rows)
    return {"folder": str(folder), "photos": n, "detector": detector.name,
            "found": sum(r["found"] for r in rows), "landmark_eyes": sum(r["landmark_eyes"] for r in rows),
            "found_with_landmark_eyes_inside": ok, "found_fraction": round(ok / n, 4) if n else None,
            "decode_ms_p50": round(float(np.median(decode_ms)), 2) if n else None,
            "detect_ms_p50": round(float(np.median(detect_ms)), 2) if n else None,
            "detect_ms_p95": round(float(np.percentile(detect_ms, 95)), 2) if n else None,
            "missed": [r["photo"] for r in rows if not (r["found"] and r["landmark_eyes"] and r["eyes_inside"])],
            "rows": rows}
