"""The judge: an independent attribute classifier that scores edits.

It never sees the CVAE-GAN or its losses: own architecture (faceedit.train.model.Judge), own weights, trained
on the train split alone, chosen on the validation split. The generator is trained against the
discriminator's classifier, not this one, so an edit the judge accepts is one that transfers.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceedit.core.attributes import DEFAULT_ATTRIBUTES
from faceedit.train.augment import to_tensor
from faceedit.train.checkpoint import atomic_save
from faceedit.train.classifier import accuracy, classifier_data
from faceedit.train.model import Judge

JUDGE_FORMAT = "faceedit-judge-1"


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Small random shifts and brightness/contrast changes, so the judge keys on content, not pixels."""
    b = x.shape[0]
    dx, dy = torch.randint(-3, 4, (2,), generator=g).tolist()
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    bias = 0.2 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    return (x * gain + bias).clamp(-1, 1)


def train_judge(data, out, attributes=DEFAULT_ATTRIBUTES, image_size=64, epochs=6, batch_size=64, lr=1e-3,
                seed=1, steps=0, log=print) -> Path:
    torch.manual_seed(seed)
    names, labels, images, train, val = classifier_data(data, attributes, image_size)
    model = Judge(len(names), image_size).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-4)
    per_epoch = len(train) // batch_size
    total = steps or epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=total)
    g = torch.Generator().manual_seed(seed)
    out = Path(out)
    best, step, t0 = -1.0, 0, time.time()
    while step < total:
        order = train[torch.randperm(len(train), generator=g).numpy()]
        for i in range(per_epoch):
            if step >= total:
                break
            j = np.sort(order[i * batch_size:(i + 1) * batch_size])
            flip = torch.rand(len(j), generator=g).numpy() < 0.5
            x = augment(to_tensor(images[j], flip), g)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.binary_cross_entropy_with_logits(model(x).float(), torch.from_numpy(labels[j]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0:
                log(f"judge step {step}/{total} loss {loss.item():.4f} {step * batch_size / (time.time() - t0):.0f} img/s")
            if step % per_epoch == 0 or step == total:
                acc = accuracy(model, images, labels, val)
                log(f"judge step {step}: val accuracy {acc.mean():.4f}")
                if acc.mean() > best:
                    best = float(acc.mean())
                    atomic_save({"format": JUDGE_FORMAT, "attributes": list(names), "image_size": image_size,
                                 "model": model.state_dict(), "val_accuracy": acc.tolist(), "step": step}, out)
    return out


def load_judge(path) -> tuple[Judge, dict]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != JUDGE_FORMAT:
        raise ValueError(f"{path} is not a faceedit judge checkpoint")
    model = Judge(len(state["attributes"]), state["image_size"])
    model.load_state_dict(state["model"])
    return model.eval(), state
