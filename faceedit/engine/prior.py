"""Where new faces' latents come from: the model directory's latent prior, read, checked and drawn from (numpy).

The prior file is an array file (.npz, no pickles) listed in the manifest's "latent_prior" entry with its sha256,
which is checked here whenever the file is read (not only when the manifest is verified). Kinds:

- "gaussian": one full-covariance Gaussian over the flattened latent z (D = C x 8 x 8 numbers): z = mean +
  T * factor @ eps. Files written before kinds existed hold only mean and factor and are this kind.
- "gmm": a mixture of Gaussians in the top d principal directions of the training codes, plus one Gaussian
  (the codes' own variance along each direction) on the remaining D - d directions:
  z = mean + basis @ x + T * rest @ eps_rest, with x ~ component k: means[k] + T * factors[k] @ eps.
- "cgmm": the same mixture, conditional on the attributes y the decoder is given (p(z|y)): the component's
  probability is softmax(gate @ y + gate_bias), its mean shifts by regress[k] @ (y - y_center[k]).

T is the sampling temperature (the file's own default, or the caller's): below 1 draws nearer the dense middle
of each component, where the decoder saw most faces. A row's latent depends only on the seed, its position
and its attributes (one block of normals per row, drawn in row order), so the first n of 2n faces are the n
faces and a seed gives the same latents on every backend. faceedit.export.prior fits and installs these files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceedit.core.files import sha256_file
from faceedit.engine.errors import EngineError, ModelError

KINDS = ("gaussian", "gmm", "cgmm")
KIND_TEXT = {"gaussian": "one full-covariance Gaussian over z",
             "gmm": "a mixture of Gaussians over z (principal directions), unconditional",
             "cgmm": "a mixture of Gaussians over z conditional on the attributes asked for (p(z|y))",
             "none": "N(0, I): the model directory has no latent prior"}
MIXTURE_ARRAYS = ("mean", "basis", "rest", "gate", "gate_bias", "means", "factors", "regress", "y_center")
WEAK_READ = 0.5   # a requested value that the samples drawn for it show less often than this is drawn badly


@dataclass
class LatentPrior:
    """A prior read from its file: kind, default temperature, the arrays it draws with."""
    kind: str
    temperature: float
    arrays: dict
    path: Path | None = None
    sha256: str = ""
    attributes: tuple = ()

    @classmethod
    def none(cls, dim: int) -> "LatentPrior":
        """N(0, I) over dim numbers: what a model directory without a prior draws from."""
        return cls("none", 1.0, {"dim": dim})

    @classmethod
    def load(cls, path, sha256: str | None, z_dim: int, attributes=()) -> "LatentPrior":
        """Read and check a prior file: its sha256 against the manifest's (when given), its kind, its arrays'
        shapes against the latent size z_dim and the model's attributes. ModelError (one line) otherwise."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"latent prior {path.name} listed in the manifest is missing from {path.parent}")
        if sha256 is not None and sha256_file(path) != sha256:
            raise ModelError(f"latent prior {path} does not match its manifest (sha256 differs): the model "
                             "directory is damaged or was edited; refit it (`faceedit prior fit ... --install`)")
        return cls._read(path, z_dim, tuple(attributes), path, sha256 or "")

    @classmethod
    def from_bytes(cls, data: bytes, z_dim: int, attributes=()) -> "LatentPrior":
        """A prior from a file's bytes (a fit checks what it is about to write)."""
        import io
        return cls._read(io.BytesIO(data), z_dim, tuple(attributes), None, "")

    @classmethod
    def _read(cls, source, z_dim: int, attributes: tuple, path, sha256: str) -> "LatentPrior":
        try:
            with np.load(source, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except Exception as e:  # not an array file, truncated, pickled objects
            raise ModelError(f"latent prior {path or ''} cannot be read: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}") from None
        kind = str(arrays.pop("kind", "gaussian"))
        temperature = float(arrays.pop("temperature", 1.0))
        names = tuple(str(a) for a in arrays.pop("attributes", ()))
        arrays.pop("version", None)
        prior = cls(kind, temperature, arrays, path, sha256, names)
        prior._check(z_dim, attributes)
        return prior

    def _check(self, z_dim: int, attributes: tuple):
        bad = lambda why: ModelError(f"latent prior {self.path}: {why}")
        if self.kind not in KINDS:
            raise bad(f"unknown kind {self.kind!r} (this faceedit draws from {', '.join(KINDS)})")
        if not (math.isfinite(self.temperature) and 0 < self.temperature <= 2):
            raise bad(f"temperature {self.temperature} outside 0..2")
        a = self.arrays
        need = ("mean", "factor") if self.kind == "gaussian" else MIXTURE_ARRAYS
        missing = [k for k in need if k not in a]
        if missing:
            raise bad(f"a {self.kind} prior without {', '.join(missing)}")
        self.arrays = a = {k: np.asarray(a[k], np.float64) for k in need}
        if a["mean"].shape != (z_dim,):
            raise bad(f"mean has shape {a['mean'].shape}, the model's latent has {z_dim} numbers")
        if self.kind == "gaussian":
            if a["factor"].shape != (z_dim, z_dim):
                raise bad(f"factor has shape {a['factor'].shape}, expected ({z_dim}, {z_dim})")
        else:
            k, d = a["means"].shape
            n_attr = a["gate"].shape[1] if a["gate"].ndim == 2 else -1
            shapes = {"basis": (z_dim, d), "gate": (k, n_attr), "gate_bias": (k,), "factors": (k, d, d),
                      "regress": (k, d, n_attr), "y_center": (k, n_attr)}
            wrong = [f"{n} {a[n].shape} (expected {s})" for n, s in shapes.items() if a[n].shape != s]
            if a["rest"].ndim != 2 or a["rest"].shape[0] != z_dim or a["rest"].shape[1] + d > z_dim:
                wrong.append(f"rest {a['rest'].shape}")
            if wrong:
                raise bad("arrays of the wrong shape: " + "; ".join(wrong))
            if attributes and self.attributes and tuple(self.attributes) != attributes:
                raise bad("fitted for other attributes than this model's: " + ", ".join(self.attributes))
            if attributes and n_attr != len(attributes):
                raise bad(f"conditions on {n_attr} attributes, the model has {len(attributes)}")
        if not all(np.isfinite(v).all() for v in a.values()):
            raise bad("holds NaN or infinite numbers")

    @property
    def components(self) -> int:
        return int(self.arrays["means"].shape[0]) if self.kind in ("gmm", "cgmm") else 1

    def describe(self, temperature: float | None = None) -> dict:
        """What the page and the API say about how samples were drawn."""
        t = self.temperature if temperature is None else float(temperature)
        out = {"kind": self.kind, "temperature": round(t, 4), "meaning": KIND_TEXT[self.kind]}
        if self.kind in ("gmm", "cgmm"):
            out["components"] = self.components
        if self.sha256:
            out["sha256"] = self.sha256
        return out

    def draw(self, n: int, seed: int | None = None, conditions: np.ndarray | None = None,
             temperature: float | None = None) -> np.ndarray:
        """n latents [n, D] float64. conditions: [n, A] the attributes each row's decoder is given (0/1; a cgmm
        prior conditions on them, the others ignore them). temperature: None for the file's own."""
        t = self.temperature if temperature is None else float(temperature)
        if not (math.isfinite(t) and 0 < t <= 2):
            raise EngineError(f"sampling temperature must be within 0..2 (above 0), got {t:g}")
        rng = np.random.default_rng(seed)
        if self.kind == "none":
            return rng.standard_normal((n, self.arrays["dim"]))
        a = self.arrays
        if self.kind == "gaussian":  # as every release before kinds: one (n, D) block, so old seeds keep their faces
            eps = rng.standard_normal((n, len(a["mean"])))
            return a["mean"] + t * (eps @ a["factor"].T)
        d, dim = a["basis"].shape[1], a["mean"].shape[0]
        eps = rng.standard_normal((n, 1 + d + a["rest"].shape[1]))  # per row: the component, its noise, the rest
        u = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in eps[:, 0]])  # a uniform from the first normal
        logits = np.broadcast_to(a["gate_bias"], (n, len(a["gate_bias"]))).copy()
        y = None
        if self.kind == "cgmm":
            if conditions is None:
                raise EngineError("a conditional prior (cgmm) needs the attributes each face is drawn with")
            y = np.asarray(conditions, np.float64).reshape(n, -1)
            logits += y @ a["gate"].T
        p = np.exp(logits - logits.max(1, keepdims=True))
        cum = np.cumsum(p / p.sum(1, keepdims=True), 1)
        comp = np.minimum((cum < u[:, None]).sum(1), cum.shape[1] - 1)
        x = a["means"][comp] + t * np.einsum("nij,nj->ni", a["factors"][comp], eps[:, 1:1 + d])
        if y is not None:
            x += np.einsum("nij,nj->ni", a["regress"][comp], y - a["y_center"][comp])
        z = a["mean"] + x @ a["basis"].T + t * (eps[:, 1 + d:] @ a["rest"].T)
        assert z.shape == (n, dim)
        return z


def fresh_seed() -> int:
    """A seed for a caller that gave none, so that it can say which one was used (and the faces be drawn again)."""
    import secrets
    return secrets.randbelow(2 ** 31)


def load_for(model) -> LatentPrior:
    """The prior of a ModelInfo: its manifest's "latent_prior" file (sha256 checked), else N(0, I)."""
    dim = int(np.prod(model.z_shape))
    entry = (model.manifest or {}).get("latent_prior") or {}
    if not entry.get("path"):
        return LatentPrior.none(dim)
    return LatentPrior.load(Path(model.path) / entry["path"], entry.get("sha256"), dim, tuple(model.attribute_names))


def read_rates(manifest: dict, prior: LatentPrior) -> dict | None:
    """Per attribute {"on": share, "off": share}: how often samples drawn with an attribute on (off) show it on
    (off), as measured for this very prior file: a `faceedit eval` summary in the manifest ("eval", its
    samples_prior_sha256 equal to the prior's), else the fit's own reading by the model's attribute head
    ("latent_prior" "reads"). With it, "by": who read them. None when neither is there."""
    ev = manifest.get("eval") or {}
    rates = ev.get("samples_read_per_attribute")
    if isinstance(rates, dict) and rates and ev.get("samples_prior_sha256") == prior.sha256:
        split = ev.get("samples_split") or ev.get("split", "eval")  # export-update --samples-from records its own
        return {"per_attribute": rates, "by": f"{ev.get('samples_judge') or 'a judge'}, {split} split"}
    reads = (manifest.get("latent_prior") or {}).get("reads") or {}
    if isinstance(reads.get("per_attribute"), dict) and reads["per_attribute"]:
        return {"per_attribute": reads["per_attribute"], "by": str(reads.get("by") or "the model's attribute head")}
    return None


def weak_draws(manifest: dict, prior: LatentPrior, asked: dict, below: float = WEAK_READ) -> list[dict]:
    """For each attribute asked for ({name: value}, the model's spelling), whether the samples drawn for that
    value (on: >= 0.5, off: below) show it on fewer than `below` of faces, by the manifest's figures for this
    prior: [{"attribute", "value", "rate", "by", "message"}]; [] without figures."""
    rates = read_rates(manifest, prior)
    if rates is None:
        return []
    out = []
    for name, value in asked.items():
        r = rates["per_attribute"].get(name)
        side = "on" if float(value) >= 0.5 else "off"
        rate = r.get(side) if isinstance(r, dict) else None
        if isinstance(rate, (int, float)) and rate < below:
            out.append({"attribute": name, "value": side, "rate": round(float(rate), 4), "by": rates["by"],
                        "message": f"{name} {side}: the model draws it badly (seen on {rate:.0%} of the faces drawn "
                                   f"{'with' if side == 'on' else 'without'} it; read by {rates['by']})"})
    return out


def read_shares(read: np.ndarray, asked: np.ndarray, names) -> dict:
    """read, asked: [N, A] bool, what a reader saw on drawn faces and what they were drawn with. Per attribute
    {"on", "off", "balanced", "n_on", "n_off"}: the share of faces drawn with it (without it) that are read with
    it (without it), their mean, and how many faces each share is over (None where there were none)."""
    read, asked = np.asarray(read, bool), np.asarray(asked, bool)
    out = {}
    for i, a in enumerate(names):
        pos, neg = asked[:, i], ~asked[:, i]
        on = float(read[pos, i].mean()) if pos.any() else None
        off = float((~read[neg, i]).mean()) if neg.any() else None
        both = [v for v in (on, off) if v is not None]
        out[a] = {"on": None if on is None else round(on, 4), "off": None if off is None else round(off, 4),
                  "balanced": round(float(np.mean(both)), 4) if both else None,
                  "n_on": int(pos.sum()), "n_off": int(neg.sum())}
    return out
