"""Latency benchmarks for the runtime, torch-free: timing harness, FLOPs from ONNX graphs, the machine's
measured peak, concurrency through the dynamic batcher, the photo pipeline end to end, reports and plots.

The PyTorch-eager baseline lives in faceedit/bench/eager.py (it needs torch); `faceedit bench`
(faceedit/cli/bench_cmd.py) puts the two together."""
