"""Where real faces sit in latent space, so `sample()` draws faces and not noise.

The latent is spatial (C x 8 x 8) and the KL weight small (reconstructions keep detail), so encodings of
real faces are far from N(0, I): decoding prior samples gives texture soup. A full-covariance Gaussian fit
to the encoder's means on training faces (ex-post density estimation, as in Ghosh et al. 2020) is a
distribution the decoder knows; what it draws are new faces, not any training person."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from faceedit.core.files import atomic_write_bytes, sha256_file

LATENT_FILE = "latent_prior.npz"


def fit_latent_prior(encoder, data_dir, size: int, out: Path, count: int = 4096, log=print) -> dict:
    """encoder: an ONNX Runtime session of encoder.onnx. Writes mean [D] and factor [D, D] (float16) such
    that z = mean + factor @ eps, eps ~ N(0, I), has the fitted covariance. Returns the manifest entry."""
    from faceedit.export.parity import load_faces
    faces, where = load_faces(data_dir, "train", count, size, seed=4)
    mus = np.concatenate([encoder.run(["mu"], {"image": faces[i:i + 256]})[0] for i in range(0, len(faces), 256)])
    flat = mus.reshape(len(mus), -1).astype(np.float64)
    mean = flat.mean(0)
    eigval, eigvec = np.linalg.eigh(np.cov(flat, rowvar=False))
    factor = eigvec * np.sqrt(np.clip(eigval, 0, None))
    buf = io.BytesIO()
    np.savez(buf, mean=mean.astype(np.float32), factor=factor.astype(np.float16))
    atomic_write_bytes(out, buf.getvalue())
    log(f"latent prior: Gaussian fit to the encoder means of {where}")
    return {"path": Path(out).name, "sha256": sha256_file(out), "bytes": Path(out).stat().st_size,
            "kind": "full-covariance Gaussian fit to encoder means (z = mean + factor @ eps)", "source": where}
