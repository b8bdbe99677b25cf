"""A training checkpoint rebuilt from an exported model directory, so the shipped weights can be trained further.

Why: the repo ships ONNX graphs, not checkpoints, and a fresh clone has no `runs/`. The graphs keep the
PyTorch parameter names, but the export folded every BatchNorm into the convolution before it (W' = W g/s,
b' = beta - m g/s), which cannot be undone exactly. It need not be: any BN whose statistics are those of the
folded conv's own output on real faces reproduces the graph in eval mode AND normalises the same way in
train mode. So each BN gets running mean m and variance v of W'x measured on training faces, weight
sqrt(v + eps) and bias m + b': eval gives (W'x - m) / sqrt(v + eps) * sqrt(v + eps) + m + b' = W'x + b'.
The discriminator was never exported: it starts fresh (checkpoint.resume says so), as do Adam's moments.

    faceedit train from-model --model faceedit/models/default --data ../shared/celeba --out runs/ft
    faceedit train --data ../shared/celeba --out runs/ft --resume ...   # continues from it

With edit_mask (`--edit-mask`) a model directory without an edit mask is rebuilt as a mask model: its weights
as they are, the mask conv at its start (weight 0, bias MASK_START_LOGIT: m ~ 0.95 everywhere), so the rebuilt
model edits as the directory does, bar the 5% the mask holds back, and a `--edit-mask` fine-tune learns to
shrink it. A directory exported with a mask is rebuilt with it either way.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from faceedit.train.model import CVAEGAN, ModelConfig

# graph -> prefix of its parameter names in the ONNX file -> prefix in CVAEGAN's state_dict
GRAPH_PREFIXES = {"encoder": ("encoder.", "encoder."), "attributes": ("head.", "attribute_head."),
                  "decoder": ("decoder.", "decoder.")}


def onnx_weights(model_dir: Path, manifest: dict) -> dict[str, dict[str, np.ndarray]]:
    """graph name -> {CVAEGAN parameter name: array}, from each fp32 graph's named initializers."""
    import onnx
    from onnx import numpy_helper
    out = {}
    for graph, (onnx_prefix, torch_prefix) in GRAPH_PREFIXES.items():
        m = onnx.load(str(model_dir / manifest["graphs"][graph]["fp32"]["path"]))  # external data next to it
        out[graph] = {torch_prefix + i.name[len(onnx_prefix):]: numpy_helper.to_array(i)
                      for i in m.graph.initializer if i.name.startswith(onnx_prefix)}
    return out


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, nn.Module, nn.BatchNorm2d]]:
    """(conv name, conv, the BatchNorm right after it) for every BN in the generator."""
    pairs = []
    for name, mod in model.named_modules():
        if name.startswith("discriminator"):
            continue
        children = list(mod.named_children())
        for (cn, c), (_, b) in zip(children, children[1:]):
            if isinstance(b, nn.BatchNorm2d) and isinstance(c, (nn.Conv2d, nn.ConvTranspose2d)):
                pairs.append((f"{name}.{cn}" if name else cn, c, b))
    return pairs


def model_config(manifest: dict, weights: dict, edit_mask: bool = False) -> ModelConfig:
    enc = weights["encoder"]
    return ModelConfig(image_size=int(manifest["image_size"]), attributes=[a["name"] for a in manifest["attributes"]],
                       z_channels=int(manifest["z_shape"][0]), width=int(enc["encoder.trunk.stages.0.0.weight"].shape[0]),
                       dec_width=int(weights["decoder"]["decoder.inp.0.weight"].shape[0]),
                       # a 3x3 `up` conv follows a nearest x2 resize; the transposed one is 4x4
                       upsample="resize" if weights["decoder"]["decoder.ups.0.up.weight"].shape[-1] == 3 else "transpose",
                       edit_mask=edit_mask or "decoder.mask.weight" in weights["decoder"])


def load_folded(model: CVAEGAN, weights: dict) -> dict[str, torch.Tensor]:
    """Copies every exported parameter in; returns the folded biases b' of the convs that precede a BN."""
    flat = {k: v for g in weights.values() for k, v in g.items()}
    shared = [k for k in weights["attributes"] if k.startswith("attribute_head.trunk.")]
    for k in shared:  # the encoder and the attribute head share one trunk: the two graphs must agree
        if not np.array_equal(weights["attributes"][k], weights["encoder"]["encoder." + k[len("attribute_head."):]]):
            raise ValueError(f"{k}: the encoder and attribute graphs disagree on the shared trunk")
    for k in shared:
        del flat[k]
    biases = {}
    state = model.state_dict()
    bn_convs = {f"{n}.weight" for n, _, _ in conv_bn_pairs(model)}
    for key, value in flat.items():
        if key.endswith(".bias") and key[:-5] + ".weight" in bn_convs:
            biases[key[:-5]] = torch.from_numpy(value.copy())
            continue
        if key not in state:
            raise ValueError(f"{key} from the model directory is not a parameter of this architecture")
        if tuple(state[key].shape) != value.shape:
            raise ValueError(f"{key}: shape {value.shape} in the model directory, {tuple(state[key].shape)} here")
        state[key] = torch.from_numpy(value.copy())
    model.load_state_dict(state)
    for name, _, bn in conv_bn_pairs(model):  # until calibrated: an identity BN that adds the folded bias
        bn.running_mean.zero_()
        bn.running_var.fill_(1 - bn.eps)
        bn.weight.data.fill_(1)
        bn.bias.data.copy_(biases[name])
    return biases


@torch.no_grad()
def calibrate(model: CVAEGAN, biases: dict, images: torch.Tensor, batch: int = 256):
    """Each BN's statistics := those of its conv's output on these faces (decoder: on their reconstructions)."""
    pairs = conv_bn_pairs(model)
    sums = {n: [0.0, 0.0, 0] for n, _, _ in pairs}

    def hook(name):
        def fn(_, __, out):
            o = out.double()
            s = sums[name]
            s[0] = s[0] + o.sum((0, 2, 3))
            s[1] = s[1] + (o * o).sum((0, 2, 3))
            s[2] += o.shape[0] * o.shape[2] * o.shape[3]
        return fn
    handles = [conv.register_forward_hook(hook(n)) for n, conv, _ in pairs]
    model.eval()
    try:
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            mu, _ = model.encoder(x)  # the trunk's hooks fire here and again in the attribute head: same means
            source = (torch.sigmoid(model.attribute_head(x)) > 0.5).float()
            model.decoder(mu, source)
    finally:
        for h in handles:
            h.remove()
    for name, _, bn in pairs:
        s0, s1, n = sums[name]
        mean = s0 / n
        var = (s1 / n - mean * mean).clamp_min(1e-6)
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_((var - bn.eps).clamp_min(1e-6).float())
        bn.weight.data.copy_((bn.running_var + bn.eps).sqrt())
        bn.bias.data.copy_(mean.float() + biases[name])


def rebuild(model_dir, edit_mask: bool = False) -> tuple[CVAEGAN, dict, dict]:
    """(model, folded biases, manifest): the exported weights as PyTorch modules, each BN an identity that adds
    its folded bias until calibrate() gives it real statistics. edit_mask: a mask model even where the directory
    has no mask (the mask conv then starts as built)."""
    from faceedit.core.model_dir import ModelInfo
    manifest = ModelInfo.load(model_dir).manifest
    weights = onnx_weights(Path(model_dir), manifest)
    model = CVAEGAN(model_config(manifest, weights, edit_mask))
    return model, load_folded(model, weights), manifest


def generator_from_model_dir(model_dir) -> tuple[CVAEGAN, dict]:
    """(model in eval mode, manifest), with no data needed: eval mode computes exactly what the graphs compute
    (the benchmark's PyTorch-eager baseline of a model directory). For training, checkpoint_from_model also
    calibrates the BN statistics on real faces."""
    model, _, manifest = rebuild(model_dir)
    return model.eval(), manifest


def checkpoint_from_model(model_dir, data, out_dir, faces: int = 2048, log=print, edit_mask: bool = False) -> Path:
    """Writes OUT_DIR/last.pt (what `train --resume` continues from; with edit_mask, `train --resume
    --edit-mask`); returns its path."""
    from faceedit.train.augment import to_tensor
    from faceedit.train.checkpoint import atomic_save
    from faceedit.train.data import ImageCache, load_celeba
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, biases, manifest = rebuild(model_dir, edit_mask)
    cfg = model.cfg
    ds = load_celeba(data)
    train = ds.split_indices("train")
    pick = np.sort(np.random.default_rng(0).choice(train, min(faces, len(train)), replace=False))
    calibrate(model, biases, to_tensor(ImageCache(ds, cfg.image_size).images[pick]))
    source = manifest.get("checkpoint") or {}  # what the export was made from
    state = {"format": "faceedit-checkpoint-1", "model_config": cfg.to_dict(),
             "model": {k: v for k, v in model.state_dict().items() if not k.startswith("discriminator.")},
             "step": int(source.get("step") or 0), "best": -math.inf, "best_by": None,
             "from_model_dir": {"path": str(model_dir), "bn_calibration_faces": len(pick)}}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "last.pt"
    atomic_save(state, path)
    log(f"wrote {path}: the generator of {model_dir} (step {state['step']}), BatchNorm statistics from "
        f"{len(pick)} training faces; the discriminator and Adam start fresh when training resumes from it"
        + ("; an edit mask model (resume it with --edit-mask)" if cfg.edit_mask else ""))
    return path
