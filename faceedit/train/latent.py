"""A latent adversary: the encoder's latent must not tell the attributes (issue 27, part 2).

Why: an edit is the decoder run on the face's latent with other attributes. When the latent already carries the
attributes (the hair's colour, the glasses, the beard: our latent is spatial, 16 x 8 x 8, and holds all of that),
the decoder learns to read them from the latent and ignore the attribute input, so changing that input changes
little. The edit losses then force the change through classifiers, and the cheapest way to move a classifier is
a wash of colour, not a photo of a bald head. Fader networks (Lample et al. 2017) take the other road: a small
classifier learns to read the attributes off the latent, and the encoder is trained to leave it nothing to read.
A latent that says nothing about the attributes leaves the decoder only its attribute input to draw them from,
and it learns to draw them from reconstructing real faces that have them: the edit comes from what real bald,
bearded and bespectacled faces look like, not from what a classifier can be pushed by.

Here the encoder's target is "undecided" (probability 0.5 for every attribute), not Fader's flipped labels, so a
latent that learned to encode an attribute inverted would pay as much as one that encodes it straight. The
classifier learns from the latent without gradient to the encoder; the encoder then pays through the classifier's
verdict with the classifier's weights frozen for that pass. Training-only; `faceedit train --w-latent-adv W` turns
it on.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LatentClassifier(nn.Module):
    """Latent mean (N, zc, 8, 8) -> (N, A) attribute logits: a 3x3 conv, then two stride-2 convs down to 2 x 2,
    then a linear layer (the latent is 8 x 8 at every crop size: model.ModelConfig.z_shape). Dropout as in Fader
    networks, so it does not memorise one batch's latents."""

    def __init__(self, z_channels: int, n_attr: int, width: int = 256, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(z_channels, width, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * 4, n_attr))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent)


def classifier_loss(classifier: LatentClassifier, latent: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """The classifier's loss: read the labels off the latent (no gradient reaches the encoder)."""
    return F.binary_cross_entropy_with_logits(classifier(latent.detach()).float(), attrs.float())


def encoder_loss(classifier: LatentClassifier, latent: torch.Tensor) -> torch.Tensor:
    """What the encoder pays for what the classifier still reads: BCE of its verdict against 0.5, minus the
    BCE's floor (log 2), so 0 means the classifier learned nothing from this latent."""
    logits = classifier(latent).float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5)) - math.log(2.0)
