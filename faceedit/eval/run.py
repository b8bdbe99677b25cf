"""`faceedit eval`'s loop: attribute inference, edit success by a judge, disturbance, reconstruction, realism.

Works on a training checkpoint or an exported model directory, through engine.Editor either way (see
subject.py), so the figures in a manifest are the figures of the edits users get. Every face is edited the way
the product edits it: source attributes = the attribute head's decisions (no labels at edit time), one
attribute flipped, implied attributes set by the manifest's rules, the edit applied as a residual on the crop
(crop + edited - reconstruction). The product's default edit (auto strength where the manifest has it) is
the headline; fixed intensities, the raw decoder output and an auto strength sweep are scored beside it.
Realism (realism.py) is measured on the default edits."""
from __future__ import annotations

import time

import numpy as np

from faceedit.core.attributes import STANDARD_13
from faceedit.core.implied import implied_changes
from faceedit.core.strength import auto_multipliers, multipliers_up_to
from faceedit.eval import realism as R
from faceedit.eval.metrics import psnr, ssim
from faceedit.eval.report import ratio


def to_u8(images: np.ndarray) -> np.ndarray:
    """[N, 3, S, S] in [-1, 1] -> [N, S, S, 3] uint8."""
    return np.clip(np.rint((images.transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)


def evaluate(model, judge, data, split="test", batch=128, intensities=(1.0, 2.0), limit=0, log=print,
             alongside=None, features=None, realism=True, folds=3, epochs=6, two_sample_faces=300,
             keep=None) -> dict:
    """model: subject.UnderTest; judge: the judge every figure is read with (judge.JudgeModel); alongside: a
    second judge whose reading of the default edit is reported beside (the choice judge on the test split);
    features: a judge whose penultimate features KID uses (None: no KID). realism: also run the two-sample
    test (needs torch; folds x epochs of a small CNN per attribute, on two_sample_faces of the faces, drawn at
    random once, 0 = all). keep: a dict filled with what
    figure.py needs (dataset indices, per attribute the artifact ratios and the value each face was edited to).

    Scores fixed-strength edits at each intensity and the product's default edit at value 1. With intensities
    above 1 it also sweeps auto strength: every top multiplier up to 2 x max(intensities) - 1, for every
    attribute. Disturbance is reported over every other attribute and, separately, over those the edit did not
    set by an implied rule."""
    from faceedit.train.data import ImageCache, load_celeba  # numpy only; the data set's reader lives in train
    t_start = time.time()
    ds = load_celeba(data)
    names, labels = ds.select(model.attributes)
    idx = ds.split_indices(split)
    if limit:
        idx = idx[:limit]
    images = ImageCache(ds, model.image_size).images
    n_attr, n = len(names), len(idx)
    A = lambda: np.zeros(n_attr)
    correct, judge_correct, positives, judge_found = A(), A(), A(), A()
    adds, add_hits = A(), A()           # residual edits at intensity 1 that add the attribute, and their hits
    psnrs, ssims = [], []
    success = {i: {"residual": A(), "raw": A()} for i in intensities}
    disturbed = {i: A() for i in intensities}
    disturbed_free = {i: A() for i in intensities}
    implied_set = A()
    tops = np.asarray(model.edit_tops, np.float32)
    sweep_tops = multipliers_up_to(2 * max(intensities) - 1) if max(intensities) > 1 else [1.0]
    auto = {"success": A(), "disturbed": A(), "disturbed_free": A(), "multiplier": A()}
    swept = {t: {"success": A(), "disturbed": A()} for t in sweep_tops}
    # realism of the default edits, per attribute: one entry per face
    ratios = [[] for _ in names]
    hits_default = [[] for _ in names]
    flip_of = [[] for _ in names]
    edited_u8 = [[] for _ in names] if realism else None
    feats = [[] for _ in names] if features is not None else None
    second = {"hits": [[] for _ in names], "disturbed": A(), "correct": A()} if alongside is not None else None
    real_u8, recon_u8, real_feats, recon_feats = [], [], [], []

    for s in range(0, n, batch):
        j = idx[s:s + batch]
        x = images[j].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
        y_true = labels[j].astype(bool)
        zeros = np.zeros((len(x), n_attr), np.float32)
        _, rec, probs = model.fixed.run_edit(x, zeros, zeros)  # no attribute set: the reconstruction
        y_src = probs > 0.5
        correct += (y_src == y_true).sum(0)
        judge_real = judge(x) > 0.5
        judge_correct += (judge_real == y_true).sum(0)
        positives += y_true.sum(0)
        judge_found += (judge_real & y_true).sum(0)
        psnrs.append(psnr(rec, x))
        ssims.append(ssim(rec, x))
        if second is not None:
            second_real = alongside(x) > 0.5
            second["correct"] += (second_real == y_true).sum(0)
        if realism:
            real_u8.append(images[j])
            recon_u8.append(to_u8(rec))
        if feats is not None:
            real_feats.append(features.features(x))
            recon_feats.append(features.features(rec))
        for k in range(n_attr):
            flip_to = 1.0 - y_src[:, k].astype(np.float32)
            asked, asked_mask = zeros.copy(), zeros.copy()
            asked[:, k], asked_mask[:, k] = flip_to, 1.0
            set_by_rule = implied_changes(model.implied, asked, asked_mask, probs)
            implied_set[k] += set_by_rule.any(1).sum()
            rungs = {}

            def render_at(m, k=k, flip_to=flip_to, asked_mask=asked_mask, rungs=rungs):
                """Every face with attribute k set to 'on' or 'off' at multiplier m on its gain (value
                0.5 + m (target - 0.5), i.e. intensity (m + 1) / 2), by the fixed-strength Editor: raw output,
                residual result, the judge's verdicts on it."""
                if m not in rungs:
                    values = zeros.copy()
                    values[:, k] = 0.5 + m * (flip_to - 0.5)
                    edited, recon, _ = model.fixed.run_edit(x, values, asked_mask)
                    residual = model.fixed.residual(x, edited, recon, asked_mask)
                    rungs[m] = (edited, residual, judge(residual) > 0.5)
                return rungs[m]

            def scored(verdict, real=judge_real, k=k, flip_to=flip_to, set_by_rule=set_by_rule):
                """(hits [n] bool, summed share of the other attributes whose verdict changed, the same over
                the other attributes the edit did not set by an implied rule)"""
                o = np.delete(np.arange(n_attr), k)
                moved, free = verdict[:, o] != real[:, o], ~set_by_rule[:, o]
                return (verdict[:, k] == (flip_to > 0.5), moved.mean(1).sum(),
                        ((moved & free).sum(1) / np.maximum(free.sum(1), 1)).sum())

            for inten in intensities:
                edited, residual, verdict = render_at(2 * inten - 1)
                success[inten]["raw"][k] += ((judge(edited) > 0.5)[:, k] == (flip_to > 0.5)).sum()
                hit, moved, moved_free = scored(verdict)
                success[inten]["residual"][k] += hit.sum()
                disturbed[inten][k] += moved
                disturbed_free[inten][k] += moved_free
                if inten == 1.0:
                    adds[k] += (flip_to > 0.5).sum()
                    add_hits[k] += (hit & (flip_to > 0.5)).sum()

            # the product's default edit: the engine's own auto strength (one Editor call), or fixed strength
            if tops[k] > 1:
                edited, recon, _, mult = model.default.run_edit_with_strength(x, asked, asked_mask)
                residual = model.default.residual(x, edited, recon, asked_mask)
                verdict, mult = judge(residual) > 0.5, mult[:, k]
            else:
                _, residual, verdict = render_at(1.0)
                mult = np.ones(len(x), np.float32)
            hit, moved, moved_free = scored(verdict)
            auto["success"][k] += hit.sum()
            auto["disturbed"][k] += moved
            auto["disturbed_free"][k] += moved_free
            auto["multiplier"][k] += mult.sum()
            ratios[k].append(R.artifact_ratio(residual, x))
            hits_default[k].append(hit)
            flip_of[k].append(flip_to)
            if edited_u8 is not None:
                edited_u8[k].append(to_u8(residual))
            if feats is not None:
                feats[k].append(features.features(residual))
            if second is not None:
                v2 = alongside(residual) > 0.5
                hit2, moved2, _ = scored(v2, real=second_real)
                second["hits"][k].append(hit2)
                second["disturbed"][k] += moved2

            # the auto strength sweep: one climb to the highest top (strength.auto_multipliers, the engine's
            # rule, on the fixed-strength renders); a face's multiplier under a lower top t is min(it, t)
            if len(sweep_tops) > 1:
                values = zeros.copy()
                values[:, k] = flip_to
                climb_tops = np.ones(n_attr, np.float32)
                climb_tops[k] = sweep_tops[-1]
                reached = auto_multipliers(lambda rows, mult: render_at(float(mult[0, k]))[1][rows],
                                           model.probabilities, values, asked_mask, climb_tops)[:, k]
                for t in sweep_tops:
                    m = np.minimum(reached, t)
                    verdict = np.empty_like(render_at(1.0)[2])
                    for mi in np.unique(m):  # each face's verdict from the rung it ended at
                        verdict[m == mi] = render_at(float(mi))[2][m == mi]
                    hit, moved, _ = scored(verdict)
                    swept[t]["success"][k] += hit.sum()
                    swept[t]["disturbed"][k] += moved
        log(f"evaluated {min(s + batch, n)}/{n} faces")
    t_loop = time.time() - t_start
    std = [i for i, a in enumerate(names) if a in STANDARD_13]

    def table(v, count=n):
        return {a: round(float(v[i]) / count, 4) for i, a in enumerate(names)}

    def means(v, count=n):
        return {"mean_standard13": round(float(np.mean(v[std])) / count, 4), "mean_all": round(float(np.mean(v)) / count, 4)}

    result = {
        "split": split, "faces": n, "attributes": names,
        "edit_gains": {a: float(g) for a, g in zip(names, model.edit_gains)},
        "edit_filter": model.edit_filter,  # how the change was filtered before it was added (None: not at all)
        "attribute_accuracy": {"per_attribute": table(correct), **means(correct)},
        "judge_accuracy_on_real": {"per_attribute": table(judge_correct), **means(judge_correct)},
        # how often the judge says "yes" on real faces that have the attribute: an edit that adds a rare
        # attribute (Bald, Mustache) has to look at least as clear as those faces to count
        "judge_recall_on_real": {a: {"positives": int(positives[i]), "recall": ratio(judge_found[i], positives[i])}
                                 for i, a in enumerate(names)},
        "edit_success_by_direction": {
            "meaning": "residual edits at intensity 1, split by whether the edit adds or removes the attribute",
            **{a: {"add": ratio(add_hits[i], adds[i]), "adds": int(adds[i]),
                   "remove": ratio(success[1.0]["residual"][i] - add_hits[i], n - adds[i]), "removes": int(n - adds[i])}
               for i, a in enumerate(names)}} if 1.0 in success else {},
        "edit_success": {
            f"intensity_{inten:g}": {mode: {"per_attribute": table(v), **means(v)} for mode, v in modes.items()}
            for inten, modes in success.items()},
        "edit_disturbance": {f"intensity_{inten:g}": {"per_attribute": table(v), **means(v)} for inten, v in disturbed.items()}
        | {"meaning": "residual edits: mean fraction of the other attributes whose judge decision changed"},
        "edit_disturbance_excluding_implied": {
            f"intensity_{inten:g}": {"per_attribute": table(v), **means(v)} for inten, v in disturbed_free.items()}
        | {"meaning": "as edit_disturbance, over the other attributes the edit did not set by an implied rule"},
        "implied": {
            "rules": (model.manifest.get("implied") or {}).get("rules", {}) if model.implied is not None else {},
            "faces_changed": table(implied_set),
            "meaning": "attributes an edit also sets (faceedit.core.implied); faces_changed: share of faces where a "
                       "rule changed an attribute the face read otherwise"},
        "auto_strength": {
            "meaning": ("the product's default edit at value 1 (engine.Editor.run_edit_with_strength): residual, pushed "
                        "up to top_multiplier x the gain while the model's own attribute head does not read the result "
                        "as asked (faceedit.core.strength); top 1 = fixed strength"),
            "top_multiplier": {a: float(tops[i]) for i, a in enumerate(names)},
            "edit_success": {"per_attribute": table(auto["success"]), **means(auto["success"])},
            "edit_disturbance": {"per_attribute": table(auto["disturbed"]), **means(auto["disturbed"])},
            "edit_disturbance_excluding_implied": {"per_attribute": table(auto["disturbed_free"]),
                                                   **means(auto["disturbed_free"])},
            "mean_multiplier": table(auto["multiplier"])},
        "reconstruction": {"psnr_db": round(float(np.concatenate(psnrs).mean()), 3),
                           "ssim": round(float(np.concatenate(ssims).mean()), 4)},
        "protocol": ("source attributes = attribute head decisions; each attribute flipped on every face; "
                     "success = judge agrees with the target; headline = the default edit (auto_strength)"),
        "judges": {"scoring": judge.name, "alongside": alongside.name if alongside is not None else None,
                   "kid_features": features.name if features is not None else None},
        "timing_s": {"edits": round(t_loop, 1)},
    }
    if len(sweep_tops) > 1:
        n_other = n_attr - 1
        result["auto_strength_sweep"] = {
            "meaning": "per attribute and top multiplier: residual edit success, disturbance, net = success - (A-1) x disturbance",
            "rows": {a: [{"top_multiplier": t, "edit_success": ratio(v["success"][i], n),
                          "disturbance": ratio(v["disturbed"][i], n),
                          "net": round((v["success"][i] - n_other * v["disturbed"][i]) / n, 4)}
                         for t, v in swept.items()] for i, a in enumerate(names)}}

    # ---- realism of the default edits -----------------------------------------------------------------
    ratios = [np.concatenate(r) for r in ratios]
    hits_default = [np.concatenate(h) for h in hits_default]
    flip_of = [np.concatenate(f) for f in flip_of]
    banded = [R.in_band(r) for r in ratios]
    judged = np.array([h.sum() for h in hits_default], float)
    real_hits = np.array([(h & b).sum() for h, b in zip(hits_default, banded)], float)
    block = {
        "meaning": ("realism of the default edits (auto_strength): an edit succeeds realistically when the judge reads "
                    "the new value AND its artifact ratio lies in artifact_band"),
        "artifact_band": list(R.ARTIFACT_BAND), "artifact_score": R.ARTIFACT_DEFINITION,
        "edit_success_judged": {"per_attribute": table(judged), **means(judged)},
        "edit_success_realistic": {"per_attribute": table(real_hits), **means(real_hits)},
        "artifact_ratio": {"per_attribute": {a: {"median": round(float(np.median(ratios[i])), 4),
                                                 "p90": round(float(np.quantile(ratios[i], 0.9)), 4),
                                                 "max": round(float(ratios[i].max()), 4),
                                                 "min": round(float(ratios[i].min()), 4),
                                                 "in_band": round(float(banded[i].mean()), 4)}
                                             for i, a in enumerate(names)},
                           "median_all_edits": round(float(np.median(np.concatenate(ratios))), 4)},
    }
    if second is not None:
        h2 = [np.concatenate(h) for h in second["hits"]]
        j2 = np.array([h.sum() for h in h2], float)
        r2 = np.array([(h & b).sum() for h, b in zip(h2, banded)], float)
        result["alongside_judge"] = {
            "judge": alongside.name,
            "meaning": "the same default edits read by the other judge",
            "judge_accuracy_on_real": {"per_attribute": table(second["correct"]), **means(second["correct"])},
            "edit_success_judged": {"per_attribute": table(j2), **means(j2)},
            "edit_success_realistic": {"per_attribute": table(r2), **means(r2)},
            "edit_disturbance": {"per_attribute": table(second["disturbed"]), **means(second["disturbed"])}}
    groups = ds.identity[idx] if ds.identity is not None else np.asarray(idx)
    if realism:
        block["two_sample"] = _two_sample(names, std, np.concatenate(real_u8), np.concatenate(recon_u8),
                                          [np.concatenate(e) for e in edited_u8], groups, folds, epochs, log,
                                          ds.identity is not None, two_sample_faces)
    else:
        block["two_sample"] = {"skipped": "not asked for (--no-two-sample)"}
    if feats is not None:
        block["kid"] = _kid(ds, labels, images, names, std, features, np.concatenate(real_feats),
                            np.concatenate(recon_feats), [np.concatenate(f) for f in feats], flip_of, log)
    else:
        block["kid"] = {"skipped": "no judge with penultimate features (reporting_judge.onnx) for this model"}
    result["realism"] = block
    result["timing_s"]["total"] = round(time.time() - t_start, 1)
    if keep is not None:
        keep.update({"index": np.asarray(idx), "ratios": dict(zip(names, ratios)), "flip_to": dict(zip(names, flip_of))})
    return result


def _two_sample(names, std, real, recon, edited, groups, folds, epochs, log, by_identity, cap) -> dict:
    try:
        import torch  # noqa: F401
    except ImportError:
        return {"skipped": "needs PyTorch (pip install 'faceedit[train]')"}
    t0 = time.time()
    if cap and len(real) > cap:  # the same faces for every attribute, so the figures compare
        sel = np.sort(np.random.default_rng(0).choice(len(real), cap, replace=False))
        real, recon, groups, edited = real[sel], recon[sel], groups[sel], [e[sel] for e in edited]
    base = R.two_sample_accuracy(real, recon, groups, folds, epochs)
    log(f"two-sample test, reconstructions: {base['accuracy']:.1%} ({base['seconds']:.0f} s)")
    per = {}
    for i, a in enumerate(names):
        per[a] = R.two_sample_accuracy(real, edited[i], groups, folds, epochs)
        log(f"two-sample test, {a} edits: {per[a]['accuracy']:.1%} ({per[a]['seconds']:.0f} s)")
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
            "mean_standard13": round(float(acc[std].mean()), 4), "mean_all": round(float(acc.mean()), 4),
            "seconds": round(time.time() - t0, 1)}


def reference_faces(labels: np.ndarray, train_idx: np.ndarray, col: int, value: int, count: int, seed: int = 0):
    """Up to `count` train-split faces whose label `col` is `value`, in one fixed random order (so the
    reference sets of different attributes overlap and their features are computed once)."""
    order = train_idx[np.random.default_rng(seed).permutation(len(train_idx))]
    return order[labels[order, col] == value][:count]


def _kid(ds, labels, images, names, std, features, real_f, recon_f, edit_f, flip_of, log, count=1000) -> dict:
    """KID of each attribute's edits against real train-split faces that have the value it was edited to
    (each direction against its own reference, weighted by how many edits went that way)."""
    t0 = time.time()
    train = ds.split_indices("train")
    cache = {}

    def feats_of(rows):
        todo = [r for r in rows if r not in cache]
        for s in range(0, len(todo), 512):
            part = np.asarray(todo[s:s + 512])
            f = features.features(images[part].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1)
            cache.update(zip(part.tolist(), f))
        return np.stack([cache[r] for r in rows]) if len(rows) else np.zeros((0, real_f.shape[1]))

    anyone = train[np.random.default_rng(0).permutation(len(train))][:count]
    ref_all = feats_of(anyone.tolist())
    per, n_ref = {}, {}
    for i, a in enumerate(names):
        total, weight = 0.0, 0
        for value in (0, 1):
            sel = flip_of[i] == value
            ref_rows = reference_faces(labels, train, i, value, count).tolist()
            n_ref[f"{a}={value}"] = len(ref_rows)
            v = R.kid(edit_f[i][sel], feats_of(ref_rows))
            if v is not None:
                total, weight = total + v * sel.sum(), weight + sel.sum()
        per[a] = round(total / weight, 5) if weight else None
    vals = np.array([per[a] if per[a] is not None else np.nan for a in names])
    log(f"KID: {time.time() - t0:.0f} s")
    return {"meaning": ("KID (unbiased polynomial-kernel MMD^2) between the default edits of each attribute and "
                        "real train-split faces that have the value edited to, in the penultimate features of "
                        f"{features.name} (a network the generator never trained against); 0 = same distribution"),
            "features": features.name, "reference_faces_per_value": count, "reference_counts": n_ref,
            "per_attribute": per,
            "mean_standard13": round(float(np.nanmean(vals[std])), 5), "mean_all": round(float(np.nanmean(vals)), 5),
            "real_faces": round(R.kid(real_f, ref_all), 5), "reconstruction": round(R.kid(recon_f, ref_all), 5),
            "baselines": "real_faces: the evaluated inputs vs random train faces; reconstruction: their raw reconstructions vs the same",
            "seconds": round(time.time() - t0, 1)}
