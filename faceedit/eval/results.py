"""The JSON `faceedit eval` writes, from run.py's counts: accuracy and edit blocks, the default edit (auto
strength) and its sweep, then realism of the default edits (artifact ratio, the alongside judge, the two-sample
test, KID). Each block keeps the keys and order the JSON has always had (report.py and export read them)."""
from __future__ import annotations

import time

import numpy as np

from faceedit.core.attributes import STANDARD_13
from faceedit.engine import tensors
from faceedit.eval import realism as R
from faceedit.eval.report import ratio


class Scale:
    """[A] counts over n faces -> the JSON's per-attribute shares and their means (13 standard attributes, all)."""

    def __init__(self, names: list, n: int):
        self.names, self.n = names, n
        self.std = [i for i, a in enumerate(names) if a in STANDARD_13]

    def table(self, v) -> dict:
        return {a: round(float(v[i]) / self.n, 4) for i, a in enumerate(self.names)}

    def means(self, v) -> dict:
        return {"mean_standard13": round(float(np.mean(v[self.std])) / self.n, 4),
                "mean_all": round(float(np.mean(v)) / self.n, 4)}

    def block(self, v) -> dict:
        return {"per_attribute": self.table(v), **self.means(v)}


def assemble(model, judge, cfg, faces, tally, t_start: float, t_loop: float) -> dict:
    """The whole result: split and model settings, then accuracy_blocks, auto_strength_blocks, reconstruction,
    the judges, timings, the sweep (when run), and realism_blocks. Fills cfg.keep for figure.py."""
    sc = Scale(faces.names, len(faces.idx))
    result = {"split": cfg.split, "faces": sc.n, "attributes": faces.names,
              "edit_gains": {a: float(g) for a, g in zip(faces.names, model.edit_gains)},
              "edit_filter": model.edit_filter,  # how the change was filtered before it was added (None: not at all)
              **accuracy_blocks(model, tally, sc),
              "auto_strength": auto_strength_block(model, tally, sc),
              "reconstruction": {"psnr_db": round(float(np.concatenate(tally.lists["psnr"]).mean()), 3),
                                 "ssim": round(float(np.concatenate(tally.lists["ssim"]).mean()), 4)},
              "protocol": ("source attributes = attribute head decisions; each attribute flipped on every face; "
                           "success = judge agrees with the target; headline = the default edit (auto_strength)"),
              "judges": {"scoring": judge.name, "alongside": getattr(cfg.alongside, "name", None),
                         "kid_features": getattr(cfg.features, "name", None)},
              "timing_s": {"edits": round(t_loop, 1)}}
    if len(tally.sweep_tops) > 1:
        result["auto_strength_sweep"] = sweep_block(tally, sc)
    realism_blocks(result, cfg, faces, tally, sc)
    result["timing_s"]["total"] = round(time.time() - t_start, 1)
    return result


def samples_only(model, judge, cfg, faces) -> dict:
    """The JSON of an evaluation without the edit steps (EvalConfig.edits False): what was evaluated; the
    samples step adds its block."""
    return {"split": cfg.split, "faces": len(faces.idx), "attributes": faces.names, "edits": "not evaluated (--no-edits)",
            "judges": {"scoring": judge.name, "alongside": getattr(cfg.alongside, "name", None),
                       "kid_features": getattr(cfg.features, "name", None)},
            "timing_s": {"edits": 0.0}}


def accuracy_blocks(model, tally, sc: Scale) -> dict:
    """Attribute inference and the judge on real faces; fixed-strength edit success (result and raw) and
    disturbance per intensity; success split by direction at intensity 1; what implied rules changed."""
    c, n = tally.counts, sc.n
    by_direction = {}
    if 1.0 in tally.success:
        hits = tally.success[1.0]["residual"]
        by_direction = {"meaning": "residual edits at intensity 1, split by whether the edit adds or removes the attribute",
                        **{a: {"add": ratio(c["add_hits"][i], c["adds"][i]), "adds": int(c["adds"][i]),
                               "remove": ratio(hits[i] - c["add_hits"][i], n - c["adds"][i]),
                               "removes": int(n - c["adds"][i])} for i, a in enumerate(sc.names)}}
    per_intensity = lambda blocks: {f"intensity_{inten:g}": sc.block(v) for inten, v in blocks.items()}
    return {
        "attribute_accuracy": sc.block(c["correct"]),
        "judge_accuracy_on_real": sc.block(c["judge_correct"]),
        # how often the judge says "yes" on real faces that have the attribute: an edit that adds a rare
        # attribute (Bald, Mustache) has to look at least as clear as those faces to count
        "judge_recall_on_real": {a: {"positives": int(c["positives"][i]), "recall": ratio(c["judge_found"][i], c["positives"][i])}
                                 for i, a in enumerate(sc.names)},
        "edit_success_by_direction": by_direction,
        "edit_success": {f"intensity_{inten:g}": {mode: sc.block(v) for mode, v in modes.items()}
                         for inten, modes in tally.success.items()},
        "edit_disturbance": per_intensity(tally.disturbed)
        | {"meaning": "residual edits: mean fraction of the other attributes whose judge decision changed"},
        "edit_disturbance_excluding_implied": per_intensity(tally.disturbed_free)
        | {"meaning": "as edit_disturbance, over the other attributes the edit did not set by an implied rule"},
        "implied": {
            "rules": (model.manifest.get("implied") or {}).get("rules", {}) if model.implied is not None else {},
            "faces_changed": sc.table(c["implied_set"]),
            "meaning": "attributes an edit also sets (faceedit.core.implied); faces_changed: share of faces where a "
                       "rule changed an attribute the face read otherwise"}}


def auto_strength_block(model, tally, sc: Scale) -> dict:
    """The product's default edit at value 1: success, disturbance, the mean multiplier auto strength reached."""
    auto = tally.auto
    return {
        "meaning": ("the product's default edit at value 1 (engine.Editor.edit_crops, auto strength on): residual, "
                    "pushed up to top_multiplier x the gain while the model's own attribute head does not read the "
                    "result as asked (faceedit.core.strength); top 1 = fixed strength"),
        "top_multiplier": {a: float(t) for a, t in zip(sc.names, np.asarray(model.edit_tops, np.float32))},
        "edit_success": sc.block(auto["success"]),
        "edit_disturbance": sc.block(auto["disturbed"]),
        "edit_disturbance_excluding_implied": sc.block(auto["disturbed_free"]),
        "mean_multiplier": sc.table(auto["multiplier"])}


def sweep_block(tally, sc: Scale) -> dict:
    """Per attribute and swept top: success, disturbance and net effect (success - (A-1) x disturbance)."""
    n, n_other = sc.n, len(sc.names) - 1
    return {
        "meaning": "per attribute and top multiplier: residual edit success, disturbance, net = success - (A-1) x disturbance",
        "rows": {a: [{"top_multiplier": t, "edit_success": ratio(v["success"][i], n),
                      "disturbance": ratio(v["disturbed"][i], n),
                      "net": round((v["success"][i] - n_other * v["disturbed"][i]) / n, 4)}
                     for t, v in tally.swept.items()] for i, a in enumerate(sc.names)}}


def realism_blocks(result: dict, cfg, faces, tally, sc: Scale) -> None:
    """result["realism"] (judged vs realistic success: the judge reads the new value AND the artifact ratio is in
    band; artifact ratios; two-sample test; KID) and result["alongside_judge"] when there is one."""
    pf = tally.per_face
    ratios, hits, flip_of = ([np.concatenate(r) for r in pf[k]] for k in ("ratios", "hits", "flip_to"))
    banded = [R.in_band(r) for r in ratios]
    judged = np.array([h.sum() for h in hits], float)
    real_hits = np.array([(h & b).sum() for h, b in zip(hits, banded)], float)
    block = {
        "meaning": ("realism of the default edits (auto_strength): an edit succeeds realistically when the judge reads "
                    "the new value AND its artifact ratio lies in artifact_band"),
        "artifact_band": list(R.ARTIFACT_BAND), "artifact_score": R.ARTIFACT_DEFINITION,
        "edit_success_judged": sc.block(judged),
        "edit_success_realistic": sc.block(real_hits),
        "artifact_ratio": {"per_attribute": {a: {"median": round(float(np.median(ratios[i])), 4),
                                                 "p90": round(float(np.quantile(ratios[i], 0.9)), 4),
                                                 "max": round(float(ratios[i].max()), 4),
                                                 "min": round(float(ratios[i].min()), 4),
                                                 "in_band": round(float(banded[i].mean()), 4)}
                                             for i, a in enumerate(sc.names)},
                           "median_all_edits": round(float(np.median(np.concatenate(ratios))), 4)}}
    if tally.second is not None:
        result["alongside_judge"] = alongside_block(cfg.alongside.name, tally.second, banded, sc)
    ds = faces.ds
    if cfg.realism:
        groups = ds.identity[faces.idx] if ds.identity is not None else np.asarray(faces.idx)
        block["two_sample"] = two_sample(cfg, sc, np.concatenate(tally.lists["real_u8"]),
                                         np.concatenate(tally.lists["recon_u8"]),
                                         [np.concatenate(e) for e in pf["edited_u8"]], groups, ds.identity is not None)
    else:
        block["two_sample"] = {"skipped": "not asked for (--no-two-sample)"}
    if cfg.features is not None:
        block["kid"] = kid(cfg, sc, faces, np.concatenate(tally.lists["real_feats"]),
                           np.concatenate(tally.lists["recon_feats"]), [np.concatenate(f) for f in pf["feats"]], flip_of)
    else:
        block["kid"] = {"skipped": "no judge with penultimate features (reporting_judge.onnx) for this model"}
    result["realism"] = block
    if cfg.keep is not None:
        cfg.keep.update({"index": np.asarray(faces.idx), "ratios": dict(zip(sc.names, ratios)),
                         "flip_to": dict(zip(sc.names, flip_of))})


def alongside_block(name: str, second: dict, banded: list, sc: Scale) -> dict:
    """The same default edits read by the alongside judge: its accuracy on real faces, judged and realistic
    success (the artifact band is the scoring run's), disturbance."""
    hits = [np.concatenate(h) for h in second["hits"]]
    judged = np.array([h.sum() for h in hits], float)
    realistic = np.array([(h & b).sum() for h, b in zip(hits, banded)], float)
    return {"judge": name, "meaning": "the same default edits read by the other judge",
            "judge_accuracy_on_real": sc.block(second["correct"]),
            "edit_success_judged": sc.block(judged),
            "edit_success_realistic": sc.block(realistic),
            "edit_disturbance": sc.block(second["disturbed"])}


def two_sample(cfg, sc: Scale, real, recon, edited, groups, by_identity: bool) -> dict:
    """Held-out accuracy of a fresh small CNN telling real faces from their reconstructions, and from each
    attribute's default edits (realism.two_sample_accuracy), on the same cfg.two_sample_faces faces for all."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return {"skipped": "needs PyTorch (pip install 'faceedit[train]')"}
    t0, cap, folds, epochs, names = time.time(), cfg.two_sample_faces, cfg.folds, cfg.epochs, sc.names
    if cap and len(real) > cap:  # the same faces for every attribute, so the figures compare
        sel = np.sort(np.random.default_rng(0).choice(len(real), cap, replace=False))
        real, recon, groups, edited = real[sel], recon[sel], groups[sel], [e[sel] for e in edited]
    base = R.two_sample_accuracy(real, recon, groups, folds, epochs)
    cfg.log(f"two-sample test, reconstructions: {base['accuracy']:.1%} ({base['seconds']:.0f} s)")
    per = {}
    for i, a in enumerate(names):
        per[a] = R.two_sample_accuracy(real, edited[i], groups, folds, epochs)
        cfg.log(f"two-sample test, {a} edits: {per[a]['accuracy']:.1%} ({per[a]['seconds']:.0f} s)")
    acc = np.array([per[a]["accuracy"] for a in names])
    return {"meaning": ("held-out accuracy of a fresh small CNN telling real faces from edited ones (0.5 = "
                        "indistinguishable); reconstruction = the decoder's raw reconstructions (the model's own "
                        "rendering, no edit), edits = the residual default edits"),
            "split_by": "identity (identity_CelebA.txt)" if by_identity else "face (no identity file)",
            "folds": folds, "epochs": epochs, "faces": int(len(real)),
            "network": ("fresh per fold: [image, its 3x3 Laplacian] -> 3 conv layers (32, 48, 64 channels, BatchNorm) "
                        "-> global average pool -> logit; trained on random 32x32 windows, scored on whole images"),
            "reconstruction": base["accuracy"],
            "per_attribute": {a: per[a]["accuracy"] for a in names},
            "per_fold": {"reconstruction": base["per_fold"], **{a: per[a]["per_fold"] for a in names}},
            "mean_standard13": round(float(acc[sc.std].mean()), 4), "mean_all": round(float(acc.mean()), 4),
            "seconds": round(time.time() - t0, 1)}


def reference_faces(labels: np.ndarray, train_idx: np.ndarray, col: int, value: int, count: int, seed: int = 0):
    """Up to `count` train-split faces whose label `col` is `value`, in one fixed random order (so the
    reference sets of different attributes overlap and their features are computed once)."""
    order = train_idx[np.random.default_rng(seed).permutation(len(train_idx))]
    return order[labels[order, col] == value][:count]


def random_train_rows(faces, count: int) -> np.ndarray:
    """`count` train-split faces in one fixed random order: the reference of every KID baseline."""
    train = faces.ds.split_indices("train")
    return train[np.random.default_rng(0).permutation(len(train))][:count]


def kid(cfg, sc: Scale, faces, real_f, recon_f, edit_f, flip_of, count: int = 1000) -> dict:
    """KID of each attribute's edits against real train-split faces that have the value it was edited to
    (each direction against its own reference, weighted by how many edits went that way), in the features of
    cfg.features; the evaluated faces and their reconstructions against random train faces as baselines."""
    t0, features, names = time.time(), cfg.features, sc.names
    train, cache = faces.ds.split_indices("train"), {}

    def feats_of(rows):
        todo = [r for r in rows if r not in cache]
        for s in range(0, len(todo), 512):
            part = np.asarray(todo[s:s + 512])
            f = features.features(tensors.to_tensor(list(faces.images[part]), faces.images.shape[1]))
            cache.update(zip(part.tolist(), f))
        return np.stack([cache[r] for r in rows]) if len(rows) else np.zeros((0, real_f.shape[1]))

    ref_all = feats_of(random_train_rows(faces, count).tolist())
    per, n_ref = {}, {}
    for i, a in enumerate(names):
        total, weight = 0.0, 0
        for value in (0, 1):
            sel = flip_of[i] == value
            ref_rows = reference_faces(faces.labels, train, i, value, count).tolist()
            n_ref[f"{a}={value}"] = len(ref_rows)
            v = R.kid(edit_f[i][sel], feats_of(ref_rows))
            if v is not None:
                total, weight = total + v * sel.sum(), weight + sel.sum()
        per[a] = round(total / weight, 5) if weight else None
    vals = np.array([per[a] if per[a] is not None else np.nan for a in names])
    cfg.log(f"KID: {time.time() - t0:.0f} s")
    return {"meaning": ("KID (unbiased polynomial-kernel MMD^2) between the default edits of each attribute and "
                        "real train-split faces that have the value edited to, in the penultimate features of "
                        f"{features.name} (a network the generator never trained against); 0 = same distribution"),
            "features": features.name, "reference_faces_per_value": count, "reference_counts": n_ref,
            "per_attribute": per,
            "mean_standard13": round(float(np.nanmean(vals[sc.std])), 5), "mean_all": round(float(np.nanmean(vals)), 5),
            "real_faces": round(R.kid(real_f, ref_all), 5), "reconstruction": round(R.kid(recon_f, ref_all), 5),
            "baselines": "real_faces: the evaluated inputs vs random train faces; reconstruction: their raw reconstructions vs the same",
            "seconds": round(time.time() - t0, 1)}
