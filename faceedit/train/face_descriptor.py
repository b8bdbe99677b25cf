"""A face descriptor the generator never trained with: dlib's face-recognition ResNet, rebuilt in torch.

The weights are Davis King's dlib_face_recognition_resnet_model_v1 (public domain), as face-api.js converted
them to TensorFlow.js and the npm package @vladmandic/face-api 1.7.15 ships them (MIT). The original files sit
unmodified in weights/face_descriptor/ (NOTICE.md there says where they came from and how the port was checked);
this module reads the tfjs manifest and its .bin shard itself, so neither TensorFlow nor node is needed.

The architecture and preprocessing follow face-api's FaceRecognitionNet: a 29-conv ResNet on 150x150 RGB
pixels minus the mean colour, divided by 255, ending in a 128-d descriptor. Two photos of one person land close
together (dlib's rule of thumb: Euclidean distance < 0.6 between unnormalised descriptors), different people far.
That holds for faces only: it has seen nothing else, and a crop of scikit-image's cat lands 0.56 from its astronaut.
All descriptors share a large common part, so cosines between unrelated images still run ~0.85-0.93.

Training only (issue 27, a second opinion from features the generator never trained): `faceedit train
--w-identity W` adds W * identity_loss(input, edit) to the generator's loss; face_features() is there for a
projected discriminator, which nothing builds yet. The runtime (faceedit/engine) never imports this module.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = Path(__file__).resolve().parent / "weights" / "face_descriptor"
MANIFEST = "face_recognition_model-weights_manifest.json"
# checked on every load, and against NOTICE.md by tests/test_face_descriptor.py
SHA256 = {
    MANIFEST: "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
    "face_recognition_model.bin": "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
}
INPUT_SIZE = 150  # dlib's face chips are 150x150
MEAN_RGB = (122.782, 117.001, 104.298)  # face-api subtracts this from 0..255 pixels, then divides by 255

# (name in the manifest, input channels, output channels, downsamples?) for each residual block, in order
BLOCKS = [("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
          ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
          ("conv64_3", 64, 64, False),
          ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False),
          ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False), ("conv256_2", 256, 256, False),
          ("conv256_down_out", 256, 256, True)]
STAGE_ENDS = ("conv32_3", "conv64_3", "conv128_2", "conv256_down_out")  # where face_features() taps the net


# ----------------------------------------------------------------------------- reading the tfjs files

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_tfjs_weights(folder: Path = WEIGHTS) -> dict[str, np.ndarray]:
    """name -> float32 array, from a tfjs weights manifest and its shards (the layout tf.io writes).

    Each manifest group lists shard files, whose bytes concatenate into one buffer, and the weights stored in it
    back to back in manifest order. A quantized weight is stored as its quantization dtype: uint8/uint16 codes q
    mean q * scale + min (face-api's file is mostly uint8), float16 is a plain half-precision value."""
    weights = {}
    for group in json.loads((folder / MANIFEST).read_text()):
        buffer = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec["dtype"] != "float32":
                raise ValueError(f"{spec['name']}: only float32 weights are expected here, not {spec['dtype']}")
            q = spec.get("quantization")
            stored = np.dtype({None: "<f4", "uint8": "u1", "uint16": "<u2", "float16": "<f2"}[q and q["dtype"]])
            count = math.prod(spec["shape"])
            raw = np.frombuffer(buffer, stored, count=count, offset=offset)
            offset += count * stored.itemsize
            if q and q["dtype"] in ("uint8", "uint16"):
                # in float64, then rounded once to float32, as JavaScript's doubles do in tf.io.decodeWeights
                values = raw.astype(np.float64) * q["scale"] + q["min"]
            else:
                values = raw
            weights[spec["name"]] = values.astype(np.float32).reshape(spec["shape"])
        if offset != len(buffer):
            raise ValueError(f"{len(buffer) - offset} bytes of {group['paths']} not described by the manifest")
    return weights


# ----------------------------------------------------------------------------- the network

def conv(cin, cout, k, down):
    # face-api pads stride-1 convs 'same' and runs the stride-2 ones 'valid' (no padding): torch's floor matches
    return nn.Conv2d(cin, cout, k, stride=2 if down else 1, padding=0 if down else k // 2)


class Residual(nn.Module):
    """conv-relu-conv plus the input, then relu. A downsampling block strides its first conv and averages the
    input over 2x2 for the skip path, padding the skip's channels with zeros when the block widens (dlib's way:
    no 1x1 projection), and the conv path with a zero row/column when the pool comes out one larger."""

    def __init__(self, cin, cout, down):
        super().__init__()
        self.conv1, self.conv2, self.down = conv(cin, cout, 3, down), conv(cout, cout, 3, False), down

    def forward(self, x):
        out = self.conv2(F.relu(self.conv1(x)))
        if self.down:
            x = F.avg_pool2d(x, 2)
            x = F.pad(x, (0, 0, 0, 0, 0, out.shape[1] - x.shape[1]))
            out = F.pad(out, (0, x.shape[3] - out.shape[3], 0, x.shape[2] - out.shape[2]))  # bottom/right
        return F.relu(out + x)


class FaceDescriptorNet(nn.Module):
    """150x150 normalised RGB -> 128-d descriptor (not yet unit length: face_descriptor() does that)."""

    def __init__(self):
        super().__init__()
        self.stem = conv(3, 32, 7, True)
        self.blocks = nn.ModuleDict({name: Residual(cin, cout, down) for name, cin, cout, down in BLOCKS})
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, x, features=False):
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)  # 150 -> 72 -> 35
        taps = []
        for name, block in self.blocks.items():  # 35 -> 17 -> 8 -> 4 -> 2
            x = block(x)
            if name in STAGE_ENDS:
                taps.append(x)
        return taps if features else self.fc(x.mean((2, 3)))

    def load_tfjs(self, weights: dict[str, np.ndarray]):
        """Copy face-api's tensors in. Each conv is followed by dlib's affine 'scale' layer (its batch norm,
        frozen after training): y = (conv(x) + b) * s + t, which folds into the conv's own weight and bias."""
        def fold(module, prefix):
            s, t = weights[f"{prefix}/scale/weights"], weights[f"{prefix}/scale/biases"]
            w = weights[f"{prefix}/conv/filters"].transpose(3, 2, 0, 1)  # tfjs HWIO -> torch OIHW
            module.weight.data = torch.from_numpy(w * s[:, None, None, None])
            module.bias.data = torch.from_numpy(weights[f"{prefix}/conv/bias"] * s + t)
        fold(self.stem, "conv32_down")
        for name, block in self.blocks.items():
            fold(block.conv1, f"{name}/conv1")
            fold(block.conv2, f"{name}/conv2")
        self.fc.weight.data = torch.from_numpy(weights["fc"].T.copy())  # face-api computes x @ fc
        return self


def load_face_descriptor_net(folder: Path = WEIGHTS) -> FaceDescriptorNet:
    """The network with the shipped weights, frozen (a judge, never trained here), after the files' sha256."""
    for name, digest in SHA256.items():
        if sha256(folder / name) != digest:
            raise ValueError(f"{folder / name}: sha256 differs from the one in faceedit/train/face_descriptor.py")
    # built under a forked RNG: the layers' random initialisation, overwritten at once, must not move a training
    # run's random stream, or a run would draw differently depending on when its process first loaded the net
    # (a resumed run loads it at its first step after the checkpoint, the uninterrupted one at step 1)
    with torch.random.fork_rng(devices=[]):
        net = FaceDescriptorNet().load_tfjs(read_tfjs_weights(folder)).eval()
    return net.requires_grad_(False)


@functools.lru_cache(maxsize=None)
def _net_on(device: str, dtype: torch.dtype = torch.float32) -> FaceDescriptorNet:
    """One copy per device and dtype, each cast from the shipped float32 weights: casting a shared copy in place
    (as a bf16 autocast run once did) would round the float32 net's weights for every later caller."""
    return load_face_descriptor_net().to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------- what a training run would call

def preprocess(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [-1, 1] -> the net's (N, 3, 150, 150) input, differentiable.

    As face-api does: pad to a square with black (more of it after than before when odd), resize to 150, then
    (pixel - mean) / 255 on the 0..255 scale. The resize is torch's bilinear with half-pixel centres and
    antialiasing, not TF's legacy corner-anchored one face-api uses, so inputs that need resizing give close but
    not identical descriptors; at 150x150 there is no resize and the port matches (NOTICE.md)."""
    pixels = (images + 1) * 127.5
    h, w = pixels.shape[-2:]
    if h != w:
        diff = abs(h - w)
        after = math.floor(diff / 2 + 0.5)  # JavaScript's Math.round
        pad = (diff - after, after, 0, 0) if h > w else (0, 0, diff - after, after)
        pixels = F.pad(pixels, pad)
    if pixels.shape[-1] != INPUT_SIZE:
        # in float32: torch's antialiased resize has no bfloat16 kernel on the CPU, and a bf16 autocast run
        # (a CPU with AVX512-BF16 or AMX) hands it bf16 edits
        pixels = F.interpolate(pixels.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                               antialias=True).to(pixels.dtype)
    mean = torch.tensor(MEAN_RGB, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (pixels - mean) / 255


def face_descriptor(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [-1, 1], any size (face crops, roughly as dlib aligns them) -> (N, 128), unit length.
    Gradients flow to the images, never to the net's weights."""
    net = _net_on(str(images.device), images.dtype)
    return F.normalize(net(preprocess(images)), dim=1)


def face_features(images: torch.Tensor) -> list[torch.Tensor]:
    """The net's feature maps at the end of each of its four stages (32, 64, 128, 256 channels; 35, 17, 8, 2
    pixels square): the frozen feature space a projected discriminator would put its heads on."""
    net = _net_on(str(images.device), images.dtype)
    return net(preprocess(images), features=True)


def identity_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of the two batches' descriptors, averaged: 0 for the same face, ~1 for unrelated
    ones. a and b are images (N, 3, H, W) in [-1, 1], or descriptors (N, 128) already computed (a run would
    compute the input's once, without gradient, and compare each edit against it)."""
    da = a if a.dim() == 2 else face_descriptor(a)
    db = b if b.dim() == 2 else face_descriptor(b)
    return (1 - F.cosine_similarity(da, db, dim=1)).mean()
