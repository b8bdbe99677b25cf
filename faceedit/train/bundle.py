"""Pack training data and a checkpoint small enough to carry to another machine (a rented GPU), and unpack
them there.

- Data: the face crops training reads, not the original photos, WebP-coded at high quality (`quality`),
  with label files cut down to the packed faces, so the bundle is itself a small CelebA-layout folder. Its
  crops are written straight into the ImageCache that `Trainer` reads, so no photo is needed there. (A
  CelebA bundle's size and fidelity: docs/training-log.md, "Training on a GPU".)
- Checkpoint: fp16 weights without optimizer state ("slim"). Training resumes from it with fresh Adam
  moments; eval and export load it like any checkpoint (a generator-only one too).

  faceedit train bundle pack-data --data ../shared/celeba --out gpu/data
  faceedit train bundle unpack-data --bundle gpu/data
  faceedit train bundle slim --checkpoint runs/x/best.pt --out gpu/start.pt [--generator-only]
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceedit.core.files import atomic_path, atomic_write_bytes
from faceedit.train.data import ATTR_FILE, IDENTITY_FILE, PARTITION_FILE, DataError, ImageCache, load_celeba
from faceedit.train.model import GENERATOR_PARTS

CROPS_FILE = "crops-{size}.npz"


def pack_data(data, out, size: int = 64, max_val: int = 256, quality: int = 97, cache_dir=None) -> int:
    """The train split and the first max_val validation faces of `data`, as a bundle folder. Returns the count."""
    ds = load_celeba(data)
    images = ImageCache(ds, size, cache_dir).images
    keep = np.concatenate([ds.split_indices("train"), ds.split_indices("val")[:max_val]])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    coded = []
    for i in keep:
        ok, buf = cv2.imencode(".webp", cv2.cvtColor(np.asarray(images[i]), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise DataError("this OpenCV cannot write WebP")
        coded.append(buf.tobytes())
    offsets = np.cumsum([0] + [len(c) for c in coded]).astype(np.int64)
    with atomic_path(out / CROPS_FILE.format(size=size)) as tmp:
        np.savez(tmp, size=np.int64(size), offsets=offsets, blob=np.frombuffer(b"".join(coded), np.uint8))
    # label files of the packed faces only, in the packed order
    header = " ".join(ds.all_attributes)
    rows = [f"{ds.names[i]} " + " ".join("1" if v else "-1" for v in ds.labels[i]) for i in keep]
    atomic_write_bytes(out / ATTR_FILE, (f"{len(keep)}\n{header}\n" + "\n".join(rows) + "\n").encode())
    atomic_write_bytes(out / PARTITION_FILE, "".join(f"{ds.names[i]} {ds.partition[i]}\n" for i in keep).encode())
    if ds.identity is not None:
        atomic_write_bytes(out / IDENTITY_FILE, "".join(f"{ds.names[i]} {ds.identity[i]}\n" for i in keep).encode())
    return len(keep)


def unpack_data(bundle, cache_dir=None) -> Path:
    """Decode a bundle's crops into the ImageCache of the bundle folder; returns the cache file."""
    bundle = Path(bundle)
    ds = load_celeba(bundle)
    packed = sorted(bundle.glob(CROPS_FILE.format(size="*")))
    if not packed:
        raise DataError(f"no {CROPS_FILE.format(size='N')} in {bundle}")
    with np.load(packed[0]) as z:
        size, offsets, blob = int(z["size"]), z["offsets"], z["blob"]
    if len(offsets) - 1 != len(ds.names):
        raise DataError(f"{packed[0].name} holds {len(offsets) - 1} crops but the labels list {len(ds.names)}")

    def crop(i):
        img = cv2.imdecode(blob[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
        if img is None or img.shape != (size, size, 3):
            raise DataError(f"crop {i} of {packed[0].name} does not decode to {size}x{size}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return ImageCache(ds, size, cache_dir, crop=crop).path


def slim_checkpoint(src, dst, generator_only: bool = False):
    """fp16 weights, no optimizer state: what a GPU run starts from or sends back."""
    import torch

    from faceedit.train.checkpoint import FORMAT, atomic_save
    state = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{src} is not a faceedit checkpoint")
    keep = GENERATOR_PARTS if generator_only else GENERATOR_PARTS + ("discriminator.",)
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items() if k.startswith(keep)}
    slim = {k: state[k] for k in ("format", "config", "model_config", "step", "best", "best_by", "metrics") if k in state}
    slim["model"] = weights
    atomic_save(slim, Path(dst))
