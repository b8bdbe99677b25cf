"""The guide: a fixed, adversarially robust attribute classifier that the edit loss may consult.

Why: the two classifiers in the edit loss (D's attribute logits and the snapshot of the attribute head) are
ordinary classifiers, and the generator learns to satisfy them with patterns nobody else sees: edits they
accept, an independent judge rejects (the figures: docs/training-log.md, 2026-11-27). A classifier trained on
adversarial examples (FGSM with a random start, Wong et al. 2020) cannot be
moved by small pixel patterns, so the only way to change its verdict is to change what the face looks like.

It is not the judge: the architecture is the model's encoder trunk + attribute head (the judge has its own),
the weights are its own, and it is trained on the train split only. The judge never trains anything.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceedit.core.attributes import DEFAULT_ATTRIBUTES
from faceedit.train.augment import augment, to_tensor
from faceedit.train.checkpoint import atomic_save
from faceedit.train.classifier import accuracy, classifier_data
from faceedit.train.model import AttributeHead, EncoderTrunk, ModelConfig

GUIDE_FORMAT = "faceedit-guide-1"


def build_guide(n_attr: int, image_size: int = 64, width: int = 48) -> nn.Module:
    cfg = ModelConfig(image_size=image_size, attributes=[str(i) for i in range(n_attr)], width=width)
    return AttributeHead(cfg, EncoderTrunk(cfg))


def fgsm_example(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """x moved by at most eps (per pixel, images in [-1, 1]) in the direction that hurts the model most:
    a random start, then one signed-gradient step of 1.25 eps (FGSM-RS)."""
    delta = (torch.rand_like(x) * 2 - 1) * eps
    delta.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.binary_cross_entropy_with_logits(model((x + delta).clamp(-1, 1)).float(), y)
    grad, = torch.autograd.grad(loss, delta)
    delta = (delta + 1.25 * eps * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(-1, 1).detach()


def train_guide(data, out, attributes=DEFAULT_ATTRIBUTES, image_size=64, steps=1000, batch_size=64, lr=1e-3,
                eps=8 / 255, seed=2, width=48, log=print) -> Path:
    """eps is in units of the [-1, 1] image range (8/255 there = 4/255 of the usual [0, 1]); eps 0 trains a plain
    classifier of the same architecture (no adversarial half), e.g. a verifier the generator never met."""
    torch.manual_seed(seed)
    names, labels, images, train, val = classifier_data(data, attributes, image_size)
    model = build_guide(len(names), image_size, width).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    per_epoch = len(train) // batch_size
    out, t0 = Path(out), time.time()
    for step in range(1, steps + 1):
        if (step - 1) % per_epoch == 0:
            order = train[torch.randperm(len(train), generator=g).numpy()]
        i = (step - 1) % per_epoch
        j = np.sort(order[i * batch_size:(i + 1) * batch_size])
        flip = torch.rand(len(j), generator=g).numpy() < 0.5
        x, y = augment(to_tensor(images[j], flip)), torch.from_numpy(labels[j])
        if eps > 0:
            x, y = torch.cat([x, fgsm_example(model, x, y, eps)]), torch.cat([y, y])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            log(f"guide step {step}/{steps} loss {loss.item():.4f} {step * batch_size / (time.time() - t0):.0f} img/s")
    acc = accuracy(model, images, labels, val)
    log(f"guide: val accuracy {acc.mean():.4f}")
    atomic_save({"format": GUIDE_FORMAT, "attributes": list(names), "image_size": image_size, "eps": eps,
                 "model": model.state_dict(), "val_accuracy": acc.tolist(), "step": steps}, out)
    return out


def load_guide(path) -> tuple[nn.Module, dict]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != GUIDE_FORMAT:
        raise ValueError(f"{path} is not a faceedit guide checkpoint")
    width = state["model"]["trunk.stages.0.0.weight"].shape[0]
    model = build_guide(len(state["attributes"]), state["image_size"], width)
    model.load_state_dict(state["model"])
    return model.eval(), state
