"""The conditional VAE-GAN: encoder q(z|x), attribute head, decoder p(x|z,y), discriminator, judge.

Images are float tensors in [-1, 1], NCHW. Attributes y are 0/1 floats; the decoder sees them as 2y-1,
so an "intensity" v in [-1, 2] maps linearly onto [-3, 3].

Export-friendly by construction: BatchNorm only (folds into the conv before it), no random op inside a
module (the caller samples z = mu + sigma * eps), stride-2 transposed convs with kernel 4 / padding 1 that
double exactly without output_padding.

Why the decoder looks like this: a plain CVAE that only sees y at its input learns to ignore it (edits do
not land). Here y enters at every scale twice: tiled and concatenated before each up-sampling conv, and
as a FiLM scale/shift after its BatchNorm. The latent is spatial (zc x 8 x 8) so reconstructions keep the
face's layout and detail instead of the blur of a single vector.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceedit.core.attributes import DEFAULT_ATTRIBUTES
from faceedit.train.config import UPSAMPLE_MODES


@dataclass
class ModelConfig:
    image_size: int = 64
    attributes: list[str] = field(default_factory=lambda: list(DEFAULT_ATTRIBUTES))
    z_channels: int = 16          # latent is z_channels x 8 x 8
    width: int = 64               # channels of the first encoder stage; doubles per stage
    dec_width: int = 256          # channels of the decoder at 8x8; halves per stage
    projection: bool = False      # D's real/fake logit is conditioned on the attributes (see Discriminator)
    upsample: str = "transpose"   # decoder x2 steps: "transpose" (4x4 stride-2 ConvTranspose) or "resize"
                                  # (nearest x2, then a 3x3 conv: no uneven kernel overlap, no checkerboard)
    edit_mask: bool = False       # the decoder also draws a soft mask: where an edit applies (see composite)

    @property
    def n_attr(self) -> int:
        return len(self.attributes)

    @property
    def n_stages(self) -> int:    # 64 -> 3 stages (64->32->16->8), 128 -> 4
        return int(math.log2(self.image_size // 8))

    @property
    def z_shape(self) -> tuple[int, int, int]:
        return (self.z_channels, 8, 8)

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.edit_mask:  # a model without a mask is recorded exactly as before the option existed
            del d["edit_mask"]
        return d


def down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class EncoderTrunk(nn.Module):
    """Image -> 8x8 feature map, shared by the latent head and the attribute head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        chans = [3] + [min(cfg.width * 2**i, 512) for i in range(cfg.n_stages)]
        self.stages = nn.Sequential(*[down(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.out_channels = chans[-1]
        self.refine = nn.Sequential(nn.Conv2d(chans[-1], chans[-1], 3, 1, 1, bias=False),
                                    nn.BatchNorm2d(chans[-1]), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x):
        return self.refine(self.stages(x))


class Encoder(nn.Module):
    """q(z|x): returns (mu, logvar), each zc x 8 x 8."""

    def __init__(self, cfg: ModelConfig, trunk: EncoderTrunk):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Conv2d(trunk.out_channels, 2 * cfg.z_channels, 3, 1, 1)

    def forward(self, x):
        mu, logvar = self.head(self.trunk(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 6.0)


class AttributeHead(nn.Module):
    """Image -> attribute logits, on the shared encoder trunk."""

    def __init__(self, cfg: ModelConfig, trunk: EncoderTrunk):
        super().__init__()
        self.trunk = trunk
        c = trunk.out_channels
        self.head = nn.Sequential(down(c, 2 * c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * c, cfg.n_attr))

    def forward(self, x):
        return self.head(self.trunk(x))


def tile(y, h):
    return y[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])


class CondUp(nn.Module):
    """x2 up-sampling conditioned on y: concat tiled y -> ConvT (or nearest x2 + 3x3 conv) -> BN -> FiLM(y)
    -> ReLU -> residual 3x3."""

    def __init__(self, cin: int, cout: int, n_attr: int, upsample: str = "transpose"):
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, not {upsample!r}")
        self.resize = upsample == "resize"
        # one name, `up`, for either conv: BatchNorm folding (export) and from-model rebuilding find it there
        self.up = (nn.Conv2d(cin + n_attr, cout, 3, 1, 1, bias=False) if self.resize
                   else nn.ConvTranspose2d(cin + n_attr, cout, 4, 2, 1, bias=False))
        self.bn = nn.BatchNorm2d(cout)
        self.film = nn.Linear(n_attr, 2 * cout)
        self.res = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, h, y):
        h = torch.cat([h, tile(y, h)], 1)
        if self.resize:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.bn(self.up(h))
        gamma, beta = self.film(y)[:, :, None, None].chunk(2, dim=1)
        h = F.relu(h * (1 + gamma) + beta)
        return h + self.res(h)


# The mask conv starts at weight 0 and this bias: m = sigmoid(3) ~ 0.95 everywhere, so a mask model starts as
# the full-face residual edit (a mask-less model's weights loaded into it edit as before) and learns to shrink it.
MASK_START_LOGIT = 3.0


class Decoder(nn.Module):
    """p(x|z,y): (z, attributes in 0..1) -> image in [-1, 1]; with cfg.edit_mask also a soft mask in [0, 1]
    (1 x S x S) that says where an edit with these attributes applies (see composite()).

    The mask is its own 3x3 conv (`mask`) on the features the RGB conv (`out`) reads: the same maths as one
    4-channel output conv, with the RGB weights keeping their names and shapes, so a mask-less model's weights
    (a checkpoint, or a model directory through from_model) load into a mask model unchanged."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n, c = cfg.n_attr, cfg.dec_width
        self.inp = nn.Sequential(nn.Conv2d(cfg.z_channels + n, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.film = nn.Linear(n, 2 * c)
        chans = [max(c // 2**i, 32) for i in range(cfg.n_stages + 1)]
        self.ups = nn.ModuleList([CondUp(a, b, n, cfg.upsample) for a, b in zip(chans[:-1], chans[1:])])
        self.out = nn.Conv2d(chans[-1] + n, 3, 3, 1, 1)
        self.mask = nn.Conv2d(chans[-1] + n, 1, 3, 1, 1) if cfg.edit_mask else None
        if self.mask is not None:
            nn.init.zeros_(self.mask.weight)
            nn.init.constant_(self.mask.bias, MASK_START_LOGIT)

    def forward(self, z, attrs, with_mask: bool = False):
        """The image; with_mask=True: (image, mask [N,1,S,S] in [0, 1], or None for a model without one)."""
        y = attrs * 2 - 1
        h = self.inp(torch.cat([z, tile(y, z)], 1))
        gamma, beta = self.film(y)[:, :, None, None].chunk(2, dim=1)
        h = F.relu(h * (1 + gamma) + beta)
        for up in self.ups:
            h = up(h, y)
        h = torch.cat([h, tile(y, h)], 1)
        image = torch.tanh(self.out(h))
        if not with_mask:
            return image
        return image, (torch.sigmoid(self.mask(h)) if self.mask is not None else None)


class Discriminator(nn.Module):
    """Real/fake logit, attribute logits (trained on real images only), and the features at 8x8 that
    define the learned similarity for reconstruction (Larsen et al.).

    With cfg.projection, forward(x, y) adds a projection term <embed(y), features> to the real/fake logit
    (Miyato & Koyama's projection discriminator): an edit must then look like a real face *with the target
    attributes*, not merely like a real face that happens to trigger a classifier. Without it the generator
    satisfied the edit classifiers on Bald and Mustache with patterns an independent judge does not see."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        chans = [3] + [min(64 * 2**i, 512) for i in range(cfg.n_stages)]
        self.features = nn.Sequential(*[down(a, b, norm=False) for a, b in zip(chans[:-1], chans[1:])])
        c = chans[-1]
        self.tail = nn.Sequential(nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Flatten())
        self.adv = nn.Linear(2 * c * 16, 1)
        self.cls = nn.Sequential(nn.Linear(2 * c * 16, 512), nn.LeakyReLU(0.2, inplace=True), nn.Linear(512, cfg.n_attr))
        self.embed = nn.Linear(cfg.n_attr, 2 * c * 16, bias=False) if cfg.projection else None
        if self.embed is not None:
            nn.init.zeros_(self.embed.weight)  # starts as the unconditional D (resumable from one)

    def forward(self, x, attrs=None):
        f = self.features(x)
        t = self.tail(f)
        adv = self.adv(t).squeeze(1)
        if self.embed is not None and attrs is not None:
            adv = adv + (self.embed(attrs.to(t.dtype) * 2 - 1) * t).sum(1)
        return adv, self.cls(t), f


# state_dict prefixes of what eval and export need; the discriminator is training-only
GENERATOR_PARTS = ("encoder.", "attribute_head.", "decoder.")


class CVAEGAN(nn.Module):
    """Everything that is trained together; export takes encoder, attribute head and decoder from it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        trunk = EncoderTrunk(cfg)
        self.encoder = Encoder(cfg, trunk)
        self.attribute_head = AttributeHead(cfg, trunk)
        self.decoder = Decoder(cfg)
        self.discriminator = Discriminator(cfg)

    def edit(self, image, target, mask):
        """See edit() below."""
        return edit(self.encoder, self.attribute_head, self.decoder, image, target, mask)

    def generator_parameters(self):
        seen = set()
        for m in (self.encoder, self.attribute_head, self.decoder):
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p


def edit(encoder, attribute_head, decoder, image, target, mask):
    """The product's edit, its one definition in PyTorch (the export's fused editor graph and the benchmark's
    eager baseline both run it): image [N,3,S,S], target/mask [N,A] decoder values -> (edited,
    reconstruction, probabilities), and for a model with an edit mask a fourth output, the edited pass's mask
    [N,1,S,S]. Attributes not masked keep the attribute head's 0/1 decisions; callers apply the edit as a
    residual on the crop, composite(image, edited, reconstruction, edit_mask): image + edited - reconstruction,
    gated by the mask where there is one."""
    mu, _ = encoder(image)
    probabilities = torch.sigmoid(attribute_head(image))
    source = (probabilities > 0.5).to(image.dtype)
    y = mask * target + (1 - mask) * source
    # one decoder pass over 2N rows instead of two passes: same maths, better batching
    n = image.shape[0]
    if decoder.mask is None:
        both = decoder(torch.cat([mu, mu], 0), torch.cat([y, source], 0))
        return both[:n], both[n:], probabilities
    both, edit_mask = decoder(torch.cat([mu, mu], 0), torch.cat([y, source], 0), with_mask=True)
    return both[:n], both[n:], probabilities, edit_mask[:n]


def composite(image, edited, reconstruction, edit_mask=None):
    """The edit users get, one definition for training and the product (the engine does the same in numpy):
    the residual edit image + (edited - reconstruction), where a model draws a mask gated by it, so the result
    is the input where the mask is 0. Clamped to [-1, 1]."""
    if edit_mask is None:
        return (image + edited - reconstruction).clamp(-1, 1)
    return (image + edit_mask * (edited - reconstruction)).clamp(-1, 1)


def total_variation(m):
    """Mean absolute difference of neighbouring pixels, across and down (the mask's smoothness term)."""
    return (m[..., :, 1:] - m[..., :, :-1]).abs().mean() + (m[..., 1:, :] - m[..., :-1, :]).abs().mean()


class Judge(nn.Module):
    """Independent attribute classifier used only to score edits: its own architecture (residual, wider
    kernels, global max+avg pooling) and its own weights, trained on the train split alone."""

    def __init__(self, n_attr: int, image_size: int = 64):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 5, 1, 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.MaxPool2d(2))

        n = int(math.log2(image_size // 4))
        chans = [3, 32, 64, 128, 192, 256, 256][: n + 1]
        self.body = nn.Sequential(*[block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.fc = nn.Sequential(nn.Dropout(0.3), nn.Linear(2 * chans[-1], n_attr))

    def forward(self, x):
        h = self.body(x)
        return self.fc(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))
