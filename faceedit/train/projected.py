"""A projected discriminator: small trainable heads on a face recogniser's frozen feature maps (issue 27, part 2).

In the line of Sauer et al.'s Projected GANs: the real/fake verdict is read off features a network learned on
millions of real faces (dlib's face-recognition ResNet, faceedit.train.face_descriptor), so with few training faces
the critic does not have to learn from scratch what a face looks like, and it cannot drift toward whatever pattern
the generator fooled it with last (the features are fixed; only the heads learn). Our own D keeps its jobs (its
classifier, the learned similarity, its own verdict); this critic adds a second verdict on the edits.

One head per stage of the recogniser (32, 64, 128 and 256 channels at 35, 17, 8 and 2 pixels square): a 1x1
conv, a leaky ReLU and a 3x3 conv to a map of patch logits, averaged per stage. The head convs are spectrally
normalised (as in Projected GANs), which bounds how sharply a verdict can turn and keeps the heads from
overpowering the generator early. Training-only; `faceedit train --w-projected W` turns it on.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from faceedit.train.face_descriptor import face_features

STAGE_CHANNELS = (32, 64, 128, 256)  # face_descriptor.STAGE_ENDS' widths


class ProjectedCritic(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(spectral_norm(nn.Conv2d(c, width, 1)), nn.LeakyReLU(0.2, inplace=True),
                          spectral_norm(nn.Conv2d(width, 1, 3, 1, 1)))
            for c in STAGE_CHANNELS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [-1, 1] -> (N, 4) logits, one per stage (real > 0). Gradients flow to the images
        through the frozen recogniser."""
        return self.judge(face_features(images))

    def judge(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The recogniser's four feature maps -> (N, 4) logits."""
        return torch.stack([head(f).flatten(1).mean(1) for head, f in zip(self.heads, features)], 1)


def critic_loss(critic: ProjectedCritic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The heads' loss: real faces up, generated ones down (non-saturating, each stage weighing the same). The
    recogniser's features carry no gradient here: only the heads learn."""
    with torch.no_grad():
        feats = face_features(torch.cat([real, fake]))
    logits = critic.judge(feats).float()
    b = len(real)
    return F.softplus(-logits[:b]).mean() + F.softplus(logits[b:]).mean()


def generator_loss(critic: ProjectedCritic, fake: torch.Tensor) -> torch.Tensor:
    """What the generator pays for an edit the heads call fake."""
    return F.softplus(-critic(fake).float()).mean()
