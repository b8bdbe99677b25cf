"""Real faces for export-time checks, ONNX Runtime vs PyTorch parity, and the accuracy figures that
decide whether a reduced-precision variant ships (attribute agreement, PSNR)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# fp32 ONNX Runtime vs PyTorch: the target, and the point past which the export is refused.
PARITY_TARGET = 1e-4
PARITY_LIMIT = 1e-3


def to_model_input(batch_u8: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW in [-1, 1], exactly the training/engine convention."""
    return np.ascontiguousarray(batch_u8.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0


def load_faces(data_dir, split: str, count: int, size: int, seed: int = 0, skip: int = 0):
    """`count` face crops (float32 NCHW) from a CelebA-layout folder's split, decoded directly (no
    full-dataset cache is built: export needs a few hundred images, not 200k). Returns (images, source
    description). Falls back to synthetic faces when the folder is missing or unusable."""
    from faceedit.train.data import IMAGE_DIR, DataError, crop_face, decode, load_celeba
    if data_dir:
        try:
            ds = load_celeba(data_dir)
            idx = ds.split_indices(split)
            if len(idx) == 0:  # tiny folders may lack a split: any image still beats synthetic faces
                idx = np.arange(len(ds.names))
            rng = np.random.default_rng(seed)
            idx = rng.permutation(idx)[skip:skip + count]
            crops = np.stack([crop_face(decode(ds.root / IMAGE_DIR / ds.names[i]), size) for i in idx])
            return to_model_input(crops), f"{len(idx)} {split} images from {ds.root}"
        except DataError:
            pass
    return synthetic_faces(count, size, seed + skip), f"{count} synthetic faces (no data folder)"


def synthetic_faces(count: int, size: int, seed: int = 0) -> np.ndarray:
    from faceedit.train.data import crop_face
    from faceedit.train.synth import draw_face, sample_attributes
    rng = np.random.default_rng(seed)
    crops = [crop_face(draw_face(sample_attributes(rng), rng, 178), size) for _ in range(count)]
    return to_model_input(np.stack(crops))


# ---- parity ----------------------------------------------------------------------------------------
def max_abs_error(ort_outputs, torch_outputs) -> float:
    """Max abs error over all outputs, scaled by max(1, |reference|) so outputs that leave [-1, 1]
    (logvar) are judged relative to their size; on [-1, 1] outputs this is the plain abs error."""
    worst = 0.0
    for a, b in zip(ort_outputs, torch_outputs):
        scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
        worst = max(worst, float(np.abs(a - b).max()) / scale if a.size else 0.0)
    return worst


def graph_inputs(name: str, images: np.ndarray, z: np.ndarray, n_attr: int, seed: int = 0) -> list[np.ndarray]:
    """Inputs for one graph from real images: decoder gets real latents and 0/1 attributes, the editor
    real images with random targets and masks (so edits, not only reconstructions, are compared)."""
    rng = np.random.default_rng(seed)
    n = len(images)
    rand01 = lambda: (rng.random((n, n_attr)) < 0.5).astype(np.float32)
    if name == "decoder":
        return [z, rand01()]
    if name == "editor":
        return [images, rand01(), rand01()]
    return [images]


def run_parity(sessions: dict, torch_modules: dict, images: np.ndarray, n_attr: int,
               batches=(1, 7)) -> dict:
    """ONNX Runtime (fp32 files) vs PyTorch (the unfolded eval model) per graph and batch size.

    The editor thresholds probabilities at 0.5; a probability within float error of 0.5 may land on
    the other side in the two runtimes. Such rows are compared using ONNX Runtime's decision (counted
    as `threshold_ties`), since the decoders are what parity is about."""
    import torch
    out = {}
    mu = sessions["encoder"].run(["mu"], {"image": images})[0]
    for b in batches:
        row = {}
        x, z = images[:b], mu[:b]
        ties = 0
        for name, sess in sessions.items():
            feeds = graph_inputs(name, x, z, n_attr, seed=b)
            got = sess.run(None, {i.name: v for i, v in zip(sess.get_inputs(), feeds)})
            with torch.no_grad():
                ref = torch_modules[name](*[torch.from_numpy(v) for v in feeds])
                ref = [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]
            if name == "editor":
                ref, t = _editor_reference(torch_modules[name], feeds, got[2], ref)
                ties += t
            row[name] = max_abs_error(got, ref)
        row["max_abs_error"] = max(row.values())
        row["threshold_ties"] = ties
        out[f"batch_{b}"] = row
    return out


def _editor_reference(module, feeds, ort_probs, ref):
    import torch
    disagree = ((ref[2] > 0.5) != (ort_probs > 0.5)).any(1)
    if not disagree.any():
        return ref, 0
    image, target, mask = (torch.from_numpy(v) for v in feeds)
    with torch.no_grad():
        mu, _ = module.encoder(image)
        source = torch.from_numpy((ort_probs > 0.5).astype(np.float32))
        y = mask * target + (1 - mask) * source
        edited, edit_mask = module.decoder(mu, y, with_mask=True)
        recon = module.decoder(mu, source).numpy()
    rows = disagree[:, None, None, None]
    ref = [np.where(rows, edited.numpy(), ref[0]), np.where(rows, recon, ref[1]), ref[2],
           *([np.where(rows, edit_mask.numpy(), ref[3])] if edit_mask is not None else [])]
    return ref, int(disagree.sum())


# ---- accuracy of a variant vs fp32 -------------------------------------------------------------------
def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), over the whole batch; capped at 120 dB so
    identical images give a finite, JSON-safe number."""
    mse = float(np.mean(((a.astype(np.float64) - b) / 2) ** 2))
    return round(float(10 * np.log10(1.0 / max(mse, 1e-12))), 3)


def agreement(p: np.ndarray, q: np.ndarray) -> float:
    """Fraction of thresholded attribute decisions (all faces x attributes) that agree."""
    return float(np.mean((p > 0.5) == (q > 0.5)))
