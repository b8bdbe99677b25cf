"""What the judge and the guide share: the data an attribute classifier trains on, and its accuracy.

They are separate classifiers on purpose (own architectures, own weights); this module is the common ground,
so neither imports the other.
"""
from __future__ import annotations

import numpy as np
import torch

from faceedit.train.augment import to_tensor
from faceedit.train.data import ImageCache, load_celeba


@torch.no_grad()
def accuracy(model, images, labels, idx, bs=256) -> np.ndarray:
    model.eval()
    hits = []
    for i in range(0, len(idx), bs):
        j = idx[i:i + bs]
        p = torch.sigmoid(model(to_tensor(images[j]))) > 0.5
        hits.append((p.numpy() == (labels[j] > 0.5)))
    model.train()
    return np.concatenate(hits).mean(0)


def classifier_data(data, attributes, image_size):
    """What an attribute classifier trains on: names, float labels, the cached crops, train and val indices."""
    ds = load_celeba(data)
    names, labels = ds.select(attributes)
    return names, labels.astype(np.float32), ImageCache(ds, image_size).images, ds.split_indices("train"), ds.split_indices("val")
