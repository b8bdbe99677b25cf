"""CelebA in its own layout: reading, validating, cropping and a decoded-image cache (numpy only).

Works unchanged on a full CelebA download (178x218) and on smaller copies with the same framing: the face
crop is taken in proportion to the image (CelebA's usual 148x148 box centred at (89, 121) of 178x218).
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceedit.core.attributes import resolve
from faceedit.core.files import atomic_path

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
IMAGE_DIR = "img_align_celeba"
SPLITS = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}

# The face box in CelebA's aligned 178x218 frame, as fractions so any resolution with that framing works.
CROP_FRACTION = 148 / 178
CROP_CENTER = (89 / 178, 121 / 218)


class DataError(ValueError):
    """A data folder that cannot be used; the message is one line for the user."""


@dataclass
class CelebA:
    root: Path
    names: list[str]               # image file names, in label-file order
    all_attributes: list[str]      # the 40 (or however many) names in the label file
    labels: np.ndarray             # (N, A) int8 in {0, 1}
    partition: np.ndarray          # (N,) int8 in {0, 1, 2}
    identity: np.ndarray | None    # (N,) int32, when identity_CelebA.txt is present

    def select(self, attributes) -> tuple[list[str], np.ndarray]:
        """Attribute columns by (case-insensitive) name."""
        chosen = resolve(list(attributes), self.all_attributes)
        cols = [self.all_attributes.index(a) for a in chosen]
        return chosen, self.labels[:, cols]

    def split_indices(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise DataError(f"unknown split '{split}' (use train, val or test)")
        return np.flatnonzero(self.partition == SPLITS[split])


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"missing {path.name} in {path.parent}")
    return path.read_text().splitlines()


def read_labels(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    lines = _lines(path)
    if len(lines) < 2:
        raise DataError(f"{path.name}: expected a count line and a header line")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataError(f"{path.name} line 1: expected the image count, got '{lines[0][:40]}'") from None
    header = lines[1].split()
    names, rows = [], []
    for i, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != len(header) + 1:
            raise DataError(f"{path.name} line {i}: expected a name and {len(header)} values, got {len(parts) - 1} values")
        if any(v not in ("1", "-1") for v in parts[1:]):
            raise DataError(f"{path.name} line {i}: values must be 1 or -1")
        names.append(parts[0])
        rows.append([v == "1" for v in parts[1:]])
    if len(names) != count:
        raise DataError(f"{path.name}: line 1 says {count} images but {len(names)} are listed")
    return names, header, np.array(rows, dtype=np.int8).reshape(len(names), len(header))


def read_pairs(path: Path, what: str) -> dict[str, int]:
    out = {}
    for i, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{path.name} line {i}: expected 'NAME {what}'")
        out[parts[0]] = int(parts[1])
    return out


def load_celeba(root) -> CelebA:
    """Read the label files (images are not opened here; see `check_images` and `ImageCache`)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    names, header, labels = read_labels(root / ATTR_FILE)
    parts = read_pairs(root / PARTITION_FILE, "PARTITION")
    missing = [n for n in names if n not in parts]
    if missing:
        raise DataError(f"{PARTITION_FILE}: {len(missing)} labelled images have no partition (first: {missing[0]})")
    partition = np.array([parts[n] for n in names], dtype=np.int8)
    if not set(np.unique(partition)) <= {0, 1, 2}:
        raise DataError(f"{PARTITION_FILE}: partitions must be 0, 1 or 2")
    identity = None
    if (root / IDENTITY_FILE).exists():
        ids = read_pairs(root / IDENTITY_FILE, "IDENTITY")
        identity = np.array([ids.get(n, -1) for n in names], dtype=np.int32)
    return CelebA(root, names, header, labels, partition, identity)


def decode(path: Path) -> np.ndarray:
    """RGB uint8 image, or DataError for a missing, corrupt or truncated file."""
    if not path.is_file():
        raise DataError(f"image listed but absent: {path.name}")
    raw = path.read_bytes()
    if raw[:2] == b"\xff\xd8" and b"\xff\xd9" not in raw[-16:]:
        # libjpeg fills a truncated JPEG with grey and only warns; we refuse it instead.
        raise DataError(f"truncated JPEG: {path.name}")
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"corrupt or unreadable image: {path.name}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop_face(img: np.ndarray, size: int) -> np.ndarray:
    """CelebA's face box, in proportion to the image, resized to size x size."""
    h, w = img.shape[:2]
    side = CROP_FRACTION * w
    cx, cy = CROP_CENTER[0] * w, CROP_CENTER[1] * h
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    box = img[max(y0, 0):y0 + s, max(x0, 0):x0 + s]
    interp = cv2.INTER_AREA if s >= size else cv2.INTER_CUBIC
    return cv2.resize(box, (size, size), interpolation=interp)


def check_images(ds: CelebA) -> tuple[list[tuple[int, int]], list[str]]:
    """Decode every image once: returns the distinct sizes (w, h) and one message per bad image."""
    sizes, problems = Counter(), []
    for n in ds.names:
        try:
            img = decode(ds.root / IMAGE_DIR / n)
            sizes[(img.shape[1], img.shape[0])] += 1
        except DataError as e:
            problems.append(str(e))
    return list(sizes), problems


def default_cache_dir() -> Path:
    return Path(os.environ.get("FACEEDIT_CACHE", Path.home() / ".cache" / "faceedit"))


def cache_path(ds: CelebA, size: int, cache_dir: Path | None = None) -> Path:
    """Where ImageCache keeps this data set's crops at this size (faceedit.train.bundle fills it directly)."""
    stat = (ds.root / ATTR_FILE).stat()
    key = f"{ds.root.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{len(ds.names)}|{size}|{CROP_FRACTION}|{CROP_CENTER}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / f"celeba-{size}-{digest}.u8"


class ImageCache:
    """All crops of a data set at one size, decoded once into a uint8 memmap (N, S, S, 3).

    Keyed by the folder, its label file, the size and the crop, so a changed data set never reuses a stale
    cache. Written to a temporary name and renamed, so an interrupted build is simply rebuilt. `crop(i)` gives
    row i when the cache is built; by default CelebA's face box of photo i (faceedit.train.bundle passes
    decoded crops it carried instead of photos)."""

    def __init__(self, ds: CelebA, size: int, cache_dir: Path | None = None, progress=None, crop=None):
        cache_dir = Path(cache_dir or default_cache_dir())
        self.path = cache_path(ds, size, cache_dir)
        shape = (len(ds.names), size, size, 3)
        if not self.path.exists():
            crop = crop or (lambda i: crop_face(decode(ds.root / IMAGE_DIR / ds.names[i]), size))
            cache_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path) as tmp:
                mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                for i in range(len(ds.names)):
                    mm[i] = crop(i)
                    if progress and i % 256 == 0:
                        progress(i, len(ds.names))
                mm.flush()
                del mm
        self.images = np.load(self.path, mmap_mode="r")
        if self.images.shape != shape:
            raise DataError(f"cache {self.path} has shape {self.images.shape}, expected {shape}; delete it")


@dataclass
class TrainingFaces:
    """The faces a run learns from: the train splits of one or more CelebA-layout folders, and the first
    folder's validation split (so figures stay comparable when train-only folders are added)."""
    attributes: list[str]
    images: np.ndarray          # (N, S, S, 3) uint8: a memmap for one folder, in memory for several
    labels: np.ndarray          # (N, A) float32 in {0, 1}
    train_idx: np.ndarray
    val_idx: np.ndarray
    folders: list[dict]         # per folder: path, faces, train faces (what a run records)


def load_training_faces(folders, attributes, size: int, cache_dir=None) -> TrainingFaces:
    """Read and crop every folder (each through its own ImageCache). Folders after the first may be train-only:
    their validation and test faces, if any, are not used."""
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    if not folders:
        raise DataError("no data folder given")
    chosen, images, labels, train, val, record, offset = None, [], [], [], None, [], 0
    for k, folder in enumerate(folders):
        ds = load_celeba(folder)
        try:
            names, lab = ds.select(attributes)
        except ValueError as e:  # an attribute this folder's labels lack: say which folder
            raise DataError(f"{folder}: {e}") from None
        if chosen is not None and names != chosen:
            raise DataError(f"{folder}: its labels name other attributes than {folders[0]}'s")
        chosen = names
        images.append(ImageCache(ds, size, cache_dir).images)
        labels.append(lab.astype(np.float32))
        train.append(ds.split_indices("train") + offset)
        if k == 0:
            val = ds.split_indices("val")
        record.append({"path": str(folder), "faces": len(ds.names), "train": int(len(train[-1]))})
        offset += len(ds.names)
    return TrainingFaces(chosen, images[0] if len(images) == 1 else np.concatenate(images),
                         np.concatenate(labels), np.concatenate(train), val, record)
