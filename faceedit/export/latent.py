"""Where real faces sit in latent space, so `sample()` draws faces and not noise.

The latent is spatial (C x 8 x 8) and the KL weight small (reconstructions keep detail), so encodings of
real faces are far from N(0, I): decoding prior samples gives texture soup. A full-covariance Gaussian fit
to the encoder's means on training faces (ex-post density estimation, as in Ghosh et al. 2020) is a
distribution the decoder knows; what it draws are new faces, not any training person. `faceedit prior fit`
(export/prior.py) refits it on more faces, or fits a mixture (gmm, cgmm) in its place."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from faceedit.core.files import atomic_write_bytes, sha256_file

LATENT_FILE = "latent_prior.npz"


def fit_latent_prior(encoder, data_dir, size: int, out: Path, count: int = 4096, log=print) -> dict:
    """encoder: an ONNX Runtime session of encoder.onnx. Writes a "gaussian" prior file (engine.prior: mean [D] and
    factor [D, D] float16 such that z = mean + factor @ eps, eps ~ N(0, I), has the fitted covariance) through
    export.prior, as `faceedit prior fit --kind gaussian` does. Returns the manifest entry."""
    from faceedit.engine.prior import KIND_TEXT
    from faceedit.export.parity import load_faces
    from faceedit.export.prior import fit_gaussian, prior_file
    faces, where = load_faces(data_dir, "train", count, size, seed=4)
    mus = np.concatenate([encoder.run(["mu"], {"image": faces[i:i + 256]})[0] for i in range(0, len(faces), 256)])
    atomic_write_bytes(out, prior_file("gaussian", fit_gaussian(mus.reshape(len(mus), -1)), 1.0, ()))
    log(f"latent prior: Gaussian fit to the encoder means of {where}")
    return {"path": Path(out).name, "sha256": sha256_file(out), "bytes": Path(out).stat().st_size,
            "kind": "gaussian", "temperature": 1.0, "meaning": KIND_TEXT["gaussian"], "source": where}
