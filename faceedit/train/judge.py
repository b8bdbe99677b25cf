"""The judges: independent attribute classifiers that score edits.

They never see the CVAE-GAN or its losses: own architectures, own weights, trained on the train split alone.
The generator is trained against the discriminator's classifier, not these, so an edit a judge accepts is
one that transfers. Two architectures:
- "judge" (faceedit.train.model.Judge): the choice judge. Model choices (checkpoints, gains, auto strength,
  implied rules) are made with it on the validation split. `faceedit export-judge` writes it into a judge
  set (evaluation/judges/judge.onnx).
- "reporting" (ReportingJudge below): a second judge of another design that no choice ever used, for the
  test split's reported figures and nothing else; its penultimate features also serve `faceedit eval` as
  the embedding for KID. Exported the same way (evaluation/judges/reporting_judge.onnx).
"""
from __future__ import annotations

import time
from pathlib import Path

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceedit.core.attributes import DEFAULT_ATTRIBUTES
from faceedit.train.augment import to_tensor
from faceedit.train.checkpoint import atomic_save
from faceedit.train.classifier import accuracy, classifier_data
from faceedit.train.model import Judge

JUDGE_FORMAT = "faceedit-judge-1"
ARCHS = ("judge", "reporting")


class ReportingJudge(nn.Module):
    """The reporting judge: deliberately unlike the choice judge (Judge: 5x5 convs, max pooling, max+avg
    head) and the generator's critics: a strided 4x4 stem, then depthwise-separable 3x3 blocks with SiLU,
    stride-2 down-sampling, global average pooling. features() is the penultimate embedding (8 x width)."""

    def __init__(self, n_attr: int, image_size: int = 64, width: int = 32):
        super().__init__()

        def separable(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.SiLU(),
                                 nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())

        n = int(math.log2(image_size // 8))  # 64 -> 32 (stem) -> 16 -> 8 -> 4
        chans = [width * m for m in (1, 2, 4, 8, 8, 8)][: n + 1]
        self.stem = nn.Sequential(nn.Conv2d(3, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.SiLU())
        self.stages = nn.Sequential(*[nn.Sequential(separable(a, b, 2), separable(b, b, 1))
                                      for a, b in zip(chans[:-1], chans[1:])])
        self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(chans[-1], n_attr))
        self.feature_dim = chans[-1]

    def features(self, x):
        return self.stages(self.stem(x)).mean((2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


def build_judge(arch: str, n_attr: int, image_size: int) -> nn.Module:
    if arch == "judge":
        return Judge(n_attr, image_size)
    if arch == "reporting":
        return ReportingJudge(n_attr, image_size)
    raise ValueError(f"unknown judge architecture {arch!r} (use {' or '.join(ARCHS)})")


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Small random shifts and brightness/contrast changes, so the judge keys on content, not pixels."""
    b = x.shape[0]
    dx, dy = torch.randint(-3, 4, (2,), generator=g).tolist()
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    bias = 0.2 * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    return (x * gain + bias).clamp(-1, 1)


def train_judge(data, out, attributes=DEFAULT_ATTRIBUTES, image_size=64, epochs=6, batch_size=64, lr=1e-3,
                seed=1, steps=0, log=print, arch="judge") -> Path:
    """Train a judge of architecture `arch` (see ARCHS) on the train split; keep the best by validation."""
    torch.manual_seed(seed)
    names, labels, images, train, val = classifier_data(data, attributes, image_size)
    model = build_judge(arch, len(names), image_size).to(memory_format=torch.channels_last)
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
                log(f"{arch} step {step}: val accuracy {acc.mean():.4f}")
                if acc.mean() > best:
                    best = float(acc.mean())
                    atomic_save({"format": JUDGE_FORMAT, "attributes": list(names), "image_size": image_size,
                                 "model": model.state_dict(), "val_accuracy": acc.tolist(), "step": step, "arch": arch}, out)
    return out


def load_judge(path) -> tuple[nn.Module, dict]:
    """Either architecture (checkpoints from before the reporting judge have no "arch": the choice judge)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != JUDGE_FORMAT:
        raise ValueError(f"{path} is not a faceedit judge checkpoint")
    model = build_judge(state.get("arch", "judge"), len(state["attributes"]), state["image_size"])
    model.load_state_dict(state["model"])
    return model.eval(), state
