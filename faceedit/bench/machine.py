"""What the benchmark ran on: CPU model, cores, memory, accelerators, library versions, and a short
machine kind ("cpu-2core", "gpu-h100") that names the results file."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess

LIBRARIES = ("faceedit", "numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "onnx", "torch", "tensorrt",
             "opencv-python-headless", "scikit-image", "matplotlib")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if re.match(r"(avx|amx|fma|f16c)", f))
    except OSError:
        pass
    return []


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def gpus() -> list[str]:
    """NVIDIA GPU names from nvidia-smi; empty when there is none (no torch needed)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return [x.strip() for x in out.stdout.splitlines() if x.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        return []


def versions() -> dict[str, str | None]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = None
    out["python"] = platform.python_version()
    return out


def machine_kind(gpu_names: list[str] | None = None) -> str:
    gpu_names = gpus() if gpu_names is None else gpu_names
    if gpu_names:
        m = re.search(r"(H100|H200|A100|L40S?|L4|A10G?|T4|V100|RTX ?\w+)", gpu_names[0])
        name = (m.group(1) if m else gpu_names[0].split()[-1]).replace(" ", "").lower()
        return f"gpu-{name}" + (f"x{len(gpu_names)}" if len(gpu_names) > 1 else "")
    return f"cpu-{usable_cores()}core"


def describe() -> dict:
    names = gpus()
    return {"kind": machine_kind(names), "cpu": cpu_model(), "cores": usable_cores(), "logical_cpus": os.cpu_count(),
            "cpu_flags": cpu_flags(), "memory_gib": memory_gib(), "gpus": names,
            "os": f"{platform.system()} {platform.release()}", "versions": versions()}
