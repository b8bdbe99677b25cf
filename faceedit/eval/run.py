"""`faceedit eval`'s loop: attribute inference, edit success by a judge, disturbance, reconstruction, realism.

Works on a training checkpoint or an exported model directory, through engine.Editor either way (subject.py;
every call in adapter.py), so the figures in a manifest are the figures of the edits users get. Every face is
edited the way the product edits it: source attributes = the attribute head's decisions (no labels at edit
time), one attribute flipped, implied attributes set by the manifest's rules, the edit applied as a residual on
the crop (crop + edited - reconstruction, through the edit filter where the manifest has one). The product's
default edit (auto strength where the manifest has it) is the headline; fixed intensities, the raw decoder
output and an auto strength sweep are scored beside it. Realism (realism.py) is measured on the default edits.

The steps, per batch of faces: reconstruct() (the model's reading and reconstruction of each face), then per
attribute a Flip and edit_at_intensities(), default_edit(), sweep_auto_strength(); results.py turns the
counts into the JSON. Then the samples step (samples.py): new faces drawn with the faces' labels, read,
two-sample tested and compared in features against the real faces."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from faceedit.core.implied import implied_changes
from faceedit.core.strength import auto_multipliers, multipliers_up_to
from faceedit.engine import tensors
from faceedit.eval import realism as R
from faceedit.eval.adapter import render
from faceedit.eval.metrics import psnr, ssim


@dataclass
class EvalConfig:
    """What one evaluation measures and how (every `faceedit eval` setting but the model and its judge)."""
    data: str | Path                   # a CelebA-layout folder
    split: str = "test"                # train, val or test
    limit: int = 0                     # evaluate only the first N faces of the split (0: all)
    batch: int = 128                   # faces per step
    intensities: tuple = (1.0, 2.0)    # fixed-strength values scored (1 = the headline); above 1: the sweep too
    realism: bool = True               # run the two-sample test (needs torch)
    folds: int = 3                     # two-sample test: folds, split by identity
    epochs: int = 6                    # two-sample test: epochs of each fold's CNN
    two_sample_faces: int = 300        # two-sample test: faces drawn once at random from those evaluated (0: all)
    alongside: object = None           # a second judge, whose reading of the default edit is reported beside
    features: object = None            # a judge whose penultimate features KID uses (None: no KID)
    keep: dict | None = None           # filled with what figure.py needs (indices, artifact ratios, values)
    log: Callable = print
    edits: bool = True                 # run the edit steps (False: only the samples step, e.g. to compare priors)
    samples: bool = True               # the samples step (samples.py): faces drawn from the latent prior
    sample_seed: int = 0               # samples: the seed they are drawn with
    sample_temperature: float | None = None  # samples: the prior's temperature (None: the prior file's own)

    @property
    def sweep_tops(self) -> list[float]:
        """The auto strength tops swept: every multiplier up to 2 x max(intensities) - 1 ([1]: no sweep)."""
        top = max(self.intensities)
        return multipliers_up_to(2 * top - 1) if top > 1 else [1.0]


@dataclass
class Faces:
    """The faces of the split that are evaluated."""
    ds: object              # the data set (faceedit.train.data.CelebA)
    names: list             # the model's attribute names (the labels' columns)
    labels: np.ndarray      # [all faces, A] 0/1 labels
    idx: np.ndarray         # dataset indices evaluated
    images: np.ndarray      # [all faces, S, S, 3] uint8 at the model's size


@dataclass
class Batch:
    """One batch of faces as the model reads them."""
    u8: np.ndarray          # [B, S, S, 3] the crops
    x: np.ndarray           # [B, 3, S, S] in [-1, 1], as the engine converts them
    y_true: np.ndarray      # [B, A] bool labels
    probs: np.ndarray       # [B, A] the attribute head
    judge_real: np.ndarray  # [B, A] the judge's verdicts on the real faces
    second_real: np.ndarray | None = None  # the same by the alongside judge


@dataclass
class Tally:
    """Every count evaluate() accumulates over batches ([A] arrays, one entry per attribute, unless noted)."""
    n_attr: int
    intensities: tuple
    sweep_tops: list
    alongside: bool = False                      # also count the alongside judge's readings (second)
    counts: dict = field(init=False)             # correct, judge_correct, positives, judge_found, adds, ...
    success: dict = field(init=False)            # intensity -> {"residual": [A], "raw": [A]}
    disturbed: dict = field(init=False)          # intensity -> [A]
    disturbed_free: dict = field(init=False)     # intensity -> [A], over the attributes no implied rule set
    auto: dict = field(init=False)               # the default edit: success, disturbed, disturbed_free, multiplier
    swept: dict = field(init=False)              # top -> {"success": [A], "disturbed": [A]}
    per_face: dict = field(init=False)           # ratios, hits, flip_to, edited_u8, feats: per attribute, batches
    lists: dict = field(init=False)              # psnr, ssim, real_u8, recon_u8, real_feats, recon_feats: batches
    second: dict | None = field(init=False)      # the alongside judge: hits (per face), disturbed, correct

    def __post_init__(self):
        z = lambda: np.zeros(self.n_attr)
        self.counts = {k: z() for k in ("correct", "judge_correct", "positives", "judge_found", "adds", "add_hits",
                                        "implied_set")}
        self.success = {i: {"residual": z(), "raw": z()} for i in self.intensities}
        self.disturbed = {i: z() for i in self.intensities}
        self.disturbed_free = {i: z() for i in self.intensities}
        self.auto = {k: z() for k in ("success", "disturbed", "disturbed_free", "multiplier")}
        self.swept = {t: {"success": z(), "disturbed": z()} for t in self.sweep_tops}
        self.per_face = {k: [[] for _ in range(self.n_attr)]
                         for k in ("ratios", "hits", "flip_to", "edited_u8", "feats")}
        self.lists = {k: [] for k in ("psnr", "ssim", "real_u8", "recon_u8", "real_feats", "recon_feats")}
        self.second = ({"hits": [[] for _ in range(self.n_attr)], "disturbed": z(), "correct": z()}
                       if self.alongside else None)


def read_faces(model, cfg: EvalConfig) -> Faces:
    """The split's faces (the first cfg.limit), their labels in the model's attribute order, and every face's
    crop at the model's size (decoded once, cached on disk by the data set's reader)."""
    from faceedit.train.data import ImageCache, load_celeba  # numpy only; the data set's reader lives in train
    ds = load_celeba(cfg.data)
    names, labels = ds.select(model.attributes)
    idx = ds.split_indices(cfg.split)
    if cfg.limit:
        idx = idx[:cfg.limit]
    return Faces(ds, names, labels, idx, ImageCache(ds, model.image_size).images)


def to_u8(images: np.ndarray) -> np.ndarray:
    """[N, 3, S, S] in [-1, 1] -> [N, S, S, 3] uint8."""
    return np.clip(np.rint((images.transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)


def reconstruct(model, judge, cfg: EvalConfig, faces: Faces, rows: np.ndarray, tally: Tally) -> Batch:
    """One batch: the attribute head's reading of each face (accuracy against the labels), the judge's (its
    accuracy and recall on real faces), and the reconstruction (PSNR, SSIM; kept for realism and KID)."""
    u8 = faces.images[rows]
    x = tensors.to_tensor(list(u8), model.image_size)
    y_true = faces.labels[rows].astype(bool)
    zeros = np.zeros((len(x), len(faces.names)), np.float32)
    r = render(model.editor, u8, zeros, zeros)  # no attribute set: the reconstruction
    b = Batch(u8, x, y_true, r.probs, judge(x) > 0.5)
    c, y_src = tally.counts, r.probs > 0.5
    c["correct"] += (y_src == y_true).sum(0)
    c["judge_correct"] += (b.judge_real == y_true).sum(0)
    c["positives"] += y_true.sum(0)
    c["judge_found"] += (b.judge_real & y_true).sum(0)
    tally.lists["psnr"].append(psnr(r.reconstruction, x))
    tally.lists["ssim"].append(ssim(r.reconstruction, x))
    if cfg.alongside is not None:
        b.second_real = cfg.alongside(x) > 0.5
        tally.second["correct"] += (b.second_real == y_true).sum(0)
    if cfg.realism:
        tally.lists["real_u8"].append(u8)
        tally.lists["recon_u8"].append(to_u8(r.reconstruction))
    if cfg.features is not None:
        tally.lists["real_feats"].append(cfg.features.features(x))
        tally.lists["recon_feats"].append(cfg.features.features(r.reconstruction))
    return b


class Flip:
    """Attribute k of every face in a batch set to the opposite of what the model reads: the fixed-strength
    renders at each multiplier (each rendered once), and how a judge's verdicts on an edit score."""

    def __init__(self, model, judge, batch: Batch, k: int):
        self.model, self.judge, self.batch, self.k = model, judge, batch, k
        self.flip_to = 1.0 - (batch.probs[:, k] > 0.5).astype(np.float32)
        self.asked = np.zeros(batch.probs.shape, np.float32)
        self.mask = np.zeros(batch.probs.shape, np.float32)
        self.asked[:, k], self.mask[:, k] = self.flip_to, 1.0
        self.set_by_rule = implied_changes(model.implied, self.asked, self.mask, batch.probs)
        self._rungs = {}

    def at(self, m: float):
        """Every face with attribute k set to 'on' or 'off' at multiplier m on its gain (value
        0.5 + m (target - 0.5), i.e. intensity (m + 1) / 2), at fixed strength: (raw output, the result the
        user gets, the judge's verdicts on that result)."""
        if m not in self._rungs:
            values = np.zeros_like(self.asked)
            values[:, self.k] = 0.5 + m * (self.flip_to - 0.5)
            r = render(self.model.editor, self.batch.u8, values, self.mask)
            self._rungs[m] = (r.edited, r.result, self.judge(r.result) > 0.5)
        return self._rungs[m]

    def scored(self, verdict: np.ndarray, real: np.ndarray | None = None):
        """(hits [B] bool, summed share of the other attributes whose verdict changed, the same over the other
        attributes the edit did not set by an implied rule). real: the verdicts on the real faces."""
        real = self.batch.judge_real if real is None else real
        o = np.delete(np.arange(self.asked.shape[1]), self.k)
        moved, free = verdict[:, o] != real[:, o], ~self.set_by_rule[:, o]
        return (verdict[:, self.k] == (self.flip_to > 0.5), moved.mean(1).sum(),
                ((moved & free).sum(1) / np.maximum(free.sum(1), 1)).sum())


def edit_at_intensities(flip: Flip, tally: Tally) -> None:
    """Fixed-strength edits at each intensity: success of the result and of the raw output, disturbance (all
    other attributes; those no implied rule set), at intensity 1 the hits split by direction; and on how many
    faces an implied rule set another attribute."""
    k, c = flip.k, tally.counts
    c["implied_set"][k] += flip.set_by_rule.any(1).sum()
    for inten in tally.intensities:
        edited, _, verdict = flip.at(2 * inten - 1)
        tally.success[inten]["raw"][k] += ((flip.judge(edited) > 0.5)[:, k] == (flip.flip_to > 0.5)).sum()
        hit, moved, moved_free = flip.scored(verdict)
        tally.success[inten]["residual"][k] += hit.sum()
        tally.disturbed[inten][k] += moved
        tally.disturbed_free[inten][k] += moved_free
        if inten == 1.0:
            c["adds"][k] += (flip.flip_to > 0.5).sum()
            c["add_hits"][k] += (hit & (flip.flip_to > 0.5)).sum()


def default_edit(flip: Flip, cfg: EvalConfig, tally: Tally) -> None:
    """The product's default edit at value 1: the engine's own auto strength where the attribute has a top
    above 1, else the fixed-strength render. Scores it (success, disturbance, multiplier reached) and keeps
    per face what realism needs: artifact ratio, hit, the value edited to, the image, KID features, and the
    alongside judge's reading."""
    k, model = flip.k, flip.model
    if model.edit_tops[k] > 1:
        r = render(model.editor, flip.batch.u8, flip.asked, flip.mask, auto_strength=True)
        result, verdict, mult = r.result, flip.judge(r.result) > 0.5, r.multipliers[:, k]
    else:
        _, result, verdict = flip.at(1.0)
        mult = np.ones(len(result), np.float32)
    hit, moved, moved_free = flip.scored(verdict)
    for key, v in (("success", hit.sum()), ("disturbed", moved), ("disturbed_free", moved_free),
                   ("multiplier", mult.sum())):
        tally.auto[key][k] += v
    keep = tally.per_face
    keep["ratios"][k].append(R.artifact_ratio(result, flip.batch.x))
    keep["hits"][k].append(hit)
    keep["flip_to"][k].append(flip.flip_to)
    if cfg.realism:
        keep["edited_u8"][k].append(to_u8(result))
    if cfg.features is not None:
        keep["feats"][k].append(cfg.features.features(result))
    if cfg.alongside is not None:
        hit2, moved2, _ = flip.scored(cfg.alongside(result) > 0.5, real=flip.batch.second_real)
        tally.second["hits"][k].append(hit2)
        tally.second["disturbed"][k] += moved2


def sweep_auto_strength(flip: Flip, tally: Tally) -> None:
    """Auto strength at every swept top: one climb to the highest top (strength.auto_multipliers, the engine's
    rule, on the fixed-strength renders); a face's multiplier under a lower top t is min(it, t), its verdict
    the one of the rung it ended at."""
    k, tops = flip.k, tally.sweep_tops
    values = np.zeros_like(flip.asked)
    values[:, k] = flip.flip_to
    climb_tops = np.ones(tally.n_attr, np.float32)
    climb_tops[k] = tops[-1]
    reached = auto_multipliers(lambda rows, mult: flip.at(float(mult[0, k]))[1][rows],
                               flip.model.probabilities, values, flip.mask, climb_tops)[:, k]
    for t in tops:
        m = np.minimum(reached, t)
        verdict = np.empty_like(flip.at(1.0)[2])
        for mi in np.unique(m):
            verdict[m == mi] = flip.at(float(mi))[2][m == mi]
        hit, moved, _ = flip.scored(verdict)
        tally.swept[t]["success"][k] += hit.sum()
        tally.swept[t]["disturbed"][k] += moved


def evaluate(model, judge, cfg: EvalConfig) -> dict:
    """model: subject.UnderTest; judge: the judge every figure is read with (judge.JudgeModel); cfg: the
    data, split and settings. Scores fixed-strength edits at each intensity and the product's default edit
    at value 1, and with intensities above 1 the auto strength sweep; then realism of the default edits.
    Then (cfg.samples) the samples step: faces drawn from the latent prior with the faces' labels (samples.py);
    cfg.edits=False runs that step alone. Returns the JSON `faceedit eval --json` writes (results.assemble)."""
    from faceedit.eval.results import assemble, samples_only
    t_start = time.time()
    faces = read_faces(model, cfg)
    if not cfg.edits:
        result = samples_only(model, judge, cfg, faces)
    else:
        tally = Tally(len(faces.names), tuple(cfg.intensities), cfg.sweep_tops, cfg.alongside is not None)
        n = len(faces.idx)
        for s in range(0, n, cfg.batch):
            batch = reconstruct(model, judge, cfg, faces, faces.idx[s:s + cfg.batch], tally)
            for k in range(tally.n_attr):
                flip = Flip(model, judge, batch, k)
                edit_at_intensities(flip, tally)
                default_edit(flip, cfg, tally)
                if len(tally.sweep_tops) > 1:
                    sweep_auto_strength(flip, tally)
            cfg.log(f"evaluated {min(s + cfg.batch, n)}/{n} faces")
        result = assemble(model, judge, cfg, faces, tally, t_start, time.time() - t_start)
    if cfg.samples:
        from faceedit.eval.samples import sample_block
        result["samples"] = sample_block(model, judge, cfg, faces, result)
        result["timing_s"]["total"] = round(time.time() - t_start, 1)
    return result
