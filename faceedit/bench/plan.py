"""What one `faceedit bench` run measures and for how long: quick, full, or tiny (the test suite's)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from faceedit.bench.paired import FULL_PAIRED, QUICK_PAIRED, TINY_PAIRED, PairedBudget
from faceedit.bench.timing import FULL, QUICK, TINY, Budget

ALL_BATCHES = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Plan:
    model: str | Path | None = None          # model directory, name, or None for the shipped default
    checkpoint: Path | None = None           # for the PyTorch-eager baseline; None: the model directory's own weights
    mode: str = "full"                       # full | quick | tiny
    batches: tuple[int, ...] = ALL_BATCHES
    backends: tuple[str, ...] | None = None  # None: every backend installed here (+ pytorch, openvino-raw)
    budget: Budget = field(default_factory=lambda: FULL)          # single measurements (the peak, the photo steps)
    paired: PairedBudget = field(default_factory=lambda: FULL_PAIRED)  # every comparison: rounds until +-3% or the cap
    clients: tuple[int, ...] = (1, 4, 16, 64)
    delays_ms: tuple[float, ...] = (1.0, 4.0)
    client_seconds: float = 0.4              # one window of the closed-loop clients (a comparison runs many)
    peak_n: int = 2048
    photo_budget: Budget = field(default_factory=lambda: Budget(warmup=3, min_iters=20, min_seconds=2.0, max_seconds=4.0))
    cold_repeats: int = 3
    three_graph: bool = True                 # also time the three-graph path where a fused graph exists
    concurrency: bool = True                 # the dynamic batcher under N clients
    end_to_end: bool = True                  # the 1-MP photo, engine load time, cold `faceedit run`
    photo_side: int = 1024                   # the astronaut upscaled to side x side (1024: 1.05 MP)
    large_photo: tuple[int, int] | None = (4000, 3000)  # the 12-MP photo (width, height); None: not run
    photos: Path | None = None               # a folder of real photos for the face detection report
    no_faces: Path | None = None             # a folder of photos that hold no face (default: the built-in set of 50)
    crops: bool = True                       # the crop-edit measurements (roofline, configs, batcher)

    @property
    def quick(self) -> bool:
        return self.mode != "full"


def make_plan(mode: str = "full", **overrides) -> Plan:
    if mode == "quick":
        # fewer rows (batch sizes, graph paths, client counts), not fewer repeats: the same stop rule
        base = Plan(mode="quick", batches=(1, 32), budget=QUICK, paired=QUICK_PAIRED, clients=(1, 16, 64),
                    delays_ms=(2.0,), client_seconds=0.3, peak_n=1024, three_graph=False,
                    photo_budget=Budget(warmup=2, min_iters=10, min_seconds=1.0, max_seconds=2.5), cold_repeats=3)
    elif mode == "tiny":
        base = Plan(mode="tiny", batches=(1, 2), budget=TINY, paired=TINY_PAIRED, clients=(1, 2), delays_ms=(1.0,),
                    client_seconds=0.1, peak_n=128, photo_budget=TINY, cold_repeats=1, photo_side=512,
                    large_photo=(1024, 768))
    elif mode == "full":
        base = Plan()
    else:
        raise ValueError(f"unknown benchmark mode {mode!r}: full, quick or tiny")
    for k, v in overrides.items():
        if v is not None:
            setattr(base, k, v)
    return base
