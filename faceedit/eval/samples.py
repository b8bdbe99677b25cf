"""The samples step of `faceedit eval`: new faces drawn from the model's latent prior (what `faceedit sample`,
/v1/samples and the page's "New faces" draw), measured against the real faces of the split.

One face is drawn for each evaluated face, with that face's labels as the attributes asked for (so the drawn
set asks for what the real set has), at a fixed seed (cfg.sample_seed). Then:
- read: how often the reading judge (the reporting judge where there is one, else the scoring judge) reads each
  attribute as asked, on the faces drawn with it and on those drawn without it, and their mean (balanced);
  beside it the same judge's balanced accuracy on the real faces (what a perfect drawing would reach);
- two-sample test: realism.two_sample_accuracy, the fresh CNN that tells edits from real faces, telling the
  drawn faces from the real ones (the same faces, folds and settings as the edits' test; needs torch), beside
  the same test on raw reconstructions (the decoder's own rendering: drawn faces cannot beat it);
- KID in the reporting judge's penultimate features between the drawn faces and random train-split faces, beside
  the same for the real evaluated faces (the floor)."""
from __future__ import annotations

import time

import numpy as np

from faceedit.core.attributes import STANDARD_13
from faceedit.engine import tensors
from faceedit.engine.prior import read_shares
from faceedit.eval import realism as R
from faceedit.eval.adapter import prior, render, sample

def draw(model, faces, cfg) -> np.ndarray:
    """[N, S, S, 3] uint8: one face per evaluated face, drawn with its labels (seed cfg.sample_seed)."""
    return sample(model.editor, faces.labels[faces.idx], cfg.sample_seed, cfg.sample_temperature)


def _mean(values: dict, names) -> float | None:
    vals = [values[a] for a in names if values.get(a) is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def sample_block(model, judge, cfg, faces, result: dict) -> dict:
    """result["samples"]: the drawn faces read, tested against real faces and compared in features (see above).
    judge: the scoring judge; result: the JSON so far (its two-sample figure on reconstructions is reused)."""
    t0 = time.time()
    drawn_from = prior(model.editor, cfg.sample_temperature)
    if drawn_from["kind"] == "none":
        return {"skipped": "the model has no latent prior (a training checkpoint, or a directory exported without one): "
                           "its samples would be decoded noise"}
    names = faces.names
    std = [a for a in names if a in STANDARD_13]
    drawn = draw(model, faces, cfg)
    real = faces.images[faces.idx]
    reader = cfg.features if cfg.features is not None else judge
    asked = faces.labels[faces.idx].astype(bool)
    x_drawn = tensors.to_tensor(list(drawn), model.image_size)
    x_real = tensors.to_tensor(list(real), model.image_size)
    read = read_shares(reader(x_drawn) > 0.5, asked, names)
    ceiling = read_shares(reader(x_real) > 0.5, asked, names)
    balanced = {a: v["balanced"] for a, v in read.items()}
    real_balanced = {a: v["balanced"] for a, v in ceiling.items()}
    cfg.log(f"samples: {len(drawn)} drawn, read as asked {_mean(balanced, std):.1%} balanced (mean of 13; real faces "
            f"{_mean(real_balanced, std):.1%})")
    block = {
        "meaning": ("new faces drawn from the model's latent prior, one per evaluated face with its labels as the "
                    "attributes asked for; read = share of faces drawn with (on) / without (off) an attribute that "
                    f"{reader.name} reads so, balanced = their mean; real_faces = the same judge's balanced accuracy "
                    "on the evaluated faces"),
        "prior": drawn_from, "seed": cfg.sample_seed, "faces": int(len(drawn)),
        "judge": reader.name,
        "read": {"per_attribute": read, "balanced_mean_standard13": _mean(balanced, std),
                 "balanced_mean_all": _mean(balanced, names)},
        "real_faces": {"balanced_per_attribute": real_balanced, "balanced_mean_standard13": _mean(real_balanced, std),
                       "balanced_mean_all": _mean(real_balanced, names)}}
    block["two_sample"] = two_sample(model, cfg, faces, real, drawn, result)
    block["kid"] = kid(cfg, faces, x_real, x_drawn)
    block["seconds"] = round(time.time() - t0, 1)
    if cfg.keep is not None:
        cfg.keep["samples"] = drawn
    return block


def two_sample(model, cfg, faces, real, drawn, result: dict) -> dict:
    """The fresh-CNN two-sample test, drawn faces vs real ones, on the cfg.two_sample_faces faces the edits' test
    uses; its reconstruction figure from the edits' test, or measured here when that did not run."""
    if not cfg.realism:
        return {"skipped": "not asked for (--no-two-sample)"}
    try:
        import torch  # noqa: F401
    except ImportError:
        return {"skipped": "needs PyTorch (pip install 'faceedit[train]')"}
    ds, cap = faces.ds, cfg.two_sample_faces
    groups = ds.identity[faces.idx] if ds.identity is not None else np.asarray(faces.idx)
    rows = np.arange(len(real))
    if cap and len(real) > cap:  # the same choice as the edits' test (results.two_sample): the same faces
        rows = np.sort(np.random.default_rng(0).choice(len(real), cap, replace=False))
    res = R.two_sample_accuracy(real[rows], drawn[rows], groups[rows], cfg.folds, cfg.epochs)
    cfg.log(f"two-sample test, drawn faces: {res['accuracy']:.1%} ({res['seconds']:.0f} s)")
    base = ((result.get("realism") or {}).get("two_sample") or {}).get("reconstruction")
    where = "the edits' two-sample test (the same faces)"
    if base is None:
        zeros = np.zeros((len(rows), len(faces.names)), np.float32)
        recon = render(model.editor, real[rows], zeros, zeros).reconstruction
        u8 = np.clip(np.rint((recon.transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)
        base = R.two_sample_accuracy(real[rows], u8, groups[rows], cfg.folds, cfg.epochs)["accuracy"]
        where = "measured here on the same faces"
        cfg.log(f"two-sample test, reconstructions: {base:.1%}")
    return {"meaning": ("held-out accuracy of a fresh small CNN (realism.two_sample_accuracy, as for edits) telling "
                        "real faces from faces drawn with their labels (0.5 = indistinguishable); reconstruction: the "
                        "same test on raw reconstructions, which drawn faces cannot beat"),
            "split_by": "identity (identity_CelebA.txt)" if ds.identity is not None else "face (no identity file)",
            "folds": cfg.folds, "epochs": cfg.epochs, "faces": int(len(rows)), "accuracy": res["accuracy"],
            "per_fold": res["per_fold"], "reconstruction": base, "reconstruction_from": where,
            "seconds": res["seconds"]}


def kid(cfg, faces, x_real, x_drawn, count: int = 1000) -> dict:
    """KID of the drawn faces and of the real evaluated faces against `count` random train-split faces (the
    reference realism's KID baselines use), in cfg.features' penultimate features."""
    features = cfg.features
    if features is None:
        return {"skipped": "no judge with penultimate features (reporting_judge.onnx) for this model"}
    from faceedit.eval.results import random_train_rows
    rows = random_train_rows(faces, count)
    ref = np.concatenate([features.features(tensors.to_tensor(list(faces.images[rows[s:s + 512]]), x_real.shape[-1]))
                          for s in range(0, len(rows), 512)])
    drawn, real = R.kid(features.features(x_drawn), ref), R.kid(features.features(x_real), ref)
    return {"meaning": (f"KID (unbiased polynomial-kernel MMD^2) x1 in the penultimate features of {features.name}: drawn "
                        "faces vs random train-split faces; real_faces: the evaluated faces vs the same (the floor)"),
            "features": features.name, "reference_faces": int(len(rows)),
            "drawn": None if drawn is None else round(drawn, 5), "real_faces": None if real is None else round(real, 5)}
