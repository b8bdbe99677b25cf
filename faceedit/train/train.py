"""Training loop for the CVAE-GAN (single process, or DDP under torchrun: gloo on CPU, nccl on GPU).

One step:
  encoder -> (mu, logvar) -> z = mu + sigma*eps;  decoder(z, y) = reconstruction;  decoder(z, y') = edit
  D step: real vs (reconstruction, edit), plus attribute logits on real images only.
  G step: L1 + learned-similarity (D features) reconstruction, KL (warm-up), adversarial on both fakes,
          attribute-head BCE on real images, and the edit loss: BCE against y' of two classifiers that
          are never trained on fakes (the AttGAN constraint, so G cannot collude with them): D's attribute
          logits and a frozen, periodically refreshed snapshot of the attribute head, plus the same BCE
          restricted to the attributes the edit changes (flip_bce). Both classifiers look at the raw
          edit and at the residual edit the engine ships (crop + edit - reconstruction), each randomly
          shifted, scaled and flipped: an edit counts only if it survives that, which rules out the
          classifier-specific pixel patterns that fooled D alone and were invisible to an independent judge.
          With --guide a third classifier joins them: fixed, adversarially trained (faceedit.train.guide),
          so small pixel patterns cannot satisfy it. With --cls-aug D's classifier and the attribute head
          also learn from jittered reals: trained on exact crops they judge jittered images poorly
          (docs/training-log.md, 2026-11-27). With --projection, D's real/fake verdict is
          told the attributes (real pairs: the labels; reconstructions: the labels; edits: the targets).
          With --w-identity, a face recogniser's descriptor (face_descriptor.py) of each edit must stay the input's;
          with --w-projected, a second critic on that recogniser's features (projected.py) judges the edits too.
          With --w-latent-adv, a classifier on the latent (latent.py) must not be able to read the attributes.
          With --colourless-critics, the critics read all but the colour attributes off a grey view of each
          edit (critic_views), so colour patches buy no glasses or mustache; --critic-chroma-blur blurs the
          colour they see. With --w-own-palette, an edit that changes no colour attribute pays for the colours
          it brings that the face does not have (palette.py); with --colour-palettes colour edits pay too, against
          the colours real faces with that attribute have.

Runs on the CPU or on a CUDA GPU (--device). Data order, edit targets and jitter draw from the CPU RNG on
every device, so a GPU run sees the same batches; the reparameterisation noise comes from the device's RNG.

Every option is a field of TrainConfig (config.py, with its help). Checkpoints, resume and the generator's
moving average live in checkpoint.py; the jitter of edits and reals in augment.py. Resume is exact: the data
order of an epoch is a function of (seed, epoch), and the global RNG state is saved with the step.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from faceedit.core.files import atomic_path
from faceedit.train import checkpoint, latent, projected
from faceedit.train.augment import (COLOUR_ATTRIBUTES, augment, draw_translate_cutout, grey_some, jitter,
                                   luminance, smooth_chroma, soften, to_tensor, translate_cutout)
from faceedit.train.checkpoint import atomic_save
from faceedit.train.config import TrainConfig
from faceedit.train.data import load_training_faces
from faceedit.train.face_descriptor import face_descriptor, identity_loss
from faceedit.train.model import CVAEGAN, composite, total_variation
from faceedit.train.palette import PALETTE_PER, own_palette_loss, reference_keep, reference_palettes
from faceedit.train.regions import attribute_regions, edit_regions


def edit_targets(y: torch.Tensor, g: torch.Generator | None = None, focus: list[int] | None = None,
                 focus_frac: float = 0.0, implied=None) -> torch.Tensor:
    """Half the batch gets another face's attributes (realistic combinations), half one attribute flipped
    (exactly what a user does). With `focus`, that share of the single flips goes to those attribute
    indices (rare ones such as Bald and Mustache otherwise get 1 flip in 14). With `implied` (a
    faceedit.core.implied rule table) a flip also sets what the rules imply, as the editor does: "bald" on a
    woman asks for a bald man, a combination real faces have, not one no training face shows."""
    b, n = y.shape
    shuffled = y[torch.randperm(b, generator=g).to(y.device)]
    k = torch.randint(0, n, (b,), generator=g)
    if focus and focus_frac > 0:
        pick_focus = torch.rand(b, generator=g) < focus_frac
        k = torch.where(pick_focus, torch.tensor(focus)[torch.randint(0, len(focus), (b,), generator=g)], k)
    one = F.one_hot(k, n).float().to(y.device)
    flipped = (y + one) % 2
    if implied is not None:
        from faceedit.core.implied import implied_values
        w, fires = implied_values(implied, flipped.cpu().numpy(), one.cpu().numpy())
        flipped = torch.where(torch.from_numpy(fires).to(y.device), torch.from_numpy(w).to(y.device), flipped)
    pick = (torch.rand(b, generator=g) < 0.5)[:, None].to(y.device)
    return torch.where(pick, shuffled, flipped)


def critic_views(edits: torch.Tensor, soften_sigma: float, colourless: bool,
                 chroma_blur: float = 0.0) -> torch.Tensor:
    """The edits as the edit critics see them: moved, rescaled, mirrored and softened (one draw for all
    critics), their colour blurred by `chroma_blur` px (--critic-chroma-blur); with `colourless`
    (--colourless-critics) followed by the same views in grey, rows 2N."""
    view = soften(jitter(edits), soften_sigma).contiguous(memory_format=torch.channels_last)
    coloured = smooth_chroma(view, chroma_blur)
    return torch.cat([coloured, luminance(view)]) if colourless else coloured


def colour_where_it_counts(logits: torch.Tensor, colour_attrs: torch.Tensor) -> torch.Tensor:
    """A critic's logits on critic_views(..., colourless=True) [2N, A] -> [N, A]: the colour attributes read off
    the colour view, every other attribute off the grey one, so no colour patch can raise them."""
    n = len(logits) // 2
    return torch.where(colour_attrs, logits[:n], logits[n:])


def flip_bce(logits: torch.Tensor, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """BCE over the attributes an edit changes, and only those. In the all-attribute edit loss a user's
    single flip is 1 term of 13 and the other 12 are already right, so a flip that half lands costs little."""
    changed = (target != source).float()
    per_entry = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return (per_entry * changed).sum() / changed.sum().clamp_min(1.0)


def kl_divergence(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1).mean()


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits.float(), target)


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, log=print):
        self.cfg, self.log = cfg, log
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.bf16 = cfg.bf16 and native_bf16(self.device)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed + self.rank)

        faces = load_training_faces(cfg.data, cfg.attributes, cfg.image_size, cfg.cache_dir or None)
        self.attributes = faces.attributes
        cfg.attributes = list(self.attributes)
        self.images, self.labels, self.data_record = faces.images, faces.labels, faces.folders
        self.train_idx = faces.train_idx
        self.val_idx = faces.val_idx[: cfg.max_val]
        if len(self.train_idx) < cfg.batch_size * self.world:
            raise ValueError(f"only {len(self.train_idx)} training images for a batch of {cfg.batch_size} x {self.world}")

        self.model = CVAEGAN(cfg.model_config()).to(self.device, memory_format=torch.channels_last)
        mask_conv = self.model.decoder.mask
        mask_params = {id(p) for p in mask_conv.parameters()} if mask_conv is not None else set()
        self.opt_g = torch.optim.Adam([p for p in self.model.generator_parameters() if id(p) not in mask_params],
                                      cfg.lr, betas=(0.5, 0.999))
        if mask_conv is not None:  # a group of its own, so a run can turn the edit mask on when it resumes
            self.opt_g.add_param_group({"params": list(mask_conv.parameters())})
        disc = self.model.discriminator
        self.opt_d = torch.optim.Adam([p for n, p in disc.named_parameters() if n != "embed.weight"], cfg.lr, betas=(0.5, 0.999))
        if disc.embed is not None:  # a group of its own, so a run can turn the projection on when it resumes
            self.opt_d.add_param_group({"params": [disc.embed.weight]})
        self.projected = self.opt_p = None  # --w-projected: heads on a face recogniser's features, their own Adam
        if cfg.w_projected > 0:
            from faceedit.train.projected import ProjectedCritic
            self.projected = ProjectedCritic().to(self.device)
            self.opt_p = torch.optim.Adam(self.projected.parameters(), cfg.lr, betas=(0.5, 0.999))
        self.latent = self.opt_l = None  # --w-latent-adv: a classifier of the latent, with its own Adam
        if cfg.w_latent_adv > 0:
            self.latent = latent.LatentClassifier(cfg.z_channels, len(cfg.attributes)).to(self.device)
            self.opt_l = torch.optim.Adam(self.latent.parameters(), cfg.lr, betas=(0.5, 0.999))
        self.teacher = copy.deepcopy(self.model.attribute_head).eval().requires_grad_(False)
        # --colourless-critics: which attribute columns the critics read off the colour view of an edit
        self.colour_attrs = torch.tensor([a in COLOUR_ATTRIBUTES for a in self.attributes], device=self.device)
        self.judge = None
        if cfg.judge:
            from faceedit.train.judge import load_judge
            self.judge = load_judge(cfg.judge)[0].eval().to(self.device)
        self.guide = None
        if cfg.guide:
            from faceedit.train.guide import load_guide
            self.guide, gstate = load_guide(cfg.guide)
            if gstate["attributes"] != list(self.attributes):
                raise ValueError(f"{cfg.guide} was trained on other attributes: {gstate['attributes']}")
            self.guide = self.guide.to(self.device, memory_format=torch.channels_last).requires_grad_(False)
        unknown = sorted(set(cfg.flip_focus) - set(self.attributes))
        if unknown:
            raise ValueError(f"--flip-focus names attributes this run does not train: {unknown}")
        self.focus = [self.attributes.index(a) for a in cfg.flip_focus]
        self.implied = None
        if cfg.implied_flips:
            from faceedit.core.implied import derive_rules, rule_table
            rules = derive_rules(self.labels[self.train_idx], self.attributes)
            self.implied = rule_table({"rules": rules}, self.attributes)
            self.log("implied flips: " + "; ".join(f"{k} -> {v}" for k, v in rules.items()))
        # where each attribute lives, from the train labels (regions.py): --w-mask-outside and --colour-palettes
        regions = (attribute_regions(self.images[self.train_idx], self.labels[self.train_idx])
                   if cfg.w_mask_outside > 0 or cfg.colour_palettes else None)
        self.regions = None  # --w-mask-outside: the mask pays for what it opens outside them
        if cfg.w_mask_outside > 0:
            self.regions = torch.from_numpy(regions).to(self.device)
            if self.rank == 0:
                from faceedit.train.grid import save_grid
                save_grid(np.repeat(regions[None, :, :, :, None] * 255, 3, -1).round().astype(np.uint8),
                          self.out / "regions.png", [a[:10] for a in self.attributes])
        self.references = None  # --colour-palettes: the colours real faces with each colour attribute have
        if cfg.colour_palettes:
            self.ref_columns = [i for i, a in enumerate(self.attributes) if a in COLOUR_ATTRIBUTES]
            refs = reference_palettes(self.images, self.labels, self.ref_columns, regions, per=PALETTE_PER,
                                      among=self.train_idx)
            self.references = torch.from_numpy(refs.reshape(-1, 2)).to(self.device)
        unknown = sorted(set(cfg.rare_boost) - set(self.attributes))
        if unknown:
            raise ValueError(f"--rare-boost names attributes this run does not train: {unknown}")
        if not 0 <= cfg.rare_frac < 1:
            raise ValueError(f"--rare-frac must be in [0, 1), not {cfg.rare_frac}")
        # Boosted slots: train faces positive on a --rare-boost attribute (e.g. the 2% that are bald), so the
        # decoder and D see them often enough to learn to draw them. They come last in each batch.
        self.boost_pools = [p for p in (self.train_idx[self.labels[self.train_idx, self.attributes.index(a)] > 0.5]
                                        for a in cfg.rare_boost) if len(p)]
        self.n_boost = round(cfg.batch_size * cfg.rare_frac) if self.boost_pools else 0
        self.ema = None
        if cfg.ema:
            if not 0 < cfg.ema < 1:
                raise ValueError(f"--ema must be in (0, 1), not {cfg.ema}")
            self.ema = checkpoint.start_ema(self.model)
        self.step, self.best, self.t_start = 0, -math.inf, time.time()
        self.lap = None  # lap(part) after each part of a step: `faceedit bench train` times them
        self.best_by = "judge" if self.judge is not None else "d_cls"
        if resume and (self.out / "last.pt").exists():
            checkpoint.resume(self, self.out / "last.pt")
        self.start_step = self.step
        if cfg.bf16 and not self.bf16:  # said once the options have passed their checks (errors stay one line)
            log("bf16: this CPU has no native bfloat16 (no AVX512-BF16 or AMX; emulated it is ~18x slower than "
                "fp32 here): training in fp32")
        self.gen, self.disc = self.model, self.model.discriminator
        if self.world > 1:  # gradients of the generator side and of D are averaged separately
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.gen_ddp = DDP(_GeneratorSide(self.model), device_ids=ids, broadcast_buffers=False)
            self.disc_ddp = DDP(self.model.discriminator, device_ids=ids, broadcast_buffers=False)
        else:
            self.gen_ddp, self.disc_ddp = _GeneratorSide(self.model), self.model.discriminator

    # ---- data -------------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_idx) // (self.cfg.batch_size * self.world)

    @property
    def total_steps(self) -> int:
        return self.cfg.steps or self.cfg.epochs * self.steps_per_epoch

    def progress(self) -> float:
        """How far the run is, 0..1, for the learning-rate schedule: by steps, or with --time-limit by this
        process's wall clock (a time-limited run ends on the clock, so its schedule must follow the clock)."""
        if self.cfg.time_limit:
            return min(1.0, (time.time() - self.t_start) / self.cfg.time_limit)
        return min(1.0, self.step / max(self.total_steps, 1))

    def batch(self, step: int):
        """The batch of a global step: a pure function of (seed, epoch, position, rank)."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=g).numpy()]
        b = self.cfg.batch_size
        start = (pos * self.world + self.rank) * b
        idx = np.sort(order[start:start + b - self.n_boost])  # sorted reads are kinder to the memmap
        if self.n_boost:
            gb = torch.Generator().manual_seed(self.cfg.seed * 104_729 + step * 31 + self.rank)
            pool = torch.randint(0, len(self.boost_pools), (self.n_boost,), generator=gb).tolist()
            boost = [self.boost_pools[k][torch.randint(0, len(self.boost_pools[k]), (1,), generator=gb).item()] for k in pool]
            idx = np.concatenate([idx, np.sort(boost)])
        flip = torch.rand(b, generator=g.manual_seed(self.cfg.seed * 7919 + step * 31 + self.rank)).numpy() < 0.5
        return self.to_device(to_tensor(self.images[idx], flip)), self.to_device(torch.from_numpy(self.labels[idx]))

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            return t
        return t.pin_memory().to(self.device, non_blocking=True)

    # ---- one step ---------------------------------------------------------------------------------
    def train_step(self, x, y) -> dict:
        cfg, m = self.cfg, self.model
        autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        lr = cfg.lr * (1 + (cfg.lr_final - 1) * self.progress())
        for group in self.opt_g.param_groups:
            group["lr"] = lr
        for opt in (self.opt_d, self.opt_p, self.opt_l):
            for group in opt.param_groups if opt else []:
                group["lr"] = lr * cfg.lr_d  # --lr-d: the critics may learn faster than the generator (TTUR)
        if m.decoder.mask is not None:  # the mask conv: opt_g's last group (see __init__ and checkpoint.resume)
            self.opt_g.param_groups[-1]["lr"] = lr * cfg.lr_mask
        y_edit = edit_targets(y, focus=self.focus, focus_frac=cfg.flip_focus_frac, implied=self.implied)
        x_cls = augment(x) if cfg.cls_aug else x  # what the classifiers learn from
        if cfg.colourless_critics:  # they must also read grey faces: the edit critics show them grey edits
            x_cls = grey_some(x_cls, 0.25)
        y_cls = y * (1 - cfg.cls_smooth) + 0.5 * cfg.cls_smooth
        n = len(x) - self.n_boost  # the classifiers learn from the regular slots only: their priors stay true
        lap = self.lap or (lambda part: None)
        with autocast:
            mu, logvar, attr_logits, x_rec, x_edit, m_edit = self.gen_ddp(x, y, y_edit, x_cls)
        lap("generator forward (encoder, head, decoder x2)")
        # --edit-mask: the edit users get is the composite (the real face outside the mask), and it is the one
        # edit D and the edit critics see: the raw decoder output is no longer what ships
        seen_by_d = translate_cutout if cfg.diff_augment else (lambda t, params=None: t)
        b = len(x)

        def seen_by_projected(edits):
            """Edits as the projected critic sees them, and with --projected-local their masks, moved and cut
            by the same draw (the mask goes where its edit goes); None for the mask otherwise."""
            moved = draw_translate_cutout(b, x.shape[-1]) if cfg.diff_augment else None
            return seen_by_d(edits, moved), (seen_by_d(m_edit.detach(), moved) if cfg.projected_local else None)

        # discriminator: one pass over every image it judges (D has no batch statistics, so this is the same
        # maths as one pass per kind, in bigger, faster convolutions)
        with autocast:
            fakes = x_edit.detach() if m_edit is None else composite(x, x_edit, x_rec, m_edit).detach()
            if cfg.d_residual and m_edit is None:  # the edit as users get it, judged as a fake with its targets too
                fakes = torch.cat([fakes, (x + x_edit.detach() - x_rec.detach()).clamp(-1, 1)])
            # D's classifier learns from unaugmented (or --cls-aug's) real faces: a cutout may hide glasses
            own_cls = cfg.cls_aug or cfg.diff_augment
            mismatch = cfg.w_d_mismatch > 0  # real faces told the edit targets: fakes for a matching-aware D
            rows = ([seen_by_d(x), seen_by_d(x_rec.detach()), seen_by_d(fakes)] + ([seen_by_d(x)] if mismatch else [])
                    + ([x_cls] if own_cls else []))
            attrs = ([y, y, torch.cat([y_edit] * (len(fakes) // b))] + ([y_edit] if mismatch else [])
                     + ([y] if own_cls else []))
            adv, cls, _ = self.disc_ddp(torch.cat(rows), torch.cat(attrs))
            d_real, d_rec, d_edit = adv[:b], adv[b:2 * b], adv[2 * b:2 * b + len(fakes)]
            c_real = cls[-b:] if own_cls else cls[:b]
            loss_d = (F.softplus(-d_real).mean() + 0.5 * (F.softplus(d_rec).mean() + F.softplus(d_edit).mean())
                      + cfg.w_d_cls * bce(c_real[:n], y_cls[:n]))
            if mismatch:  # only the faces whose targets differ from their labels (a shuffled face's may not)
                told_wrong = (y_edit != y).any(1).float()
                d_mismatch = adv[2 * b + len(fakes):3 * b + len(fakes)]
                loss_mismatch = (told_wrong * F.softplus(d_mismatch)).sum() / told_wrong.sum().clamp_min(1.0)
                loss_d = loss_d + cfg.w_d_mismatch * loss_mismatch
        if cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0:
            # lazy R1 (StyleGAN2): scaled by r1_every so the average pull is gamma/2 * |grad|^2 per step; on
            # the real faces as D sees them
            x_r = seen_by_d(x.detach()).float().requires_grad_(True)
            grad, = torch.autograd.grad(self.disc_ddp(x_r, y)[0].sum(), x_r, create_graph=True)
            loss_d = loss_d + 0.5 * cfg.r1_gamma * cfg.r1_every * grad.pow(2).flatten(1).sum(1).mean()
        lap("D forward (one pass) + R1")
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        lap("D backward + Adam")
        if self.projected is not None:  # its heads learn real faces from this step's edits, as D does
            with autocast:
                loss_p = projected.critic_loss(self.projected, seen_by_d(x), *seen_by_projected(fakes))
            self.step_critic(self.projected, self.opt_p, loss_p)
            lap("projected critic (recogniser forward, heads backward + Adam)")
        if self.latent is not None:  # it learns to read the attributes off this step's latents
            with autocast:
                loss_l = latent.classifier_loss(self.latent, mu, y)
            self.step_critic(self.latent, self.opt_l, loss_l)
            lap("latent classifier")
        # generator side: encoder, attribute head, decoder (D's weights are only read here)
        critics_frozen = [*m.discriminator.parameters(), *(self.projected.parameters() if self.projected else []),
                          *(self.latent.parameters() if self.latent else [])]
        for p in critics_frozen:
            p.requires_grad_(False)
        with autocast:
            # the edit as users get it: raw, and as a residual on the crop (the engine's default)
            if m_edit is None:
                edits = torch.cat([x_edit, (x + x_edit - x_rec.detach()).clamp(-1, 1)])
                targets, sources = torch.cat([y_edit, y_edit]), torch.cat([y, y])
                judged, judged_y = (edits, targets) if cfg.d_residual else (x_edit, y_edit)
            else:  # the composite, built on the real face: D sees real pixels wherever the mask is 0
                edits, targets, sources = composite(x, x_edit, x_rec.detach(), m_edit), y_edit, y
                judged, judged_y = edits, targets
            # what the edit critics see: moved, rescaled, mirrored and softened, one draw for all of them
            critic_view = critic_views(edits, cfg.critic_soften, cfg.colourless_critics, cfg.critic_chroma_blur)
            # a real face and its reconstruction get the same augmentation: their D features are compared
            pair = draw_translate_cutout(b, x.shape[-1]) if cfg.diff_augment else None
            told = targets.repeat(len(critic_view) // len(targets), 1)  # only D's cls logits are read there
            adv, cls, feats = m.discriminator(torch.cat([seen_by_d(x_rec, pair), seen_by_d(judged), critic_view]),
                                              torch.cat([y, judged_y, told]))
            d_rec, f_rec, d_edit = adv[:b], feats[:b], adv[b:b + len(judged)]
            critics = [cls[b + len(judged):], self.teacher(critic_view)]
            if self.guide is not None:
                critics.append(self.guide(critic_view))
            if cfg.colourless_critics:
                critics = [colour_where_it_counts(c, self.colour_attrs) for c in critics]
            with torch.no_grad():
                f_real = m.discriminator.features(seen_by_d(x, pair))
            beta = cfg.w_kl * min(1.0, self.step / max(cfg.kl_warmup, 1))
            parts = {
                "pixel": (x_rec.float() - x).abs().mean(),
                "feature": F.mse_loss(f_rec.float(), f_real.float()) / f_real.float().pow(2).mean().clamp_min(1e-6),
                "kl": kl_divergence(mu.float(), logvar.float()),
                "adv": F.softplus(-d_rec).mean(),
                "adv_edit": F.softplus(-d_edit).mean(),
                "attr": bce(attr_logits[:n], y[:n]),
                "edit": sum(bce(c, targets) for c in critics) / len(critics),
                "flip": sum(flip_bce(c, targets, sources) for c in critics) / len(critics),
            }
            if cfg.w_own_palette > 0 and self.references is None:  # a non-colour edit draws in the face's own
                recoloured = ((targets - sources).abs() > 0.5) & self.colour_attrs  # tones; colour edits exempt
                parts["own_palette"] = own_palette_loss(x, x_rec.detach(), edits, recoloured.any(1))
            elif cfg.w_own_palette > 0:  # colour edits too, against the colours their attributes have on real faces
                keep = reference_keep(targets, sources, self.ref_columns, PALETTE_PER)
                parts["own_palette"] = own_palette_loss(x, x_rec.detach(), edits, references=self.references, keep=keep)
            if cfg.w_identity > 0:  # the edit must stay the same person to a recogniser that never saw G's output
                with torch.no_grad():
                    who = face_descriptor(x)
                parts["identity"] = identity_loss(who.repeat(len(edits) // b, 1), edits)
            if self.projected is not None:
                parts["adv_projected"] = projected.generator_loss(self.projected, *seen_by_projected(judged))
            if self.latent is not None:
                parts["latent_adv"] = latent.encoder_loss(self.latent, mu)
            if m_edit is not None:  # sparsity and smoothness of the edit's mask (the edit losses hold it open)
                parts["mask"] = m_edit.float().mean()
                parts["mask_tv"] = total_variation(m_edit.float())
                if self.regions is not None:  # what the mask opens beyond where the changed attributes live
                    parts["mask_outside"] = (m_edit.float() * (1 - edit_regions(self.regions, y, y_edit))).mean()
            loss_g = (cfg.w_pixel * parts["pixel"] + cfg.w_feature * parts["feature"] + beta * parts["kl"]
                      + cfg.w_adv * parts["adv"] + (cfg.w_adv if cfg.w_adv_edit < 0 else cfg.w_adv_edit) * parts["adv_edit"]
                      + cfg.w_attr * parts["attr"] + cfg.w_edit * parts["edit"]
                      + cfg.w_flip * parts["flip"] + cfg.w_identity * parts.get("identity", 0)
                      + cfg.w_projected * parts.get("adv_projected", 0)
                      + cfg.w_latent_adv * parts.get("latent_adv", 0)
                      + cfg.w_own_palette * parts.get("own_palette", 0))
            if m_edit is not None:
                loss_g = (loss_g + cfg.w_mask * parts["mask"] + cfg.w_mask_tv * parts["mask_tv"]
                          + cfg.w_mask_outside * parts.get("mask_outside", 0))
        lap("G losses forward (D, critics, teacher)")
        self.opt_g.zero_grad(set_to_none=True)
        if self.step - self.start_step >= cfg.d_warmup:  # else D catches up first: the generator only watches
            loss_g.backward()
            self.opt_g.step()
        for p in critics_frozen:
            p.requires_grad_(True)
        if self.ema is not None:
            checkpoint.update_ema(self.ema, m, cfg.ema)
        if self.step % cfg.teacher_every == 0:
            self.teacher.load_state_dict(m.attribute_head.state_dict())
        named = {**parts, "loss_g": loss_g, "loss_d": loss_d, **({"loss_p": loss_p} if self.projected else {}),
                 **({"loss_l": loss_l} if self.latent else {}), **({"d_mismatch": loss_mismatch} if mismatch else {}),
                 "d_cls": bce(c_real[:n].detach(), y[:n])}
        values = torch.stack([v.detach().float() for v in named.values()]).tolist()  # one device sync, not ten
        lap("G backward + Adam, EMA, stats")
        return {**dict(zip(named, values)), "lr": lr}

    @torch.no_grad()
    def ema_batchnorm(self, batches: int = 16) -> dict:
        """BatchNorm statistics of the averaged generator: a copy with the average's weights runs the last
        `batches` training batches as the training step's forward does (reconstruction and edit rows together),
        its statistics reset and averaged with equal weight per batch. The live statistics belong to the live
        weights: after a fast change (runs/fader, docs/training-log.md) the average with them reconstructed at
        19.4 dB where the live weights reached 24.0. The run's RNG is left as it was, so resume stays exact."""
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.ema, strict=False)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average
        side = _GeneratorSide(model).train()
        with torch.random.fork_rng(devices=[self.device.index or 0] if self.device.type == "cuda" else []):
            for step in range(max(0, self.step - batches), self.step):
                x, y = self.batch(step)
                side(x, y, edit_targets(y, focus=self.focus, focus_frac=self.cfg.flip_focus_frac, implied=self.implied))
        return {k: v for k, v in model.state_dict().items()
                if k.startswith(checkpoint.GENERATOR_PARTS) and k.rsplit(".", 1)[-1] in BATCHNORM_BUFFERS}

    def step_critic(self, critic: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor):
        """One Adam step of a critic that is not a DDP module (the projected heads, the latent classifier): under
        torchrun its gradients are averaged by hand."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:
            for p in critic.parameters():
                dist.all_reduce(p.grad)
                p.grad /= self.world
        opt.step()

    # ---- validation -------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict:
        """Attribute accuracy, reconstruction PSNR, edit success as judged by D's classifier (a proxy), and,
        with a judge, the judge's verdict on the same edits applied as residuals (what best.pt is chosen by;
        faceedit.eval gives the reported figures)."""
        m = self.model.eval()
        accs, psnrs, succ = [], [], []
        judged, judge_hits = 0, 0.0  # the judge scores the residual edits of the first judge_val faces
        for i in range(0, len(self.val_idx), 128):
            idx = self.val_idx[i:i + 128]
            x, y = self.to_device(to_tensor(self.images[idx])), self.to_device(torch.from_numpy(self.labels[idx]))
            probs = torch.sigmoid(m.attribute_head(x))
            accs.append(((probs > 0.5).float() == y).float().mean(0))
            mu, _ = m.encoder(x)
            y_src = (probs > 0.5).float()
            x_rec = m.decoder(mu, y_src)
            mse = ((x_rec - x) / 2).pow(2).flatten(1).mean(1)
            psnrs.append(10 * torch.log10(1 / mse.clamp_min(1e-10)))
            n_judge = min(len(x), self.cfg.judge_val - i) if self.judge is not None else 0
            per_attr = []
            for k in range(y.shape[1]):
                y_t = y_src.clone()
                y_t[:, k] = 1 - y_t[:, k]
                x_t, m_t = m.decoder(mu, y_t, with_mask=True)
                # a mask model's edit is its composite: the raw decoder output is not what it ships
                c = torch.sigmoid(m.discriminator(x_t if m_t is None else composite(x, x_t, x_rec, m_t))[1][:, k])
                per_attr.append(((c > 0.5).float() == y_t[:, k]).float().mean())
                if n_judge > 0:  # the edit as the product ships it: residual on the crop (gated by the mask)
                    res = composite(x[:n_judge], x_t[:n_judge], x_rec[:n_judge], None if m_t is None else m_t[:n_judge])
                    verdict = torch.sigmoid(self.judge(res)[:, k]) > 0.5
                    judge_hits += float((verdict.float() == y_t[:n_judge, k]).sum())
                    judged += n_judge
            succ.append(torch.stack(per_attr))
        m.train()
        acc = torch.stack(accs).mean(0)
        out = {"attr_acc": float(acc.mean()), "psnr": float(torch.cat(psnrs).mean()),
               "edit_success_d": float(torch.stack(succ).mean())}
        if self.judge is not None:
            out["edit_success_judge"] = judge_hits / max(judged, 1)
        return out

    @torch.no_grad()
    def sample_grid(self, path: Path, n: int = 8):
        """Rows: validation faces. Columns: input, reconstruction, then one attribute flipped per column. With
        --edit-mask the edits are the composites users get, and PATH_mask.png shows each edit's mask."""
        from faceedit.train.grid import save_grid
        m = self.model.eval()
        idx = self.val_idx[:n]
        x = self.to_device(to_tensor(self.images[idx]))
        mu, _ = m.encoder(x)
        y = (torch.sigmoid(m.attribute_head(x)) > 0.5).float()
        x_rec = m.decoder(mu, y)
        cols, masks = [x, x_rec], [x, x_rec]
        for k in range(y.shape[1]):
            y_t = y.clone()
            y_t[:, k] = 1 - y_t[:, k]
            x_t, m_t = m.decoder(mu, y_t, with_mask=True)
            cols.append(x_t if m_t is None else composite(x, x_t, x_rec, m_t))
            if m_t is not None:
                masks.append((m_t * 2 - 1).expand_as(x))
        m.train()
        titles = ["input", "recon"] + [a[:8] for a in self.attributes]
        save_grid(torch.stack(cols, 1).float().cpu(), path, titles)
        if len(masks) > 2:
            save_grid(torch.stack(masks, 1).float().cpu(), path.with_name(path.stem + "_mask" + path.suffix), titles)

    # ---- loop -------------------------------------------------------------------------------------
    def fit(self, progress=None):
        cfg = self.cfg
        log_path = self.out / "log.csv"
        eval_every = cfg.eval_every or self.steps_per_epoch
        writer = None
        t0, seen = time.time(), 0
        self.t_start = last_save = t0
        while self.step < self.total_steps:
            out_of_time = bool(cfg.time_limit) and self.progress() >= 1
            x, y = self.batch(self.step)
            stats = self.train_step(x, y)
            self.step += 1
            seen += len(x) * self.world
            stats["img_per_s"] = seen / (time.time() - t0)
            if progress:
                progress(self.step, self.total_steps, stats)
            if self.rank == 0:
                if writer is None:
                    fh, writer = open_log(log_path, ["step", *stats, "attr_acc", "psnr", "edit_success_d",
                                                     "edit_success_judge"])
                row = {"step": self.step, **{k: f"{v:.5g}" for k, v in stats.items()}}
                if self.step % eval_every == 0 or self.step == self.total_steps or out_of_time:
                    val = self.validate()
                    row.update({k: f"{v:.5g}" for k, v in val.items()})
                    score = validation_score(val)
                    self.log(f"step {self.step}: val {json.dumps({k: round(v, 4) for k, v in val.items()})}")
                    self.sample_grid(self.out / "samples" / f"step_{self.step:07d}.png")
                    if score > self.best:
                        self.best = score
                        checkpoint.save(self, "best.pt", val)
                    checkpoint.save(self, f"step_{self.step:07d}.pt", val)
                    if self.ema is not None:
                        atomic_save(checkpoint.ema_checkpoint(self, self.ema_batchnorm()),
                                    self.out / f"step_{self.step:07d}_ema.pt")
                writer.writerow(row)
                fh.flush()
                due = cfg.ckpt_minutes and time.time() - last_save >= 60 * cfg.ckpt_minutes
                if self.step % cfg.ckpt_every == 0 or due or self.step == self.total_steps or out_of_time:
                    checkpoint.save(self, "last.pt")
                    checkpoint.write_run_record(self)
                    last_save = time.time()
            if out_of_time:
                self.log(f"time limit of {cfg.time_limit:g} s reached at step {self.step}")
                break
        if self.world > 1:
            dist.barrier()
        return self


BATCHNORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def open_log(path: Path, columns: list[str]):
    """(file, csv.DictWriter) appending to the run's log.csv. A resumed run that logs columns the file lacks (a
    loss part it turned on) first rewrites the file, atomically, under the union of both headers, so every row
    stays under its own column names (old rows leave the new columns empty)."""
    if path.exists():
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            old, rows = list(reader.fieldnames or []), list(reader)
        merged = old + [c for c in columns if c not in old]
        if merged != old:
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as out:
                writer = csv.DictWriter(out, merged)
                writer.writeheader()
                writer.writerows(rows)
        columns = merged
    fh = open(path, "a", newline="")
    writer = csv.DictWriter(fh, columns, extrasaction="ignore")
    if fh.tell() == 0:  # a new file
        writer.writeheader()
    return fh, writer


def validation_score(val: dict) -> float:
    """What best.pt maximises: attribute accuracy + edit success (the judge's when a judge is given, else D's,
    a proxy) + PSNR/100."""
    edit = val["edit_success_judge"] if "edit_success_judge" in val else val["edit_success_d"]
    return val["attr_acc"] + edit + val["psnr"] / 100


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast pays on this device: GPUs, and CPUs with AVX512-BF16 or AMX. On an AVX2 CPU
    torch emulates it, and a training step took 18x as long as in fp32 (2-core AMD EPYC, 2026-12-06)."""
    if device.type != "cpu":
        return True
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: this torch sees no CUDA GPU")
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise ValueError(f"unknown device '{name}' (use auto, cpu or cuda)")
    return torch.device("cpu")


class _GeneratorSide(torch.nn.Module):
    """Encoder + attribute head + decoder as one module, so DDP averages their gradients together."""

    def __init__(self, model: CVAEGAN):
        super().__init__()
        self.encoder, self.attribute_head, self.decoder = model.encoder, model.attribute_head, model.decoder

    def forward(self, x, y, y_edit, x_cls=None):
        mu, logvar = self.encoder(x)
        attr_logits = self.attribute_head(x if x_cls is None else x_cls)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        both, masks = self.decoder(torch.cat([z, z]), torch.cat([y, y_edit]), with_mask=True)
        x_rec, x_edit = both.chunk(2)
        # the edited pass's mask (None without --edit-mask); the reconstruction's is not used
        return mu, logvar, attr_logits, x_rec, x_edit, (None if masks is None else masks[len(x):])
