"""`faceedit eval`: attribute inference, edit success by an independent judge, reconstruction quality.

Works on a training checkpoint (PyTorch) or on an exported model directory (ONNX Runtime), so the figures
in a manifest are the figures of the files users run. Every face is edited the way the product edits it:
source attributes = the attribute head's decisions (no labels at edit time), one attribute flipped, and
the edit applied as a residual on the crop (crop + edited - reconstruction), which is the engine's default.
Raw decoder outputs are scored too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from faceedit.core.attributes import STANDARD_13, decoder_value, edit_gains
from faceedit.core.implied import apply_implied, implied_changes, rule_table
from faceedit.core.strength import auto_multipliers, multipliers_up_to, top_multipliers
from faceedit.train.data import ImageCache, load_celeba


# ---- the two kinds of model under test ------------------------------------------------------------
class TorchModel:
    def __init__(self, checkpoint):
        import torch
        from faceedit.train.train import load_checkpoint
        self.torch = torch
        self.model, state = load_checkpoint(checkpoint)
        self.attributes = state["model_config"]["attributes"]
        self.image_size = state["model_config"]["image_size"]
        self.edit_gains = [1.0] * len(self.attributes)  # a checkpoint has none of its own: the caller may set some
        self.edit_tops = [1.0] * len(self.attributes)   # nor auto strength
        self.implied = None                               # nor implied attributes

    def _run(self, fn, *arrays):
        with self.torch.no_grad():
            return fn(*[self.torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])

    def probabilities(self, x):
        return self._run(lambda t: self.torch.sigmoid(self.model.attribute_head(t)), x).numpy()

    def encode(self, x):
        return self._run(lambda t: self.model.encoder(t)[0], x).numpy()

    def decode(self, z, y):
        return self._run(self.model.decoder, z, y.astype(np.float32)).numpy()


class OnnxModel:
    """Reads a model directory through its manifest (the same files the engine runs)."""

    def __init__(self, model_dir, precision="fp32"):
        import onnxruntime as ort
        from faceedit.core.manifest import load_manifest
        self.dir = Path(model_dir)
        self.manifest = load_manifest(self.dir)
        self.attributes = [a["name"] for a in self.manifest["attributes"]]
        self.image_size = self.manifest["image_size"]
        self.edit_gains = edit_gains(self.manifest.get("edit_strength"), self.attributes)
        self.edit_tops = top_multipliers(self.manifest.get("edit_strength"), self.attributes)
        self.implied = rule_table(self.manifest.get("implied"), self.attributes)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        graphs = self.manifest["graphs"]

        def session(name):
            entry = graphs[name].get(precision) or graphs[name]["fp32"]
            return ort.InferenceSession(str(self.dir / entry["path"]), opts, providers=["CPUExecutionProvider"])
        self.enc, self.att, self.dec = session("encoder"), session("attributes"), session("decoder")

    def probabilities(self, x):
        return self.att.run(["probabilities"], {"image": x})[0]

    def encode(self, x):
        return self.enc.run(["mu"], {"image": x})[0]

    def decode(self, z, y):
        return self.dec.run(["image"], {"z": z, "attributes": y.astype(np.float32)})[0]


class JudgeModel:
    """The judge from a torch judge checkpoint or a judge.onnx."""

    def __init__(self, path):
        path = Path(path)
        if path.suffix == ".onnx":
            import onnxruntime as ort
            self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self.fn = lambda x: self.sess.run(None, {"image": x})[0]
            self.attributes = None
        else:
            import torch
            from faceedit.train.judge import load_judge
            model, state = load_judge(path)
            self.attributes = state["attributes"]

            def fn(x):
                with torch.no_grad():
                    return torch.sigmoid(model(torch.from_numpy(np.ascontiguousarray(x)))).numpy()
            self.fn = fn

    def __call__(self, x):
        return self.fn(x)


def open_model(path):
    p = Path(path)
    if p.is_dir():
        return OnnxModel(p)
    if p.is_file():
        return TorchModel(p)
    raise FileNotFoundError(f"model not found: {path}")


# ---- metrics --------------------------------------------------------------------------------------
def psnr(a, b):
    """Per-image PSNR in dB of images in [-1, 1]."""
    mse = (((a - b) / 2) ** 2).reshape(len(a), -1).mean(1)
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def ssim(a, b):
    """Per-image SSIM (Gaussian window 11, sigma 1.5, on [0, 1] images, averaged over channels)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = []
    for x, y in zip((a + 1) / 2, (b + 1) / 2):
        vals = []
        for ch in range(x.shape[0]):
            u, v = x[ch].astype(np.float64), y[ch].astype(np.float64)
            blur = lambda t: cv2.GaussianBlur(t, (11, 11), 1.5)
            mu_u, mu_v = blur(u), blur(v)
            su, sv, suv = blur(u * u) - mu_u ** 2, blur(v * v) - mu_v ** 2, blur(u * v) - mu_u * mu_v
            m = ((2 * mu_u * mu_v + c1) * (2 * suv + c2)) / ((mu_u ** 2 + mu_v ** 2 + c1) * (su + sv + c2))
            vals.append(m.mean())
        out.append(np.mean(vals))
    return np.array(out)


def evaluate(model, judge, data, split="test", batch=128, intensities=(1.0, 2.0), limit=0, log=print) -> dict:
    """Scores fixed-strength edits at each intensity and, where the model has auto strength
    (model.edit_tops), the product's default edit at value 1. With intensities above 1 it also sweeps auto
    strength: every top multiplier up to 2 x max(intensities) - 1, for every attribute. Edits set the model's
    implied attributes (faceedit.core.implied) as the engine does; disturbance is reported over every other
    attribute and, separately, over those the edit did not set itself."""
    ds = load_celeba(data)
    names, labels = ds.select(model.attributes)
    idx = ds.split_indices(split)
    if limit:
        idx = idx[:limit]
    images = ImageCache(ds, model.image_size).images
    n_attr = len(names)
    correct = np.zeros(n_attr)
    judge_correct = np.zeros(n_attr)
    positives, judge_found = np.zeros(n_attr), np.zeros(n_attr)  # the judge's recall on real faces
    adds, add_hits = np.zeros(n_attr), np.zeros(n_attr)           # residual edits at intensity 1 that add
    psnrs, ssims = [], []
    # success[intensity][mode][k]: counts; disturbed[k]: other attributes the judge saw change
    success = {i: {"residual": np.zeros(n_attr), "raw": np.zeros(n_attr)} for i in intensities}
    disturbed = {i: np.zeros(n_attr) for i in intensities}
    disturbed_free = {i: np.zeros(n_attr) for i in intensities}  # over the other attributes the edit did not set
    implied_set = np.zeros(n_attr)                                # faces where a rule changed some attribute
    # auto strength: the model's own tops (the product default), and a sweep of tops when intensities > 1
    tops = np.asarray(model.edit_tops, np.float32)
    sweep_tops = multipliers_up_to(2 * max(intensities) - 1) if max(intensities) > 1 else [1.0]
    auto = {"success": np.zeros(n_attr), "disturbed": np.zeros(n_attr), "disturbed_free": np.zeros(n_attr),
            "multiplier": np.zeros(n_attr)}
    swept = {t: {"success": np.zeros(n_attr), "disturbed": np.zeros(n_attr)} for t in sweep_tops}
    for s in range(0, len(idx), batch):
        j = idx[s:s + batch]
        x = images[j].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
        y_true = labels[j].astype(bool)
        probs = model.probabilities(x)
        y_src = (probs > 0.5)
        correct += (y_src == y_true).sum(0)
        judge_real = judge(x) > 0.5
        judge_correct += (judge_real == y_true).sum(0)
        positives += y_true.sum(0)
        judge_found += (judge_real & y_true).sum(0)
        z = model.encode(x)
        rec = model.decode(z, y_src.astype(np.float32))
        psnrs.append(psnr(rec, x))
        ssims.append(ssim(rec, x))
        others_of = lambda k: np.delete(np.arange(n_attr), k)
        for k in range(n_attr):
            flip_to = 1.0 - y_src[:, k].astype(np.float32)
            rungs = {}
            # the user's request (attribute k fully on or off) and what the implied rules add to it
            asked, asked_mask = np.zeros((len(x), n_attr), np.float32), np.zeros((len(x), n_attr), np.float32)
            asked[:, k], asked_mask[:, k] = flip_to, 1.0
            set_by_rule = implied_changes(model.implied, asked, asked_mask, probs)
            implied_set[k] += set_by_rule.any(1).sum()

            def render_at(m, k=k, flip_to=flip_to, rungs=rungs):
                """Every face with attribute k flipped at multiplier m on its gain (intensity (m + 1) / 2:
                'on' = that value, 'off' = 1 - it): raw output, residual result, the judge's verdicts on it."""
                if m not in rungs:
                    target = y_src.astype(np.float32)
                    target[:, k] = decoder_value(0.5 + m * (flip_to - 0.5), model.edit_gains[k])
                    target, _ = apply_implied(model.implied, target, asked_mask, asked, asked_mask)
                    edited = model.decode(z, target)
                    residual = np.clip(x + edited - rec, -1, 1)
                    rungs[m] = (edited, residual, judge(residual) > 0.5)
                return rungs[m]

            def scored(verdict, k=k, flip_to=flip_to, set_by_rule=set_by_rule):
                """(hits [n] bool, summed share of the other attributes whose judge verdict changed, the same
                over the other attributes the edit did not set by an implied rule)"""
                o = others_of(k)
                moved, free = verdict[:, o] != judge_real[:, o], ~set_by_rule[:, o]
                return (verdict[:, k] == (flip_to > 0.5), moved.mean(1).sum(),
                        ((moved & free).sum(1) / free.sum(1)).sum())

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
            # auto strength, as the engine does it (faceedit.core.strength), one climb up to the highest top in
            # use: a face's multiplier under a lower top t is min(its multiplier, t)
            top = max(float(tops[k]), sweep_tops[-1])
            if top > 1:
                values, mask = np.zeros((len(x), n_attr), np.float32), np.zeros((len(x), n_attr), np.float32)
                values[:, k], mask[:, k] = flip_to, 1.0
                climb_tops = np.ones(n_attr, np.float32)
                climb_tops[k] = top
                reached = auto_multipliers(lambda rows, mult: render_at(float(mult[0, k]))[1][rows],
                                           model.probabilities, values, mask, climb_tops)[:, k]
            else:
                reached = np.ones(len(x), np.float32)
            for t, acc in [(float(tops[k]), auto)] + [(t, swept[t]) for t in sweep_tops]:
                m = np.minimum(reached, t)
                verdict = np.empty_like(render_at(1.0)[2])
                for mi in np.unique(m):  # each face's verdict from the rung it ended at
                    verdict[m == mi] = render_at(float(mi))[2][m == mi]
                hit, moved, moved_free = scored(verdict)
                acc["success"][k] += hit.sum()
                acc["disturbed"][k] += moved
                if acc is auto:
                    acc["multiplier"][k] += m.sum()
                    acc["disturbed_free"][k] += moved_free
        log(f"evaluated {min(s + batch, len(idx))}/{len(idx)} faces")
    n = len(idx)
    std = [i for i, a in enumerate(names) if a in STANDARD_13]

    def table(v):
        return {a: round(float(v[i]) / n, 4) for i, a in enumerate(names)}

    def means(v):
        return {"mean_standard13": round(float(np.mean(v[std])) / n, 4), "mean_all": round(float(np.mean(v)) / n, 4)}

    result = {
        "split": split, "faces": n, "attributes": names,
        "edit_gains": {a: float(g) for a, g in zip(names, model.edit_gains)},
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
            "meaning": "attributes an edit also sets (faceedit.core.implied); faces_changed: share of faces where a rule "
                       "changed an attribute the face read otherwise"},
        "auto_strength": {
            "meaning": ("the product's default edit at value 1: residual, pushed up to top_multiplier x the gain "
                        "while the model's own attribute head does not read the result as asked (faceedit.core.strength); "
                        "top 1 = fixed strength"),
            "top_multiplier": {a: float(tops[i]) for i, a in enumerate(names)},
            "edit_success": {"per_attribute": table(auto["success"]), **means(auto["success"])},
            "edit_disturbance": {"per_attribute": table(auto["disturbed"]), **means(auto["disturbed"])},
            "edit_disturbance_excluding_implied": {"per_attribute": table(auto["disturbed_free"]),
                                                   **means(auto["disturbed_free"])},
            "mean_multiplier": table(auto["multiplier"])},
        "reconstruction": {"psnr_db": round(float(np.concatenate(psnrs).mean()), 3),
                           "ssim": round(float(np.concatenate(ssims).mean()), 4)},
        "protocol": ("source attributes = attribute head decisions; each attribute flipped on every face; "
                     "success = judge agrees with the target; headline = residual mode at intensity 1"),
    }
    if len(sweep_tops) > 1:
        n_other = n_attr - 1
        result["auto_strength_sweep"] = {
            "meaning": "per attribute and top multiplier: residual edit success, disturbance, net = success - (A-1) x disturbance",
            "rows": {a: [{"top_multiplier": t, "edit_success": ratio(v["success"][i], n),
                          "disturbance": ratio(v["disturbed"][i], n),
                          "net": round((v["success"][i] - n_other * v["disturbed"][i]) / n, 4)}
                         for t, v in swept.items()] for i, a in enumerate(names)}}
    return result


def best_tops(result: dict) -> dict[str, float]:
    """Per attribute, the auto strength top with the best net effect in a validation sweep (ties: the lower
    top; 1 = fixed strength). `faceedit export-update --auto-strength-from` applies it."""
    return {a: min(rows, key=lambda r: (-r["net"], r["top_multiplier"]))["top_multiplier"]
            for a, rows in result["auto_strength_sweep"]["rows"].items()}


def ratio(a, b):
    return round(float(a) / b, 4) if b else None


def result_gains(result: dict) -> dict[str, float]:
    """The decoder gain each attribute was evaluated at (JSON from before per-attribute gains: one "edit_gain")."""
    gains = result.get("edit_gains") or {}
    return {a: float(gains.get(a, result.get("edit_gain", 1.0))) for a in result["attributes"]}


def _strength_rows(result: dict, success, disturbance, gain: float) -> list[dict]:
    """One row per scored intensity: the gain it amounts to (value 1 at that gain = value `intensity` at
    `gain`), residual edit success, disturbance, and the net effect success - (A-1) x disturbance: intended
    flips landed minus unintended flips caused, per edit (each unintended one counts as much as an intended
    one). success/disturbance pick the figure from a per-intensity block."""
    n_other = len(result["attributes"]) - 1
    rows = []
    for key, modes in result["edit_success"].items():
        inten = float(key.split("_", 1)[1])
        s, d = success(modes["residual"]), disturbance(result["edit_disturbance"][key])
        rows.append({"intensity": inten, "gain": round(gain * (2 * inten - 1), 4), "edit_success": s,
                     "disturbance": d, "net": round(s - n_other * d, 4)})
    return sorted(rows, key=lambda r: r["intensity"])


def strength_table(result: dict) -> list[dict]:
    """_strength_rows for the mean over the 13 standard attributes (with per-attribute gains, "gain" is the
    factor on each attribute's own). `faceedit export --edit-gain` takes the gain with the best net effect
    on validation."""
    gains = set(result_gains(result).values())
    mean = lambda block: block["mean_standard13"]
    return _strength_rows(result, mean, mean, gains.pop() if len(gains) == 1 else 1.0)


def attribute_strengths(result: dict) -> dict[str, list[dict]]:
    """_strength_rows for each attribute on its own: the same net effect, from that attribute's edits."""
    return {a: _strength_rows(result, lambda b: b["per_attribute"][a], lambda b: b["per_attribute"][a], g)
            for a, g in result_gains(result).items()}


def best_gains(result: dict) -> dict[str, float]:
    """Per attribute, the gain with the best net effect (ties: the lower gain): some attributes land only
    partly at value 1 yet disturb little when pushed harder (hair colour), others disturb more at once
    (Male, No_Beard). `faceedit export --edit-gains-from` applies this to a validation sweep."""
    return {a: min(rows, key=lambda r: (-r["net"], r["gain"]))["gain"]
            for a, rows in attribute_strengths(result).items()}


def summary(result: dict) -> dict:
    """The headline: edits as the product makes them by default (auto strength where the model has it)."""
    fixed = result["edit_success"]["intensity_1"]["residual"]
    auto = result.get("auto_strength") or {}
    on = any(t > 1 for t in (auto.get("top_multiplier") or {}).values())
    es = auto["edit_success"] if on else fixed
    disturbance = auto["edit_disturbance"] if on else result["edit_disturbance"]["intensity_1"]
    # JSON written before implied attributes existed lacks this block: nothing was implied, so it equals disturbance
    if on:
        free = auto.get("edit_disturbance_excluding_implied", disturbance)
    else:
        free = (result.get("edit_disturbance_excluding_implied") or {}).get("intensity_1", disturbance)
    return {"split": result["split"], "faces": result["faces"],
            "attribute_accuracy_mean13": result["attribute_accuracy"]["mean_standard13"],
            "edit_success_mean13": es["mean_standard13"],
            "edit_success_fixed_mean13": fixed["mean_standard13"],
            "edit_success_raw_mean13": result["edit_success"]["intensity_1"]["raw"]["mean_standard13"],
            "psnr_db": result["reconstruction"]["psnr_db"], "ssim": result["reconstruction"]["ssim"],
            "edit_disturbance_mean13": disturbance["mean_standard13"],
            "edit_disturbance_excluding_implied_mean13": free["mean_standard13"],
            "implied_rules": sorted((result.get("implied") or {}).get("rules") or {}),
            "edit_gains": result_gains(result),
            "auto_strength_tops": {a: t for a, t in (auto.get("top_multiplier") or {}).items() if t > 1},
            # per attribute, so the runtime can warn before an edit that rarely lands
            "edit_success_per_attribute": {k: round(float(v), 4) for k, v in es["per_attribute"].items()}}


def write_json(obj, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
