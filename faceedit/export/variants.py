"""Accuracy of a reduced-precision variant against the fp32 graphs, and the budget that decides whether it
ships. Figures are measured on held-out faces (not the calibration faces)."""
from __future__ import annotations

import numpy as np

from faceedit.export.parity import agreement, psnr_db

DEFAULT_BUDGET = {"min_attribute_agreement": 0.99, "min_psnr_db": 35.0}
BUDGET_MEANING = ("attribute_agreement: fraction of thresholded (p > 0.5) attribute decisions equal to fp32's; "
                  "psnr_db: decoded images vs the fp32 graphs, on reconstructions and one-attribute edits")


class Reference:
    """fp32 outputs on the evaluation faces, computed once and shared by every variant."""

    def __init__(self, fp32: dict, images: np.ndarray, seed: int = 0):
        self.fp32, self.images = fp32, images
        self.mu = fp32["encoder"].run(["mu"], {"image": images})[0]
        self.probs = fp32["attributes"].run(None, {"image": images})[0]
        source = (self.probs > 0.5).astype(np.float32)
        edit = source.copy()
        rng = np.random.default_rng(seed)
        k = rng.integers(0, source.shape[1], len(source))
        edit[np.arange(len(source)), k] = 1 - edit[np.arange(len(source)), k]
        # decoded on reconstructions and edits alike: both are what users see
        self.z = np.concatenate([self.mu, self.mu])
        self.y = np.concatenate([source, edit])
        self.decoded = self.decode(fp32["decoder"], self.z)

    def decode(self, decoder, z):
        image, *edit_mask = decoder.run(None, {"z": z, "attributes": self.y})
        return with_masks([image], edit_mask)


def with_masks(images: list, masks: list) -> np.ndarray:
    """Images, and a model's edit masks (in [0, 1]) counted as images in [-1, 1] (2m - 1), as one array for
    psnr_db (flat where there are masks; as before where there are none)."""
    if not masks:
        return images[0] if len(images) == 1 else np.concatenate(images)
    return np.concatenate([*images, *(2 * m - 1 for m in masks)], axis=None)


def graph_figures(name: str, runner, ref: Reference) -> dict:
    """The figure that matters for one graph, the other graphs kept fp32."""
    if name == "attributes":
        return {"attribute_agreement": round(agreement(ref.probs, runner.run(None, {"image": ref.images})[0]), 5)}
    if name == "encoder":
        mu = runner.run(["mu"], {"image": ref.images})[0]
        return {"psnr_db": psnr_db(ref.decode(ref.fp32["decoder"], np.concatenate([mu, mu])), ref.decoded)}
    if name == "decoder":
        return {"psnr_db": psnr_db(ref.decode(runner, ref.z), ref.decoded)}
    if name == "editor":  # one attribute edited per face (mask all ones, target = the edit vector)
        n = len(ref.images)
        feeds = {"image": ref.images, "target": ref.y[n:], "mask": np.ones_like(ref.y[n:])}
        edited, recon, probs, *edit_mask = runner.run(None, feeds)
        e0, r0, p0, *m0 = ref.fp32["editor"].run(None, feeds)
        return {"attribute_agreement": round(agreement(p0, probs), 5),
                "psnr_db": psnr_db(with_masks([edited, recon], edit_mask), with_masks([e0, r0], m0))}
    raise ValueError(f"no accuracy figure for graph {name}")


def passes(figures: dict, budget: dict) -> bool:
    return (figures.get("attribute_agreement", 1.0) >= budget["min_attribute_agreement"]
            and figures.get("psnr_db", float("inf")) >= budget["min_psnr_db"])


def pipeline_figures(runners: dict, ref: Reference) -> dict:
    """The chain encoder/attributes/decoder as the engine runs it with this precision (graphs without an
    accepted variant stay fp32); the fused editor is judged on its own in graph_figures."""
    get = lambda n: runners.get(n) or ref.fp32[n]
    probs = get("attributes").run(None, {"image": ref.images})[0]
    mu = get("encoder").run(["mu"], {"image": ref.images})[0]
    decoded = ref.decode(get("decoder"), np.concatenate([mu, mu]))
    return {"attribute_agreement": round(agreement(ref.probs, probs), 5), "psnr_db": psnr_db(decoded, ref.decoded)}


def judge_variant(label: str, runners: dict, ref: Reference, budget: dict, log=print) -> tuple[dict, dict]:
    """Per-graph figures and verdicts for one variant. Returns (accepted runners, manifest record)."""
    graphs, accepted = {}, {}
    for name, runner in runners.items():
        fig = graph_figures(name, runner, ref)
        ok = passes(fig, budget)
        graphs[name] = {**fig, "accepted": ok}
        if ok:
            accepted[name] = runner
        shown = ", ".join(f"{k} {v:.4g}" for k, v in fig.items())
        log(f"{label} {name}: {shown} -> {'accepted' if ok else 'REJECTED (over budget, not written)'}")
    record = {**pipeline_figures(accepted, ref), "budget": dict(budget), "faces": len(ref.images),
              "graphs": graphs, "rejected": sorted(n for n, g in graphs.items() if not g["accepted"])}
    return accepted, record
