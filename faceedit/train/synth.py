"""Procedurally drawn faces in CelebA's layout, with exact labels (numpy + OpenCV, no torch).

Each attribute below changes what is drawn in a way a small CNN can see at 64x64, so tests can check that
training learns them and that edits land. The faces are framed like CelebA's aligned images: eyes level, at
the same place (see faceedit.train.data.CROP_*), so the project's crop and the engine's alignment apply.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceedit.train.data import ATTR_FILE, IDENTITY_FILE, IMAGE_DIR, PARTITION_FILE
from faceedit.core.files import atomic_write_text

# All 40 CelebA attribute names, in CelebA's order, so synthetic folders look exactly like CelebA.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()

# Attributes drawn exactly (everything else is -1 in the labels).
DRAWN = ("Male", "Smiling", "Eyeglasses", "Blond_Hair", "Black_Hair", "Brown_Hair", "Bangs", "Mustache",
         "Young", "Pale_Skin", "Bald", "Mouth_Slightly_Open", "Bushy_Eyebrows", "No_Beard")

HAIR = {"Black_Hair": (25, 20, 20), "Blond_Hair": (235, 205, 110), "Brown_Hair": (120, 70, 35)}


def sample_attributes(rng: np.random.Generator) -> dict[str, bool]:
    a = {n: False for n in DRAWN}
    a["Male"] = rng.random() < 0.45
    a["Young"] = rng.random() < 0.7
    a["Smiling"] = rng.random() < 0.5
    a["Mouth_Slightly_Open"] = rng.random() < 0.45
    a["Eyeglasses"] = rng.random() < 0.25
    a["Pale_Skin"] = rng.random() < 0.2
    a["Bald"] = a["Male"] and rng.random() < 0.15
    if not a["Bald"]:
        a[rng.choice(["Black_Hair", "Blond_Hair", "Brown_Hair"])] = True
        a["Bangs"] = rng.random() < 0.3
    a["Bushy_Eyebrows"] = rng.random() < 0.3
    a["Mustache"] = a["Male"] and rng.random() < 0.35
    a["No_Beard"] = not (a["Male"] and rng.random() < 0.4)
    return a


def draw_face(a: dict[str, bool], rng: np.random.Generator, width: int = 178) -> np.ndarray:
    """RGB uint8 image of width x round(width*218/178), drawn at 178x218 and resized."""
    W, H = 178, 218
    img = np.empty((H, W, 3), np.uint8)
    bg = rng.integers(60, 200, 3)
    img[:] = bg
    # soft vertical gradient so the background is not flat
    img[:] = np.clip(img + np.linspace(-20, 20, H)[:, None, None], 0, 255).astype(np.uint8)
    cx, cy = 89 + int(rng.integers(-2, 3)), 125 + int(rng.integers(-2, 3))
    skin = np.array([235, 215, 200]) if a["Pale_Skin"] else np.array([205, 160, 125]) - rng.integers(0, 40)
    skin = tuple(int(v) for v in np.clip(skin + rng.integers(-8, 9, 3), 0, 255))
    hair = HAIR[next(h for h in HAIR if a[h])] if not a["Bald"] else None
    face_w = 44 if a["Male"] else 39
    face_h = 56
    if hair is not None and not a["Male"]:  # long hair behind the face
        cv2.ellipse(img, (cx, cy + 5), (face_w + 14, face_h + 20), 0, 0, 360, hair, -1)
    cv2.ellipse(img, (cx, cy), (face_w, face_h), 0, 0, 360, skin, -1)
    if a["Male"]:  # squarer jaw
        cv2.rectangle(img, (cx - face_w + 4, cy + 10), (cx + face_w - 4, cy + 40), skin, -1)
    if hair is not None:
        cv2.ellipse(img, (cx, cy - 30), (face_w + 4, 34), 0, 180, 360, hair, -1)
        if a["Bangs"]:
            cv2.rectangle(img, (cx - face_w + 6, cy - 42), (cx + face_w - 6, cy - 22), hair, -1)
    if not a["Young"]:  # wrinkles and grey temples
        for dy in (-36, -30):
            cv2.line(img, (cx - 18, cy + dy), (cx + 18, cy + dy), (110, 80, 70), 1, cv2.LINE_AA)
        for s in (-1, 1):
            cv2.line(img, (cx + s * 30, cy - 10), (cx + s * 36, cy - 4), (110, 80, 70), 1, cv2.LINE_AA)
            cv2.line(img, (cx + s * 14, cy + 22), (cx + s * 20, cy + 34), (120, 85, 75), 2, cv2.LINE_AA)
    eye_y = cy - 14
    brow = 5 if a["Bushy_Eyebrows"] else 2
    for s in (-1, 1):
        ex = cx + s * 19
        cv2.ellipse(img, (ex, eye_y), (7, 4), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(img, (ex, eye_y), 3, (40, 30, 30), -1)
        cv2.line(img, (ex - 8, eye_y - 9), (ex + 8, eye_y - 10), (50, 35, 30), brow)
        if a["Eyeglasses"]:
            cv2.circle(img, (ex, eye_y), 11, (15, 15, 15), 2, cv2.LINE_AA)
    if a["Eyeglasses"]:
        cv2.line(img, (cx - 8, eye_y), (cx + 8, eye_y), (15, 15, 15), 2)
    cv2.line(img, (cx, cy - 8), (cx - 4, cy + 10), (150, 105, 85), 2, cv2.LINE_AA)  # nose
    mouth_y = cy + 26
    if a["Mouth_Slightly_Open"]:
        cv2.ellipse(img, (cx, mouth_y + 2), (10, 5), 0, 0, 360, (70, 20, 30), -1)
    if a["Smiling"]:
        cv2.ellipse(img, (cx, mouth_y - 4), (16, 9), 0, 20, 160, (170, 40, 50), 3, cv2.LINE_AA)
    else:
        cv2.line(img, (cx - 12, mouth_y), (cx + 12, mouth_y), (170, 40, 50), 3, cv2.LINE_AA)
    if a["Mustache"]:
        cv2.ellipse(img, (cx, mouth_y - 7), (15, 4), 0, 0, 360, hair or (40, 30, 25), -1)
    if not a["No_Beard"]:
        cv2.ellipse(img, (cx, cy + 40), (face_w - 6, 16), 0, 0, 180, hair or (50, 40, 35), -1)
    noise = rng.normal(0, 4, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    if width != W:
        img = cv2.resize(img, (width, int(round(width * H / W))), interpolation=cv2.INTER_AREA)
    return img


def write_synthetic_celeba(out, count: int, size: int = 89, seed: int = 0, split=(0.8, 0.1)) -> Path:
    """Write `count` faces and CelebA's label files to `out`. Deterministic for a seed."""
    out = Path(out)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    attr_lines, part_lines, id_lines = [], [], []
    n_train, n_val = int(count * split[0]), int(count * split[1])
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        a = sample_attributes(rng)
        img = draw_face(a, rng, size)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        (out / IMAGE_DIR / name).write_bytes(buf.tobytes())
        attr_lines.append(name + " " + " ".join(" 1" if a.get(n, False) else "-1" for n in CELEBA_ATTRIBUTES))
        part = 0 if i < n_train else (1 if i < n_train + n_val else 2)
        part_lines.append(f"{name} {part}")
        id_lines.append(f"{name} {i + 1}")  # every synthetic face is its own identity
    _write(out / ATTR_FILE, [str(count), " ".join(CELEBA_ATTRIBUTES)] + attr_lines)
    _write(out / PARTITION_FILE, part_lines)
    _write(out / IDENTITY_FILE, id_lines)
    return out


def _write(path: Path, lines: list[str]):
    atomic_write_text(path, "\n".join(lines) + "\n")
