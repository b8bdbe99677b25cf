"""Everything a training run can be told: one dataclass, one help text per field.

`faceedit train` and `python -m faceedit.train` (the torchrun entry) both take their options from this
dataclass through `config_options`, so a field added here is a flag of both, with this help. Torch-free:
`faceedit --help` reads it without importing torch.
"""
from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, field, fields

from faceedit.core.attributes import DEFAULT_ATTRIBUTES

UPSAMPLE_MODES = ("transpose", "resize")  # the decoder's x2 steps (faceedit.train.model.CondUp)

# help panels of `faceedit train --help`
RUN, MODEL, LOSS, EDIT, SCHEDULE, VALIDATION, HARDWARE = (
    "Data and run", "Model", "Losses", "Edit training", "Schedule", "Validation and checkpoints", "Hardware")


def knob(default, help: str, panel: str):
    """A TrainConfig field with its command-line help."""
    meta = {"help": help, "panel": panel}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # data and run
    data: list[str] = knob([], "CelebA-layout folder (list_attr_celeba.txt, list_eval_partition.txt, img_align_celeba/) "
                               "or a `faceedit train bundle pack-data` folder; repeat for more training faces (every "
                               "folder's train split trains, the first folder's val split validates). Required.", RUN)
    out: str = knob("runs/default", "Run folder: last.pt, best.pt, step_N.pt, log.csv, samples/.", RUN)
    attributes: list[str] = knob(list(DEFAULT_ATTRIBUTES), "Attributes to learn (repeat the option or separate "
                                 "with commas); default: the 14 standard ones.", RUN)
    seed: int = knob(0, "Seeds the weights, the data order and the flips (a resumed run restores its RNG).", RUN)
    cache_dir: str = knob("", "Folder of the decoded-crop cache (empty: $FACEEDIT_CACHE, else ~/.cache/faceedit).", RUN)
    # model
    image_size: int = knob(64, "Crop size: 64 or 128.", MODEL)
    z_channels: int = knob(16, "Channels of the latent (z is Z x 8 x 8).", MODEL)
    width: int = knob(64, "Channels of the first encoder stage, doubling per stage up to 512 (the encoder and the "
                          "attribute head share this trunk).", MODEL)
    dec_width: int = knob(256, "Channels of the decoder at 8x8, halving per stage down to 32.", MODEL)
    projection: bool = knob(False, "Projection discriminator: D's real/fake logit is told the attributes "
                                   "(a resumed run may turn it on).", MODEL)
    upsample: str = knob("transpose", "Decoder up-sampling: transpose (stride-2 transposed convolutions) or resize "
                                      "(nearest x2, then a 3x3 convolution). Fixed for a run's life.", MODEL)
    edit_mask: bool = knob(False, "The decoder also draws a soft mask per edit, and the edit users get (and the "
                                  "edit losses and D see) is the input plus the change gated by it: nothing "
                                  "outside the mask moves (GANimation, SaGAN). A run may turn it on when it "
                                  "resumes (the mask starts at ~0.95 everywhere: the full-face edit).", MODEL)
    # schedule
    epochs: int = knob(20, "Passes over the train split (used when --steps is 0).", SCHEDULE)
    steps: int = knob(0, "Total steps of the run, a resumed one included (0: --epochs).", SCHEDULE)
    batch_size: int = knob(64, "Faces per step and process (under torchrun each process takes this many).", SCHEDULE)
    lr: float = knob(2e-4, "Adam learning rate, generator side and discriminator alike.", SCHEDULE)
    lr_final: float = knob(1.0, "Learning rate at the end as a fraction of --lr, reached linearly (by steps, or by "
                                "the clock with --time-limit); 1: constant.", SCHEDULE)
    # losses
    w_pixel: float = knob(40.0, "Weight of the L1 reconstruction loss.", LOSS)
    w_feature: float = knob(1.0, "Weight of the learned-similarity loss (D's features of reconstruction vs real).", LOSS)
    w_kl: float = knob(1e-3, "Weight of the KL term once warmed up.", LOSS)
    kl_warmup: int = knob(1000, "Steps over which the KL weight rises linearly from 0 to --w-kl.", LOSS)
    w_adv: float = knob(1.0, "Weight of the adversarial loss on reconstructions and edits.", LOSS)
    w_attr: float = knob(2.0, "Weight of the attribute head's loss on real faces.", LOSS)
    w_edit: float = knob(10.0, "Weight of the edit loss: BCE of the edit's target attributes under D's classifier "
                               "and the frozen attribute-head snapshot (and --guide), on the raw and the residual "
                               "edit, both jittered.", LOSS)
    w_flip: float = knob(5.0, "Weight of the same loss over the attributes an edit changes only (flip_bce).", LOSS)
    w_d_cls: float = knob(1.0, "Weight of D's attribute classifier on real faces, in D's loss.", LOSS)
    w_d_mismatch: float = knob(0.0, "--projection: weight of a matching-aware term in D's loss (Reed et al. 2016): a "
                                    "real face told attributes it does not have (the step's edit targets) is a "
                                    "fake, so an edit that leaves the face as it was fails D too; 0: off.", LOSS)
    # realism first (issue 17): an edit must fool D as users see it, and texture alone must not fool the critics
    w_adv_edit: float = knob(-1.0, "Weight of the adversarial loss on edits (-1: --w-adv).", LOSS)
    d_residual: bool = knob(False, "D also judges the residual edit (crop + edited - reconstruction), the picture "
                                   "users get, as a fake with its target attributes.", LOSS)
    r1_gamma: float = knob(0.0, "R1 penalty gamma/2 * |grad D(real)|^2 (lazy, every --r1-every steps); 0: off.", LOSS)
    r1_every: int = knob(4, "Steps between R1 penalties (scaled up to the same average pull).", LOSS)
    diff_augment: bool = knob(False, "Everything D's real/fake verdict sees (real faces, reconstructions, edits) is "
                                     "randomly translated and cut out (DiffAugment), so D cannot memorise the "
                                     "training faces; D's classifier learns from unaugmented real faces.", LOSS)
    w_mask: float = knob(1.0, "--edit-mask: weight of the mask's sparsity, its mean over the edit (each pixel an "
                              "edit touches costs this much per face, over the image's area).", LOSS)
    lr_mask: float = knob(10.0, "--edit-mask: the mask conv's learning rate as a multiple of --lr. It is a fresh "
                                "layer on a trained decoder: at --lr (Adam moves each weight ~lr a step) a "
                                "fine-tune's mask stayed at its start (mean 0.9526 -> 0.953 over 250 steps).", LOSS)
    w_mask_outside: float = knob(0.0, "--edit-mask: weight of the mask's mean outside the region of the attributes "
                                      "its edit changes (regions fit from the train labels: "
                                      "faceedit.train.regions; the run draws them in regions.png); 0: off.", LOSS)
    lr_d: float = knob(1.0, "The discriminator's (and --w-projected's critic's) learning rate as a multiple of "
                            "--lr: a two time-scale update (TTUR, Heusel et al. 2017). At 1, D's loss sat near "
                            "chance (runs/mask4: 1.50 with its classifier's 0.25 in it; chance is 1.39) while "
                            "the edit classifiers' gradients drew colour washes it let through; at 4 (runs/mask5) it "
                            "oscillated and the washes got worse (docs/training-log.md).", LOSS)
    w_mask_tv: float = knob(2.0, "--edit-mask: weight of the mask's smoothness, its total variation (mean absolute "
                                 "difference of neighbouring pixels, across and down).", LOSS)
    w_identity: float = knob(0.0, "Weight of the identity loss: 1 - cosine similarity of a face recogniser's "
                                  "descriptors of the input and of its edit (dlib's ResNet, "
                                  "faceedit.train.face_descriptor: features the generator never trained); 0: off "
                                  "(it adds that network's forward and backward pass on every edit).", LOSS)
    w_projected: float = knob(0.0, "Weight of the adversarial loss from a projected discriminator "
                                   "(faceedit.train.projected): trainable heads on a face recogniser's frozen "
                                   "features judge each edit against real faces; 0: off (it adds that network's "
                                   "passes over the batch's real faces and edits).", LOSS)
    w_latent_adv: float = knob(0.0, "Weight of the latent adversary (faceedit.train.latent, after Fader networks): a "
                                    "small classifier learns to read the attributes off the encoder's latent and "
                                    "the encoder pays for what it still reads, so the decoder must draw the "
                                    "attributes from its attribute input; 0: off.", LOSS)
    projected_local: bool = knob(False, "--edit-mask with --w-projected: the projected critic judges each patch of an "
                                        "edit, fake by the share its mask opened and real by the rest, and the "
                                        "generator pays for its edited patches only (LaMa's masked adversarial "
                                        "loss); off: one verdict per image, mostly real pixels.", LOSS)
    critic_soften: float = knob(0.0, "The edit critics see edits blurred (sigma up to this many px) and lightly "
                                     "noised, so stripes and colour noise buy nothing; 0: off.", LOSS)
    colourless_critics: bool = knob(False, "The edit critics judge every attribute but the colour ones (hair colours, "
                                           "pale skin: augment.COLOUR_ATTRIBUTES) on a grey view of the edit, so a "
                                           "patch of colour buys no edit of glasses, mustache, age or sex; the "
                                           "classifiers that learn from real faces see a quarter of them in grey.",
                                    LOSS)
    critic_chroma_blur: float = knob(0.0, "The edit critics see the colour of an edit (its chroma, brightness kept) "
                                          "blurred with a Gaussian of this many px, so a fine pattern of colour "
                                          "(streaks, checks) buys no hair colour or pale skin; 0: off.", LOSS)
    w_own_palette: float = knob(0.0, "Weight of the own-palette term (palette.py): an edit that changes no colour "
                                      "attribute pays for every pixel whose colour (chroma, brightness aside) it "
                                      "moves away from the colours of the input's own face centre, so bald, "
                                      "mustache, glasses, age and sex are drawn in the face's own tones; 0: off.",
                                LOSS)
    colour_palettes: bool = knob(False, "With --w-own-palette: edits that change a colour attribute pay too, against "
                                        "the face's palette plus the colours training faces with that attribute "
                                        "have in its region (palette.reference_palettes).", LOSS)
    # edit training
    cls_aug: bool = knob(False, "D's classifier and the attribute head also learn from jittered, re-lit real faces "
                                "(see augment.py).", EDIT)
    cls_smooth: float = knob(0.0, "Label smoothing of D's classifier targets.", EDIT)
    teacher_every: int = knob(100, "Steps between refreshes of the frozen attribute-head snapshot that scores edits.", EDIT)
    guide: str = knob("", "Robust guide checkpoint (`faceedit train guide`): a third, fixed classifier in the edit "
                          "loss.", EDIT)
    flip_focus: list[str] = knob([], "Attributes that get --flip-focus-frac of the single-attribute flips "
                                     "(repeat or separate with commas).", EDIT)
    flip_focus_frac: float = knob(0.0, "Share of the single-attribute flips that goes to --flip-focus.", EDIT)
    rare_boost: list[str] = knob([], "Attributes whose positive faces fill the last --rare-frac of each batch; the "
                                     "classifiers do not learn from those slots.", EDIT)
    rare_frac: float = knob(0.0, "Share of each batch filled with --rare-boost positives, in [0, 1).", EDIT)
    implied_flips: bool = knob(False, "Single flips also set what the train labels imply, as the editor does "
                                      "(faceedit.core.implied).", EDIT)
    d_warmup: int = knob(0, "Steps after (re)starting in which only D trains, e.g. a fresh D after "
                            "`faceedit train from-model`.", EDIT)
    ema: float = knob(0.0, "Decay of a moving average of the generator side (0: none); each validation then also "
                           "writes step_N_ema.pt.", EDIT)
    # validation and checkpoints
    judge: str = knob("", "Judge checkpoint (`faceedit train judge`): validation scores the residual edits with "
                          "it, and best.pt is chosen by its verdict instead of D's.", VALIDATION)
    judge_val: int = knob(256, "Validation faces whose edits the judge scores.", VALIDATION)
    max_val: int = knob(512, "Validation faces used (the first N of the val split).", VALIDATION)
    eval_every: int = knob(0, "Steps between validations (each writes step_N.pt, a sample grid, and best.pt when "
                              "it is the best so far); 0: once per epoch.", VALIDATION)
    ckpt_every: int = knob(200, "Steps between writes of last.pt (also written at the end).", VALIDATION)
    ckpt_minutes: float = knob(10.0, "Minutes of wall time between writes of last.pt, whatever the step count "
                                     "(0: steps only).", VALIDATION)
    time_limit: float = knob(0.0, "Seconds after which the run stops, validated and checkpointed (0: no limit).",
                             VALIDATION)
    # hardware
    bf16: bool = knob(True, "bfloat16 autocast where the hardware has it (GPUs, CPUs with AMX/AVX512-BF16; "
                            "elsewhere fp32, said in the log); --no-bf16: fp32 everywhere.", HARDWARE)
    device: str = knob("auto", "auto (a CUDA GPU when there is one), cpu or cuda.", HARDWARE)
    threads: int = knob(0, "torch CPU threads (0: torch's default).", HARDWARE)

    def __post_init__(self):
        if isinstance(self.data, str):  # one folder, as older checkpoints and callers give it
            self.data = [self.data] if self.data else []

    def model_config(self):
        from faceedit.train.model import ModelConfig
        return ModelConfig(self.image_size, list(self.attributes), self.z_channels, self.width, self.dec_width,
                           self.projection, self.upsample, self.edit_mask)

    def check(self):
        """What the command line can get wrong before any data is read (the Trainer checks the rest)."""
        if not self.data:
            raise ValueError("--data is required: a CelebA-layout folder (repeat it for more training faces)")
        if self.image_size not in (64, 128):
            raise ValueError(f"--image-size must be 64 or 128, got {self.image_size}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"--upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {self.upsample!r}")
        if self.lr_mask <= 0 or self.lr_d <= 0:
            raise ValueError(f"--lr-mask and --lr-d must be above 0, got {self.lr_mask:g} and {self.lr_d:g}")
        if self.w_identity < 0 or self.w_projected < 0:
            raise ValueError(f"--w-identity and --w-projected must be >= 0, got {self.w_identity:g} and "
                             f"{self.w_projected:g}")
        if self.w_d_mismatch < 0 or (self.w_d_mismatch > 0 and not self.projection):
            raise ValueError(f"--w-d-mismatch needs --projection (a D told the attributes) and a weight >= 0, "
                             f"got {self.w_d_mismatch:g}")
        if self.projected_local and not (self.edit_mask and self.w_projected > 0):
            raise ValueError("--projected-local needs --edit-mask and --w-projected above 0")
        if self.w_mask_outside < 0 or (self.w_mask_outside > 0 and not self.edit_mask):
            raise ValueError(f"--w-mask-outside needs --edit-mask and a weight >= 0, got {self.w_mask_outside:g}")
        if self.w_own_palette < 0:
            raise ValueError(f"--w-own-palette must be >= 0, got {self.w_own_palette:g}")
        if self.colour_palettes and self.w_own_palette <= 0:
            raise ValueError("--colour-palettes needs --w-own-palette above 0")
        if self.critic_chroma_blur < 0:
            raise ValueError(f"--critic-chroma-blur must be >= 0, got {self.critic_chroma_blur:g}")
        if self.w_mask < 0 or self.w_mask_tv < 0:
            raise ValueError(f"--w-mask and --w-mask-tv must be >= 0, got {self.w_mask:g} and {self.w_mask_tv:g}")


RESUME_HELP = "Continue exactly from OUT/last.pt (weights, optimizers, step, RNG); without one the run starts afresh."


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def option_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig field (and --resume), as typer reads them from a signature."""
    import typer
    types = typing.get_type_hints(TrainConfig)
    params = []
    for f in fields(TrainConfig):
        default = f.default_factory() if callable(f.default_factory) else f.default
        flag, kind = _flag(f.name), types[f.name]
        kw = dict(help=f.metadata["help"], rich_help_panel=f.metadata["panel"])
        if kind is bool:
            option = typer.Option(default, f"{flag}/--no-{flag[2:]}", **kw)
        elif kind == list[str]:
            option = typer.Option(default, flag, show_default=False, metavar="NAMES", **kw)
        elif kind in (int, float, str):
            option = typer.Option(default, flag, **kw)
        else:
            raise TypeError(f"TrainConfig.{f.name}: no command-line form for {kind}")
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    params.append(inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--resume", help=RESUME_HELP, rich_help_panel=RUN)))
    return params


def config_options(fn):
    """Turn fn(..., cfg: TrainConfig, resume: bool) into a typer command or callback with one option per field
    (and --resume): the options are gathered into a TrainConfig and handed over as cfg (fn calls cfg.check()
    when it trains: a group callback also runs before its subcommands)."""
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name not in ("cfg", "resume")]
    names = {f.name for f in fields(TrainConfig)}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        for k, v in values.items():  # lists: each occurrence may hold several comma-separated names
            if isinstance(v, (list, tuple)):
                values[k] = [name for item in v for name in item.split(",") if name]
        return fn(*args, cfg=TrainConfig(**values), resume=kwargs.pop("resume"), **kwargs)

    wrapper.__signature__ = inspect.Signature(own + option_parameters())
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    del wrapper.__wrapped__  # typer must read the signature above, not fn's
    return wrapper
