"""Fit a model directory's latent prior on the encoder means of training faces, and install it (`faceedit prior fit`).

The encoder is the model directory's own ONNX graph, run by the engine (no torch). Kinds (engine.prior reads
and draws them):

- gaussian: one full-covariance Gaussian over z (what `faceedit export` writes, on 4096 faces).
- gmm: codes projected on their top `dims` principal directions, a mixture of `components` full-covariance
  Gaussians there (EM from k-means), and the other directions one Gaussian with the codes' own variance along
  each. A single Gaussian over 1024 numbers puts mass between the clusters real codes form; the mixture does not.
- cgmm: the mixture made conditional on the 0/1 attributes y the decoder is given: p(k|y) a softmax over
  y, each component's mean moving linearly with y (a mixture of linear experts, refined by a few EM rounds on
  p(x|y)). Faces drawn for "male, mustache" come from where codes of such faces lie.

The fit reports the held-out log-likelihood per number of the first folder's validation faces' codes (higher is
better; the same measure for every kind) and how often the model's own attribute head reads each attribute as
asked on faces drawn with those faces' labels ("reads", kept in the manifest so the page can warn; `faceedit
eval` measures the same with the reporting judge, plus a two-sample test and KID).

install_prior writes the file under a new name (latent_prior-<sha256 prefix>.npz, temp file + rename), then the
manifest (atomically) pointing at it with its sha256, then removes the previous prior file: a reader sees the
old manifest and file or the new ones."""
from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceedit.core.files import atomic_write_bytes, sha256_file
from faceedit.engine.prior import KIND_TEXT, KINDS, LatentPrior, read_shares

ENCODE_BATCH = 256
VARIANCE_FLOOR = 1e-4  # held-out likelihoods: every variance gets this share of the mean variance (few-face fits)
VAL_FACES = 1000      # validation faces encoded for the held-out figures (the first folder's val split)


class PriorError(ValueError):
    """A fit that cannot run as asked; one line for the user."""


@dataclass
class Codes:
    """Encoder means of training faces and their labels, and the same for held-out faces."""
    z: np.ndarray           # [N, D] float32
    y: np.ndarray           # [N, A] uint8 0/1 labels, the model's attribute order
    val_z: np.ndarray       # [M, D]
    val_y: np.ndarray       # [M, A]
    source: str             # where they came from, in words


# ---- codes ------------------------------------------------------------------------------------------
def _folder_faces(folder, attributes, size: int, split: str, limit: int, seed: int):
    """(images [n, S, S, 3] uint8, labels [n, A], description) of a CelebA-layout folder's split: through the
    decoded-crop cache when it exists or every face is wanted, else the chosen faces decoded one by one."""
    from faceedit.train.data import IMAGE_DIR, DataError, ImageCache, cache_path, crop_face, decode, load_celeba
    try:
        ds = load_celeba(folder)
        names, labels = ds.select(attributes)
    except (DataError, ValueError) as e:
        raise PriorError(f"{folder}: {str(e).splitlines()[0]}") from None
    idx = ds.split_indices(split)
    if limit and len(idx) > limit:
        idx = np.sort(np.random.default_rng(seed).permutation(idx)[:limit])
    if not len(idx):
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, len(attributes)), np.uint8), ""
    if limit and not cache_path(ds, size).exists():
        images = np.stack([crop_face(decode(ds.root / IMAGE_DIR / ds.names[i]), size) for i in idx])
    else:
        images = ImageCache(ds, size).images[idx]
    return images, labels[idx].astype(np.uint8), f"{len(idx)} {split} faces of {ds.root}"


def _encode(editor, images: np.ndarray, log) -> np.ndarray:
    from faceedit.engine import tensors
    out = []
    for s in range(0, len(images), ENCODE_BATCH):
        x = tensors.to_tensor(list(images[s:s + ENCODE_BATCH]), editor.size)
        out.append(editor.run_encoder(x).reshape(len(x), -1).astype(np.float32))
        if (s // ENCODE_BATCH) % 20 == 19:
            log(f"  encoded {s + len(x)}/{len(images)}")
    return np.concatenate(out) if out else np.zeros((0, int(np.prod(editor.model.z_shape))), np.float32)


def _codes_key(editor, folders, limit, seed) -> str:
    return json.dumps({"encoder": editor.model.graphs["encoder"]["fp32"]["sha256"], "folders": [str(Path(f).resolve()) for f in folders],
                       "attributes": editor.attribute_names, "limit": limit, "seed": seed, "val": VAL_FACES})


def encode_codes(editor, folders, limit: int = 0, seed: int = 0, cache=None, log=print) -> Codes:
    """The encoder means of every folder's train split (limit: at most that many faces of each, chosen at random)
    and of the first folder's validation split (up to VAL_FACES). cache: an .npz file that keeps them (codes of
    CelebA faces: keep it outside the repository) and is reused while the encoder, folders and limit match."""
    key = _codes_key(editor, folders, limit, seed)
    if cache is not None and Path(cache).is_file():
        try:
            with np.load(cache, allow_pickle=False) as f:
                if str(f["key"]) == key:
                    log(f"codes from {cache}")
                    return Codes(f["z"].astype(np.float32), f["y"], f["val_z"].astype(np.float32), f["val_y"], str(f["source"]))
        except Exception:  # unreadable or another layout: encode again
            pass
    zs, ys, said, t0 = [], [], [], time.time()
    for folder in folders:
        images, labels, where = _folder_faces(folder, editor.attribute_names, editor.size, "train", limit, seed)
        if not len(images):
            raise PriorError(f"{folder} has no train-split faces")
        log(f"encoding {where}")
        zs.append(_encode(editor, images, log))
        ys.append(labels)
        said.append(where)
    images, val_y, where = _folder_faces(folders[0], editor.attribute_names, editor.size, "val", VAL_FACES, seed)
    val_z = _encode(editor, images, log)
    if where:
        said.append(f"held out: {where}")
    codes = Codes(np.concatenate(zs), np.concatenate(ys), val_z, val_y, "; ".join(said))
    log(f"encoded {len(codes.z)} + {len(val_z)} faces in {time.time() - t0:.0f} s")
    if cache is not None:
        buf = io.BytesIO()
        np.savez(buf, key=np.array(key), z=codes.z.astype(np.float16), y=codes.y, val_z=codes.val_z.astype(np.float16),
                 val_y=codes.val_y, source=np.array(codes.source))
        atomic_write_bytes(cache, buf.getvalue())
        log(f"wrote {cache}")
    return codes


# ---- fits ------------------------------------------------------------------------------------------
def _gauss_logpdf(x: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """log N(x; mean, chol chol^T) for rows of x [N, d]."""
    inv = np.linalg.inv(chol)
    u = (x - mean) @ inv.T
    return -0.5 * ((u * u).sum(1) + 2 * np.log(np.abs(np.diag(chol))).sum() + x.shape[1] * math.log(2 * math.pi))


def _logsumexp(a: np.ndarray) -> np.ndarray:
    m = a.max(1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(1, keepdims=True)))[:, 0]


def _kmeans(x: np.ndarray, k: int, rng, iters: int = 12) -> np.ndarray:
    """Centres by k-means++ seeding on up to 4096 rows, then Lloyd's rounds on all rows."""
    sub = x[rng.choice(len(x), min(len(x), 4096), replace=False)]
    centres = [sub[rng.integers(len(sub))]]
    d2 = ((sub - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(sub[rng.choice(len(sub), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((sub - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iters):
        lab = (-2 * x @ c.T + (c * c).sum(1)).argmin(1)
        for j in range(k):
            if (lab == j).any():
                c[j] = x[lab == j].mean(0)
    return c


class Mixture:
    """A mixture of full-covariance Gaussians over x [N, d], optionally of linear experts conditional on y
    [N, A]: component k has probability softmax(gate @ y + gate_bias)_k and mean means[k] + regress[k] @
    (y - y_center[k]), covariance chol[k] chol[k]^T."""

    def __init__(self, k: int, d: int, a: int):
        self.gate, self.gate_bias = np.zeros((k, a)), np.full(k, -math.log(k))
        self.means, self.chol = np.zeros((k, d)), np.tile(np.eye(d), (k, 1, 1))
        self.regress, self.y_center = np.zeros((k, d, a)), np.zeros((k, a))

    def log_joint(self, x, y=None) -> np.ndarray:
        """[N, K] log p(k | y) + log p(x | k, y) (y None: the unconditional mixture)."""
        logits = np.broadcast_to(self.gate_bias, (len(x), len(self.gate_bias))) if y is None else y @ self.gate.T + self.gate_bias
        logits = logits - _logsumexp(logits)[:, None]
        out = np.empty((len(x), len(self.means)))
        for j in range(len(self.means)):
            mu = self.means[j] if y is None else self.means[j] + (y - self.y_center[j]) @ self.regress[j].T
            out[:, j] = logits[:, j] + _gauss_logpdf(x, mu, self.chol[j])
        return out

    def loglik(self, x, y=None) -> float:
        return float(_logsumexp(self.log_joint(x, y)).mean())

    def m_step(self, x, resp, reg: float, y=None, ridge: float = 1.0, pool=None, shrink: float = 0.0):
        """Means (and regressions on y), covariances from responsibilities [N, K]; weights when unconditional.
        Each covariance is pulled towards pool (the codes' own covariance) as if it had `shrink` more faces
        drawn from it (a conjugate prior's MAP): a component with few faces in many dimensions stays sane."""
        nk = resp.sum(0) + 1e-10
        d = x.shape[1]
        for j in range(len(nk)):
            w = resp[:, j]
            mu = w @ x / nk[j]
            xc = x - mu
            if y is not None:
                yc_mean = w @ y / nk[j]
                yc = y - yc_mean
                cyy = (yc * w[:, None]).T @ yc + ridge * np.eye(y.shape[1])
                cxy = (xc * w[:, None]).T @ yc
                self.regress[j] = np.linalg.solve(cyy, cxy.T).T
                self.y_center[j] = yc_mean
                xc = xc - yc @ self.regress[j].T
            cov = (xc * w[:, None]).T @ xc
            cov = (cov + shrink * pool) / (nk[j] + shrink) if shrink else cov / nk[j]
            cov += reg * np.eye(d)
            self.means[j], self.chol[j] = mu, np.linalg.cholesky(cov)
        if y is None:
            self.gate_bias = np.log(nk / nk.sum())

    def fit_gate(self, y, resp, iters: int = 300, l2: float = 1e-3):
        """p(k | y) = softmax(gate @ y + gate_bias) to the responsibilities: full-batch gradient descent on the
        cross-entropy (Adam steps), from the current values."""
        w = np.concatenate([self.gate, self.gate_bias[:, None]], 1)
        yb = np.concatenate([y, np.ones((len(y), 1))], 1)
        m, v = np.zeros_like(w), np.zeros_like(w)
        for t in range(1, iters + 1):
            logits = yb @ w.T
            p = np.exp(logits - _logsumexp(logits)[:, None])
            g = (p - resp).T @ yb / len(y) + l2 * np.concatenate([w[:, :-1], np.zeros((len(w), 1))], 1)
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            w -= 0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        self.gate, self.gate_bias = w[:, :-1], w[:, -1]


def fit_gaussian(z: np.ndarray) -> dict:
    """The full-covariance Gaussian: mean [D] and factor [D, D] with factor factor^T = the codes' covariance."""
    z = np.asarray(z, np.float64)
    eigval, eigvec = np.linalg.eigh(np.cov(z, rowvar=False))
    return {"mean": z.mean(0), "factor": eigvec * np.sqrt(np.clip(eigval, 0, None))}


def fit_mixture(codes: Codes, kind: str, components: int, dims: int, seed: int = 0, iters: int = 60,
                tol: float = 1e-4, shrink: float | None = None, log=print) -> tuple[dict, dict]:
    """A gmm or cgmm prior's arrays and what the fit did (iterations, held-out log-likelihoods). shrink: faces'
    worth of the codes' own covariance each component's covariance is pulled towards (None: dims)."""
    z = np.asarray(codes.z, np.float64)
    n, dim = z.shape
    dims = min(dims, dim, n - 1)
    if components < 1 or components * 8 > n:
        raise PriorError(f"--components {components}: needs 1..{n // 8} for {n} faces (at least 8 faces per component)")
    mean = z.mean(0)
    eigval, eigvec = np.linalg.eigh(np.cov(z, rowvar=False))
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
    basis, rest = eigvec[:, :dims], eigvec[:, dims:] * np.sqrt(eigval[dims:])
    explained = float(eigval[:dims].sum() / eigval.sum())
    log(f"principal directions: {dims} of {dim} hold {explained:.1%} of the codes' variance")
    x = (z - mean) @ basis
    y = codes.y.astype(np.float64) if kind == "cgmm" else None
    reg = 1e-3 * float(eigval[:dims].mean())
    shrink = float(dims if shrink is None else shrink)
    m_step = lambda resp, y=None: mix.m_step(x, resp, reg, y, pool=np.diag(eigval[:dims]), shrink=shrink)
    rng = np.random.default_rng(seed)
    mix = Mixture(components, dims, codes.y.shape[1])
    centres = _kmeans(x, components, rng)
    resp = np.eye(components)[(-2 * x @ centres.T + (centres * centres).sum(1)).argmin(1)]
    m_step(resp)
    prev, t0, it = -np.inf, time.time(), 0
    for it in range(1, iters + 1):  # EM on the unconditional mixture
        lj = mix.log_joint(x)
        ll = float(_logsumexp(lj).mean())
        resp = np.exp(lj - _logsumexp(lj)[:, None])
        m_step(resp)
        if it % 10 == 0:
            log(f"  EM {it}: log-likelihood {ll / dims:.4f} per principal number ({time.time() - t0:.0f} s)")
        if abs(ll - prev) < tol * abs(ll):
            break
        prev = ll
    rounds = 0
    if kind == "cgmm":  # the same mixture made conditional: gate on y, means moving with y, a few EM rounds
        mix.fit_gate(y, resp)
        for rounds in range(1, 9):
            m_step(resp, y)
            mix.fit_gate(y, resp, iters=100)
            lj = mix.log_joint(x, y)
            resp = np.exp(lj - _logsumexp(lj)[:, None])
        log(f"  conditional: {rounds} rounds, log-likelihood {mix.loglik(x, y) / dims:.4f} per principal number")
    arrays = {"mean": mean, "basis": basis, "rest": rest, "gate": mix.gate, "gate_bias": mix.gate_bias,
              "means": mix.means, "factors": mix.chol, "regress": mix.regress, "y_center": mix.y_center}
    fitted = {"components": components, "dims": dims, "variance_in_dims": round(explained, 4), "shrink": shrink,
              "em_iterations": it,
              "conditional_rounds": rounds, "seconds": round(time.time() - t0, 1)}
    return arrays, fitted


def heldout_loglik(prior: LatentPrior, z: np.ndarray, y: np.ndarray) -> float | None:
    """Mean log-likelihood per number of held-out codes z [M, D] under the prior at temperature 1 (given their
    labels y for a cgmm); None without held-out codes."""
    if not len(z):
        return None
    z, a = np.asarray(z, np.float64), prior.arrays
    dim = z.shape[1]
    if prior.kind == "gaussian":
        f = a["factor"]
        cov = f @ f.T
        cov += VARIANCE_FLOOR * np.trace(cov) / dim * np.eye(dim)
        return float(_gauss_logpdf(z, a["mean"], np.linalg.cholesky(cov)).mean() / dim)
    mix = Mixture(*a["means"].shape, a["gate"].shape[1])
    mix.gate, mix.gate_bias, mix.means, mix.chol = a["gate"], a["gate_bias"], a["means"], a["factors"]
    mix.regress, mix.y_center = a["regress"], a["y_center"]
    zc = z - a["mean"]
    top = mix.log_joint(zc @ a["basis"], np.asarray(y, np.float64) if prior.kind == "cgmm" else None)
    # the rest's columns are orthogonal directions times their standard deviation; all variances floored alike
    var = (a["rest"] ** 2).sum(0)
    total = var.sum() + sum(np.trace(c @ c.T) for c in a["factors"]) / len(a["factors"])
    floor = VARIANCE_FLOOR * total / dim
    r = (zc @ a["rest"]) / np.maximum(var, 1e-30) ** 0.5
    var_f = var + floor
    rest = -0.5 * ((r * r * var / var_f).sum(1) + np.log(var_f).sum() + len(var) * math.log(2 * math.pi))
    return float((_logsumexp(top) + rest).mean() / dim)


def prior_file(kind: str, arrays: dict, temperature: float, attributes) -> bytes:
    """The .npz bytes engine.prior reads (float16 for the big factors, as the export's Gaussian has always been)."""
    half = {"factor", "rest", "factors"}
    out = {k: np.asarray(v, np.float16 if k in half else np.float32) for k, v in arrays.items()}
    buf = io.BytesIO()
    np.savez(buf, kind=np.array(kind), version=np.array(1), temperature=np.array(temperature, np.float32),
             attributes=np.array(list(attributes), dtype=str), **out)
    return buf.getvalue()


def read_with_head(editor, prior: LatentPrior, labels: np.ndarray, seed: int = 0) -> dict:
    """Draw one face per label row [M, A] from `prior` and read it with the model's attribute head: per
    attribute, the share of faces drawn with it on (off) that the head reads on (off)."""
    from faceedit.engine import tensors
    names = editor.attribute_names
    requests = [{n: float(v) for n, v in zip(names, row)} for row in labels]
    editor.use_prior(prior)
    images = editor.sample_rows(requests, seed)
    read = editor.run_attributes(tensors.to_tensor(list(images), editor.size)) > 0.5
    return {"by": "the model's attribute head", "faces": int(len(labels)), "seed": seed,
            "per_attribute": read_shares(read, labels.astype(bool), names)}


# ---- the command's work ------------------------------------------------------------------------------
def fit_prior(model_dir, folders, kind: str, out=None, install: bool = False, components: int = 32, dims: int = 128,
              temperature: float = 1.0, limit: int = 0, seed: int = 0, codes_cache=None, command: str = "",
              log=print) -> dict:
    """Encode the folders' train faces with the model directory's encoder, fit a prior of `kind`, write it to
    `out` and/or install it into the model directory. Returns its manifest entry."""
    from faceedit.engine import Editor
    if kind not in KINDS:
        raise PriorError(f"--kind must be one of {', '.join(KINDS)}, got '{kind}'")
    if not (0 < temperature <= 2):
        raise PriorError(f"--temperature must be within 0..2 (above 0), got {temperature:g}")
    if not folders:
        raise PriorError("no --data folder given")
    if out is None and not install:
        raise PriorError("nowhere to put the prior: give --out FILE and/or --install")
    editor = Editor.load(model_dir, backend="onnxruntime", precision="fp32")
    codes = encode_codes(editor, list(folders), limit, seed, codes_cache, log)
    if len(codes.z) < 16:
        raise PriorError(f"only {len(codes.z)} training faces: too few to fit a prior")
    t0 = time.time()
    if kind == "gaussian":
        arrays, fitted = fit_gaussian(codes.z), {}
    else:
        arrays, fitted = fit_mixture(codes, kind, components, dims, seed, log=log)
    data = prior_file(kind, arrays, temperature, editor.attribute_names)
    prior = LatentPrior.from_bytes(data, int(np.prod(editor.model.z_shape)), tuple(editor.attribute_names))
    ll = heldout_loglik(prior, codes.val_z, codes.val_y)
    fitted = {**fitted, "fit_seconds": round(time.time() - t0, 1),
              "heldout_loglik_per_number": None if ll is None else round(ll, 4), "heldout_faces": int(len(codes.val_z))}
    log(f"{kind} prior fitted in {fitted['fit_seconds']:.0f} s"
        + ("" if ll is None else f"; held-out log-likelihood {ll:.4f} per latent number ({len(codes.val_z)} faces)"))
    import hashlib
    entry = {"path": "", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "kind": kind,
             "temperature": temperature, "meaning": KIND_TEXT[kind], "source": codes.source, "fitted": fitted}
    if len(codes.val_y):
        entry["reads"] = read_with_head(editor, prior, codes.val_y, seed)
        bal = np.mean([v["balanced"] for v in entry["reads"]["per_attribute"].values() if v["balanced"] is not None])
        log(f"the model's attribute head reads the attributes asked for on drawn faces: {bal:.1%} balanced, mean of "
            f"{len(editor.attribute_names)} ({len(codes.val_y)} faces drawn with held-out faces' labels)")
    if command:
        entry["command"] = command
    if out is not None:
        atomic_write_bytes(out, data)
        entry["path"] = Path(out).name
        log(f"wrote {out}")
    if install:
        entry = install_prior(model_dir, data, entry, log)
    return entry


def set_temperature(model_dir, temperature: float, why: str = "", log=print) -> dict:
    """The model directory's prior again, the same arrays, with another default sampling temperature (what
    `faceedit sample`, /v1/samples and the page draw at): a new file installed like a fit's. The arrays are
    written as they were read (float16 factors stay float16), so its faces are those the old file draws at
    that temperature."""
    from faceedit.core.model_dir import ModelInfo
    from faceedit.engine.prior import load_for
    if not (0 < temperature <= 2):
        raise PriorError(f"--temperature must be within 0..2 (above 0), got {temperature:g}")
    info = ModelInfo.load(model_dir)
    prior = load_for(info)
    if prior.kind == "none":
        raise PriorError(f"{model_dir} has no latent prior to set a temperature on (fit one: faceedit prior fit)")
    entry = {k: v for k, v in (info.manifest.get("latent_prior") or {}).items() if k not in ("path", "sha256", "bytes")}
    entry["temperature"] = float(temperature)
    if why:
        entry["temperature_chosen"] = why
    data = prior_file(prior.kind, prior.arrays, temperature, prior.attributes or tuple(info.attribute_names))
    return install_prior(model_dir, data, entry, log)


def install_prior(model_dir, data: bytes, entry: dict, log=print) -> dict:
    """Put prior file bytes into a model directory: the file under a new name (temp + rename), the manifest
    pointing at it (atomic), then the previous prior file removed. The engine's reader checks the result."""
    import hashlib

    from faceedit.core.manifest import write_manifest
    from faceedit.core.model_dir import ModelInfo
    model_dir = Path(model_dir)
    manifest = ModelInfo.load(model_dir).manifest
    sha = hashlib.sha256(data).hexdigest()
    name = f"latent_prior-{sha[:12]}.npz"
    atomic_write_bytes(model_dir / name, data)
    old = (manifest.get("latent_prior") or {}).get("path")
    manifest["latent_prior"] = {**entry, "path": name, "sha256": sha_check(model_dir / name, sha), "bytes": len(data)}
    write_manifest(model_dir, manifest)
    if old and old != name and (model_dir / old).is_file():
        (model_dir / old).unlink()
    info = ModelInfo.load(model_dir)
    from faceedit.engine.prior import load_for
    load_for(info)  # the engine's reader accepts what was written
    log(f"installed {name} into {model_dir} (manifest updated)")
    return manifest["latent_prior"]


def sha_check(path: Path, sha: str) -> str:
    """The file's sha256, which must be `sha` (the bytes written): a disk that lost them fails here."""
    got = sha256_file(path)
    if got != sha:
        raise PriorError(f"{path}: written bytes do not read back (sha256 differs)")
    return got
