"""What one `faceedit bench` run measures and for how long: quick, full, or tiny (the test suite's)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from faceedit.bench.timing import FULL, QUICK, TINY, Budget

ALL_BATCHES = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Plan:
    model: str | Path | None = None          # model directory, name, or None for the shipped default
    checkpoint: Path | None = None           # for the PyTorch-eager baseline; None: the model directory's own weights
    mode: str = "full"                       # full | quick | tiny
    batches: tuple[int, ...] = ALL_BATCHES
    backends: tuple[str, ...] | None = None  # None: every backend installed here (+ pytorch, openvino-raw)
    budget: Budget = field(default_factory=lambda: FULL)
    clients: tuple[int, ...] = (1, 4, 16, 64)
    delays_ms: tuple[float, ...] = (1.0, 4.0)
    client_seconds: float = 2.0
    peak_n: int = 2048
    photo_budget: Budget = field(default_factory=lambda: Budget(warmup=3, min_iters=20, min_seconds=2.0, max_seconds=4.0))
    cold_repeats: int = 3
    three_graph: bool = True                 # also time the three-graph path where a fused graph exists
    concurrency: bool = True                 # the dynamic batcher under N clients
    end_to_end: bool = True                  # the 1-MP photo, engine load time, cold `faceedit run`
    photo_side: int = 1024                   # the astronaut upscaled to side x side (1024: 1.05 MP)
    photos: Path | None = None               # a folder of real photos for the face detection report
    crops: bool = True                       # the crop-edit measurements (roofline, configs, batcher)

    @property
    def quick(self) -> bool:
        return self.mode != "full"


def make_plan(mode: str = "full", **overrides) -> Plan:
    if mode == "quick":
        base = Plan(mode="quick", batches=(1, 8, 32), budget=QUICK, clients=(1, 16, 64), delays_ms=(2.0,),
                    client_seconds=1.0, peak_n=1024, photo_budget=Budget(warmup=2, min_iters=5, min_seconds=0.5, max_seconds=1.5),
                    cold_repeats=2)
    elif mode == "tiny":
        base = Plan(mode="tiny", batches=(1, 2), budget=TINY, clients=(1, 2), delays_ms=(1.0,), client_seconds=0.2,
                    peak_n=128, photo_budget=TINY, cold_repeats=1, photo_side=512)
    elif mode == "full":
        base = Plan()
    else:
        raise ValueError(f"unknown benchmark mode {mode!r}: full, quick or tiny")
    for k, v in overrides.items():
        if v is not None:
            setattr(base, k, v)
    return base
