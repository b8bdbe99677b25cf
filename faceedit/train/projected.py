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

With `--projected-local` (an edit mask run) the critic judges an edit patch by patch rather than as a whole: an
edit is the real face wherever its mask is 0, so averaging the patch logits of a composite mostly scores real
pixels, and a blot on the mouth moves the verdict by the blot's share of the face. Instead each patch of a
composite is fake by the share of it the mask opened and real by the rest (the masked adversarial loss of LaMa,
Suvorov et al. 2022; here the edited and the untouched shares are each averaged over their own area, so a small
edit weighs as much as the rest of the face), and the generator pays for its edited patches only, averaged over
what the mask opened.
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
        return torch.stack([m.flatten(1).mean(1) for m in self.patch_logits(features)], 1)

    def patch_logits(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """The recogniser's four feature maps -> four (N, 1, h, w) maps of patch logits (real > 0)."""
        return [head(f).float() for head, f in zip(self.heads, features)]


def _opened(mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The share of each patch of a logit map that the edit's mask (N, 1, H, W) opened: its mean over the patch."""
    return F.interpolate(mask.float(), size=logits.shape[-2:], mode="area")


def critic_loss(critic: ProjectedCritic, real: torch.Tensor, fake: torch.Tensor,
                fake_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The heads' loss: real faces up, generated ones down (non-saturating, each stage weighing the same). With
    fake_mask (--projected-local) a fake's patches are fake by the share its mask opened, real by the rest. The
    recogniser's features carry no gradient here: only the heads learn."""
    with torch.no_grad():
        feats = face_features(torch.cat([real, fake]))
    b, loss = len(real), 0.0
    for logits in critic.patch_logits(feats):
        if fake_mask is None:  # one verdict per image: the mean of its patch logits
            verdict = logits.flatten(1).mean(1)
            loss = loss + F.softplus(-verdict[:b]).mean() + F.softplus(verdict[b:]).mean()
        else:
            # each side averaged over its own share: an edit opens ~10% of a face, and over all patches at once
            # "everything is real" cost the critic only that 10% (runs/mask7's first try: the heads said real
            # everywhere, loss 0.3, and the generator paid nothing)
            m, on_fakes = _opened(fake_mask, logits), logits[b:]
            loss = (loss + F.softplus(-logits[:b]).mean()
                    + (m * F.softplus(on_fakes)).sum() / m.sum().clamp_min(1e-6)
                    + ((1 - m) * F.softplus(-on_fakes)).sum() / (1 - m).sum().clamp_min(1e-6))
    return loss / len(critic.heads)


def generator_loss(critic: ProjectedCritic, fake: torch.Tensor, fake_mask: torch.Tensor | None = None) -> torch.Tensor:
    """What the generator pays for an edit the heads call fake; with fake_mask, for its edited patches only."""
    maps = critic.patch_logits(face_features(fake))
    if fake_mask is None:
        return torch.stack([F.softplus(-m.flatten(1).mean(1)).mean() for m in maps]).mean()
    losses = []
    for logits in maps:
        m = _opened(fake_mask, logits)
        losses.append((m * F.softplus(-logits)).sum() / m.sum().clamp_min(1e-6))
    return torch.stack(losses).mean()
