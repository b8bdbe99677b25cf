"""Checkpoints: what a run writes, how it resumes, and the moving average of the generator.

A checkpoint is a plain dict of state dicts and primitives ("faceedit-checkpoint-1"), loadable with
torch.load(weights_only=True), written to a temporary file and renamed. last.pt / step_N.pt / best.pt carry
everything an exact resume needs (optimizers, the frozen teacher, the RNG, the average); step_N_ema.pt and the
slim ones of `faceedit train bundle slim` carry the generator side only and load like any.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch

from faceedit.core.files import atomic_path
from faceedit.train.model import CVAEGAN, GENERATOR_PARTS, ModelConfig

FORMAT = "faceedit-checkpoint-1"


def atomic_save(obj, path: Path):
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path) -> tuple[CVAEGAN, dict]:
    """Model in eval mode + the checkpoint dict (weights_only: no code runs while loading)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a faceedit checkpoint")
    model = CVAEGAN(ModelConfig(**state["model_config"]))
    # A slim checkpoint (faceedit.train.bundle) may carry the generator side alone: D is not needed to
    # evaluate or export, and is left untrained then.
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if unexpected or any(not k.startswith("discriminator.") for k in missing):
        raise ValueError(f"{path}: weights do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), state


# ---- the generator's moving average ------------------------------------------------------------------
def generator_state(model: CVAEGAN) -> dict:
    """Encoder, attribute head and decoder: what eval and export need (D is training-only)."""
    return {k: v for k, v in model.state_dict().items() if k.startswith(GENERATOR_PARTS)}


def generator_parameters(model: CVAEGAN) -> dict:
    # every name, shared ones too (the encoder and the attribute head share a trunk): each name the
    # checkpoint carries must hold the average, or loading would put live weights back into the trunk
    return {k: p for k, p in model.named_parameters(remove_duplicate=False) if k.startswith(GENERATOR_PARTS)}


def start_ema(model: CVAEGAN, saved: dict | None = None) -> dict:
    """The average starts from the current weights (or continues from a checkpoint's)."""
    ema = {k: p.detach().clone() for k, p in generator_parameters(model).items()}
    ema.update({k: v for k, v in (saved or {}).items() if k in ema})
    return ema


@torch.no_grad()
def update_ema(ema: dict, model: CVAEGAN, decay: float):
    torch._foreach_lerp_(list(ema.values()), [p.detach() for p in generator_parameters(model).values()], 1 - decay)


def ema_checkpoint(trainer, batchnorm: dict | None = None) -> dict:
    """The averaged generator as a generator-only checkpoint (loads like any). Only parameters are averaged;
    `batchnorm` (Trainer.ema_batchnorm) gives the BatchNorm statistics measured for the averaged weights, which
    otherwise are the live model's."""
    weights = {k: trainer.ema.get(k, v) for k, v in generator_state(trainer.model).items()}
    weights.update(batchnorm or {})
    return {"format": FORMAT, "config": asdict(trainer.cfg), "model_config": trainer.cfg.model_config().to_dict(),
            "model": weights, "step": trainer.step, "best": trainer.best, "best_by": trainer.best_by,
            "ema": trainer.cfg.ema}


# ---- a run's checkpoints ----------------------------------------------------------------------------
def training_state(trainer) -> dict:
    """Everything an exact resume needs."""
    return {
        "format": FORMAT,
        "config": asdict(trainer.cfg),
        "model_config": trainer.cfg.model_config().to_dict(),
        "model": trainer.model.state_dict(),
        "opt_g": trainer.opt_g.state_dict(),
        "opt_d": trainer.opt_d.state_dict(),
        "step": trainer.step,
        "best": trainer.best,
        "best_by": trainer.best_by,
        "teacher": trainer.teacher.state_dict(),
        "rng": torch.get_rng_state(),
        **({"ema_weights": trainer.ema} if trainer.ema is not None else {}),
        **{key: getattr(trainer, key).state_dict()  # each side critic the run has, and its Adam
           for name, opt, _ in SIDE_CRITICS if getattr(trainer, name) is not None for key in (name, opt)},
    }


# The critics that live beside D, each trained with its own Adam and turned on by an option: the trainer's
# attributes holding it and its Adam (also their keys in a checkpoint), and the option (a run may turn one on
# when it resumes; its weights then start fresh).
SIDE_CRITICS = (("projected", "opt_p", "--w-projected"), ("latent", "opt_l", "--w-latent-adv"))


def save(trainer, name: str, metrics: dict | None = None):
    """OUT/name, from rank 0 only (DDP ranks hold the same weights)."""
    if trainer.rank != 0:
        return
    state = training_state(trainer)
    if metrics:
        state["metrics"] = metrics
    atomic_save(state, trainer.out / name)


def write_run_record(trainer):
    """OUT/run.json: what the run is (its config and data folders) and how far it got (steps, and the wall time of
    each session that trained it), so a run carried across sessions and machines can be told apart and timed."""
    if trainer.rank != 0:
        return
    path = trainer.out / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(trainer.t_start))
    session = {"started": started, "start_step": trainer.start_step, "step": trainer.step,
               "seconds": round(time.time() - trainer.t_start), "cpus": os.cpu_count(),
               "device": str(trainer.device), "world": trainer.world}
    sessions = [s for s in record.get("sessions", []) if s.get("started") != started] + [session]
    record = {"format": "faceedit-run-1", "config": asdict(trainer.cfg), "data": trainer.data_record,
              "step": trainer.step, "wall_seconds": sum(s["seconds"] for s in sessions), "sessions": sessions,
              "torch": torch.__version__}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n")


def resume(trainer, path: Path):
    """Continue from a checkpoint: a full one exactly; a slim one (no optimizer state) or a generator-only
    one (no D) with what it lacks started afresh, said in the log."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    was = state.get("model_config", {}).get("upsample", "transpose")
    if was != trainer.cfg.upsample:
        raise RuntimeError(f"{path} was trained with --upsample {was}; a run cannot change it "
                           f"(start a new run in another --out to try {trainer.cfg.upsample})")
    if state.get("model_config", {}).get("edit_mask", False) and not trainer.cfg.edit_mask:
        raise RuntimeError(f"{path} was trained with --edit-mask: resume it with --edit-mask")
    missing, unexpected = trainer.model.load_state_dict(state["model"], strict=False)
    # a run may turn the edit mask on when it resumes: its conv starts as built (m ~ 0.95: the full-face edit)
    new_mask = [k for k in missing if k.startswith("decoder.mask.")]
    missing = [k for k in missing if k not in new_mask]
    if new_mask:
        trainer.log(f"{path} has no edit mask: it starts at ~0.95 everywhere (the full-face edit)")
        if "opt_g" in state:  # the mask conv is opt_g's last group: its Adam moments start afresh
            opt_g = state["opt_g"]
            first = max((i for g in opt_g["param_groups"] for i in g["params"]), default=-1) + 1
            opt_g["param_groups"].append({**opt_g["param_groups"][0],
                                          "params": list(range(first, first + len(new_mask)))})
    # a run may turn the projection D on when it resumes: the embedding starts at zero, with fresh moments;
    # a generator-only checkpoint (bundle slim --generator-only, train from-model) brings no D at all
    fresh_d = bool(missing) and all(k.startswith("discriminator.") for k in missing) and "opt_g" not in state
    if unexpected or (missing not in ([], ["discriminator.embed.weight"]) and not fresh_d):
        raise RuntimeError(f"{path}: weights do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if fresh_d and missing != ["discriminator.embed.weight"]:
        trainer.log(f"{path} has no discriminator: it starts fresh")
    elif missing:
        trainer.log(f"{path} has no projection embedding: it starts at zero")
    if "opt_g" in state:
        trainer.opt_g.load_state_dict(state["opt_g"])
        opt_d = state["opt_d"]
        if missing:
            base = opt_d["param_groups"][0]
            opt_d["param_groups"].append({**base, "params": [len(base["params"])]})
        trainer.opt_d.load_state_dict(opt_d)
    else:  # a slim checkpoint (faceedit.train.bundle): the weights travel, Adam's moments start afresh
        trainer.log(f"{path} has no optimizer state: Adam starts afresh")
    trainer.step, trainer.best = state["step"], state["best"]
    if state.get("best_by") != trainer.best_by:  # a score of another kind is not comparable
        trainer.best = -math.inf
    trainer.teacher.load_state_dict(state.get("teacher", trainer.model.attribute_head.state_dict()))
    if "rng" in state:
        torch.set_rng_state(state["rng"])
    for name, opt, option in SIDE_CRITICS:  # its weights and Adam, or fresh ones for a run turning it on
        critic = getattr(trainer, name)
        if critic is not None and name in state:
            critic.load_state_dict(state[name])
            getattr(trainer, opt).load_state_dict(state[opt])
        elif critic is not None:
            trainer.log(f"{path} has no {name} critic: it starts fresh")
        elif name in state:
            trainer.log(f"{path} has a {name} critic: this run (no {option}) leaves it out")
    if trainer.ema is not None:  # a run that turns the average on starts it from the resumed weights
        trainer.ema = start_ema(trainer.model, state.get("ema_weights"))
    trainer.log(f"resumed from {path} at step {trainer.step}")
