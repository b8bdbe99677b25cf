"""Latency benchmarks for the runtime, torch-free: timing harness, FLOPs from ONNX graphs, the machine's
measured peak, concurrency through the dynamic batcher, the photo pipeline end to end, reports and plots.

The PyTorch-eager baseline lives in faceedit/bench/eager.py (it needs torch); `faceedit bench`
(faceedit/cli/bench_cmd.py) puts the two together. Against a running `faceedit serve` (started as a command:
this room never imports serve): loadgen (per route, 1/8/64 clients, against the offline rates of the same
run), bombs (decompression bombs: every request answered, memory bounded), ray_bench (serve against Ray)."""
