"""TensorRT engine file names, defined once for the export that writes them and the backend that loads them.

An engine only runs on the GPU model and TensorRT minor version that built it, so both are in its name
(`decoder.trt-10.3-NVIDIA_H100.fp16.engine`): a runtime that looks for its own name never loads a stale one."""
from __future__ import annotations

import re
import shutil
import subprocess


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'NVIDIA_H100_80GB_HBM3' (safe in a file name, still readable)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name.strip()).strip("_") or "unknown_gpu"


def short_version(version: str) -> str:
    """'10.3.0.26' -> '10.3': engines are portable across patch releases, not minor ones."""
    return ".".join(version.split(".")[:2])


def machine_tag(trt_version: str, gpu_name: str) -> str:
    """'trt-10.3-NVIDIA_H100': the part of an engine's name that must match the machine that loads it."""
    return f"trt-{short_version(trt_version)}-{gpu_slug(gpu_name)}"


def engine_filename(graph: str, trt_version: str, gpu_name: str, precision: str = "fp16") -> str:
    return f"{graph}.{machine_tag(trt_version, gpu_name)}.{precision}.engine"


def timing_cache_filename(trt_version: str, gpu_name: str) -> str:
    return f"{machine_tag(trt_version, gpu_name)}.timing.cache"


def built_here(path: str, trt_version: str, gpu_name: str) -> bool:
    """Whether an engine file (by its name) was built for this TensorRT version and GPU."""
    return f".{machine_tag(trt_version, gpu_name)}." in path


def nvidia_smi_gpu_name() -> str | None:
    """The first NVIDIA GPU's name from nvidia-smi, or None when there is none."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [l.strip() for l in out.stdout.splitlines() if l.strip()]
    return names[0] if out.returncode == 0 and names else None
