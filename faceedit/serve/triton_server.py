"""A real Triton Inference Server from the nvidia-pytriton wheel, serving the python-backend variant of the
repository `faceedit export --triton DIR` (or `faceedit triton write DIR`) writes: `faceedit triton serve`,
`faceedit triton check`, `faceedit triton bench` and tests/test_triton_server.py all start it through
TritonServer. And the parity check of a running server (either variant) against the engine here.

    with TritonServer(repository) as server:          # free loopback ports; stopped, with its stubs, on exit
        editor = remote_editor(server.grpc_url)         # the engine's Editor, graphs on Triton
        server.statistics("editor")                     # Triton's own counts: inference vs execution

The wheel carries `tritonserver` (pytriton/tritonserver/bin), its libraries (nvidia_pytriton.libs) and the
python backend only, with one backend stub per Python version. Laid out as PyTriton lays it out: the server
directory copied into a temporary folder, the stub for this interpreter's version copied into
backends/python; the server's environment puts this interpreter's bin folder first on PATH (the stub's
Python then finds this environment's packages: faceedit, numpy, the engine's backends; it ignores
PYTHONPATH) and this interpreter's shared libpython first on LD_LIBRARY_PATH (a libpython of another patch
release breaks the stub). The wheel needs glibc 2.35 or newer (manylinux_2_35)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

MIN_GLIBC = (2, 35)
WHEEL = "nvidia-pytriton==0.7.0"
# the wheel pins numpy<2 for PyTriton's own Python API, which this module does not use (it runs the binary):
# installing it without dependencies keeps the environment's numpy
INSTALL_HINT = f"pip install --no-deps '{WHEEL}'"
PYTHON_CONFIG = "python"  # faceedit.export.triton's configs/python.pbtxt


class ServerUnavailable(RuntimeError):
    """The wheel's server cannot run here (the message says why, in one line)."""


class ServerFailed(RuntimeError):
    """The server started but did not serve (the message ends with the log's last lines)."""


# ---- the wheel -----------------------------------------------------------------------------------------
def glibc_version() -> tuple[int, int] | None:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except (AttributeError, ValueError, OSError):
        return None  # not glibc (musl, macOS)


def libpython_dir() -> Path:
    """The folder of this interpreter's own shared libpython (the stub links libpython3.X.so.1.0)."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise ServerUnavailable(f"this Python ({sys.executable}) was built without a shared libpython, which "
                                "Triton's python-backend stub needs: use a Python built with --enable-shared")
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if not libdir or not soname or not (Path(libdir) / soname).exists():
        raise ServerUnavailable(f"this Python's shared library {soname} is not in {libdir}")
    return Path(libdir)


def wheel_layout() -> dict:
    """{"server": pytriton/tritonserver, "libs": nvidia_pytriton.libs, "stub": this Python's stub,
    "libpython": its folder}, or ServerUnavailable saying in one line why the wheel's server cannot run here."""
    glibc = glibc_version()
    if not sys.platform.startswith("linux") or glibc is None:
        raise ServerUnavailable(f"the nvidia-pytriton wheel is for Linux with glibc; this is {sys.platform}")
    if glibc < MIN_GLIBC:
        raise ServerUnavailable(f"glibc {glibc[0]}.{glibc[1]} here: the nvidia-pytriton wheel (Triton's server) "
                                f"needs glibc {MIN_GLIBC[0]}.{MIN_GLIBC[1]} or newer")
    spec = importlib.util.find_spec("pytriton")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable(f"nvidia-pytriton is not installed (Triton's server comes in it): {INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0])
    server = root / "tritonserver"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    layout = {"server": server, "libs": root.parent / "nvidia_pytriton.libs",
              "stub": server / "python_backend_stubs" / version / "triton_python_backend_stub"}
    if not (server / "bin" / "tritonserver").is_file() or not (server / "backends" / "python").is_dir():
        raise ServerUnavailable(f"nvidia-pytriton at {root} has no tritonserver binary or python backend")
    if not layout["stub"].is_file():
        raise ServerUnavailable(f"nvidia-pytriton has no python-backend stub for Python {version}")
    layout["libpython"] = libpython_dir()
    return layout


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _process_group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) whose process group is pgid."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(d.name))
    return out


def _die_with_parent():
    """In the child before exec: SIGTERM when the process that started the server dies (no orphan server)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ---- the server ----------------------------------------------------------------------------------------
class TritonServer:
    """tritonserver from the wheel on `repository` (the python-backend configurations: --model-config-name
    python), HTTP and gRPC on host (loopback by default), free ports unless given; metrics off unless
    metrics_port is given. start() returns once every model is ready; stop() ends the server and every process
    it started (the python-backend stubs), and records any that outlived it in .leftovers (then killed)."""

    def __init__(self, repository, host: str = "127.0.0.1", http_port: int = 0, grpc_port: int = 0,
                 metrics_port: int | None = None, config_name: str | None = PYTHON_CONFIG, log_verbose: int = 0,
                 extra_args=()):
        self.repository = Path(repository).absolute()
        if not self.repository.is_dir():
            raise ServerFailed(f"{self.repository} is not a model repository (not a folder)")
        self.host = host
        self.http_port = http_port or free_port(host)
        self.grpc_port = grpc_port or free_port(host)
        self.metrics_port = metrics_port
        self.config_name, self.log_verbose, self.extra_args = config_name, log_verbose, list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.leftovers: list[int] = []
        self.started_s = None

    # addresses
    @property
    def grpc_url(self) -> str:
        return f"{self._client_host()}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self._client_host()}:{self.http_port}"

    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "tritonserver.log" if self.workdir else None

    def command(self, layout: dict) -> list[str]:
        d = self.workdir / "tritonserver"
        cmd = [str(d / "bin" / "tritonserver"), "--model-repository", str(self.repository),
               "--backend-directory", str(d / "backends"), "--cache-directory", str(d / "caches"),
               # a region name of its own: two servers on one machine must not share the stubs' shared memory
               "--backend-config", f"python,shm-region-prefix-name=faceedit{os.getpid()}p{self.grpc_port}",
               "--http-address", self.host, "--http-port", str(self.http_port),
               "--grpc-address", self.host, "--grpc-port", str(self.grpc_port),
               "--exit-on-error", "true", "--strict-readiness", "true", "--exit-timeout-secs", "20",
               "--log-verbose", str(self.log_verbose)]
        if self.metrics_port is None:
            cmd += ["--allow-metrics", "false"]
        else:
            cmd += ["--metrics-address", self.host, "--metrics-port", str(self.metrics_port)]
        if self.config_name:
            cmd += ["--model-config-name", self.config_name]
        return cmd + self.extra_args

    def environment(self, layout: dict) -> dict:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]).rstrip(os.pathsep)
        libs = [str(layout["libpython"]), str(layout["libs"])] + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
        env["LD_LIBRARY_PATH"] = ":".join(libs)
        env.pop("PYTHONHOME", None)
        return env

    def start(self, timeout_s: float = 180.0) -> "TritonServer":
        layout = wheel_layout()
        self.workdir = Path(tempfile.mkdtemp(prefix="faceedit-tritonserver-"))
        try:
            d = self.workdir / "tritonserver"
            shutil.copytree(layout["server"], d, ignore=shutil.ignore_patterns("python_backend_stubs", "__pycache__"))
            shutil.copy2(layout["stub"], d / "backends" / "python" / "triton_python_backend_stub")
            log = open(self.log_path, "wb")
            t0 = time.perf_counter()
            try:
                self.proc = subprocess.Popen(self.command(layout), env=self.environment(layout), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                             preexec_fn=_die_with_parent)
            finally:
                log.close()
            self.wait_ready(timeout_s)
            self.started_s = time.perf_counter() - t0
        except BaseException:
            self.stop(keep_log=True)
            raise
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"tritonserver exited with status {self.proc.returncode} before it was ready"
                                   + self.log_tail())
            if self.ready():
                return
            time.sleep(0.1)
        raise ServerFailed(f"tritonserver was not ready after {timeout_s:g} s" + self.log_tail())

    def log_tail(self, lines: int = 3) -> str:
        """The log's error lines (Triton's "E<date>" lines, without the CPU-only machine's harmless CUDA ones,
        each cut at its first escaped newline) and its last lines, for an error message."""
        import re
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except (OSError, AttributeError):
            return ""
        errors = [l.split("\\n")[0] for l in text if re.match(r"E\d{4} ", l)
                  and not re.search(r"CudaDriverHelper|nvml|dcgm", l, re.IGNORECASE)][:4]
        return f" (log {self.log_path}):\n" + "\n".join(errors + text[-lines:])

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.http_url}{path}", timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def statistics(self, model: str) -> dict:
        """Triton's own statistics of model's version 1: {"inference_count": rows inferred,
        "execution_count": model executions (a dynamic batch is one), "success_count": requests}."""
        stats = self.get(f"/v2/models/{model}/stats")["model_stats"][0]
        return {"inference_count": int(stats.get("inference_count", 0)),
                "execution_count": int(stats.get("execution_count", 0)),
                "success_count": int(stats["inference_stats"]["success"]["count"])}

    def models(self) -> list[dict]:
        req = urllib.request.Request(f"{self.http_url}/v2/repository/index", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self, timeout_s: float = 30.0, keep_log: bool = False):
        """SIGINT (Triton unloads its models and ends their stubs), then SIGKILL to the whole process group
        for anything still alive after timeout_s; the pids found alive then are kept in .leftovers."""
        proc, self.proc = self.proc, None
        if proc is not None:
            pgid = proc.pid  # start_new_session: the server leads its own group, the stubs are in it
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            deadline = time.monotonic() + 10
            while _process_group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)  # stubs notice their parent is gone within a second or so
            self.leftovers = _process_group_members(pgid)
            if self.leftovers:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.workdir is not None:
            if keep_log:  # a failed start: the log stays for the user (its path is in the error), not the copy
                shutil.rmtree(self.workdir / "tritonserver", ignore_errors=True)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()


# ---- repositories and checks ---------------------------------------------------------------------------
def repository_engine_backend(repository) -> str:
    """The engine backend a repository's python variant names (faceedit_backend in editor/configs/python.pbtxt)."""
    import re
    try:
        text = (Path(repository) / "editor" / "configs" / f"{PYTHON_CONFIG}.pbtxt").read_text()
    except OSError:
        return "auto"
    m = re.search(r'key: "faceedit_backend"\s*value: \{ string_value: "([^"]*)" \}', text)
    return m.group(1) if m else "auto"


def astronaut_crops(n: int = 3, size: int = 96):
    """n aligned-style crops of the astronaut's face (public domain, shipped with the web demo), each a few
    pixels apart, every other one mirrored: rows that differ, so a batch split back wrongly shows."""
    import numpy as np
    from PIL import Image
    rgb = np.asarray(Image.open(Path(__file__).parent / "static" / "astronaut.jpg").convert("RGB"))
    crops = []
    for i in range(n):
        dx, dy = 3 * (i % 8), 2 * (i // 8 % 8)
        c = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[40 + dy:190 + dy, 150 + dx:300 + dx])).resize((size, size)))
        crops.append(np.ascontiguousarray(c[:, ::-1]) if i % 2 else c)
    return crops


def parity_budget(model=None) -> float:
    """The manifest's parity limit (largest |difference| the export allows between runtimes, tensor units)."""
    from faceedit.core.model_dir import ModelInfo
    info = ModelInfo.load(model)
    return float((info.manifest.get("parity") or {}).get("limit") or 1e-3)


def run_checks(url: str, model=None, engine_backend: str = "onnxruntime", client=None) -> list:
    """The engine's Editor with its graphs on the server at url against the engine here (engine_backend,
    fp32), on the same crops: the fused editor model, encoder + attributes + decoder, and the ensemble.
    Tolerances: one uint8 level on pixels, the manifest's parity limit on probabilities and tensors."""
    from faceedit.engine import Editor
    from faceedit.engine.backends.triton_client import parity_checks, remote_editor
    if client is None:
        from tritonclient.grpc import InferenceServerClient
        client = InferenceServerClient(url)
    budget = parity_budget(model)
    local_fused = Editor.load(model, backend=engine_backend, precision="fp32")
    local_three = Editor.load(model, backend=engine_backend, precision="fp32")
    local_three.fused = False
    crops, changes = astronaut_crops(), {"smiling": 0, "young": 1}
    tol = dict(pixel_tol=1.0, prob_tol=budget, tensor_tol=budget)
    checks = parity_checks(remote_editor(url, model, fused=True, client=client), local_fused, crops, changes,
                           ensemble_client=client, **tol)
    checks += parity_checks(remote_editor(url, model, fused=False, client=client), local_three, crops, changes, **tol)
    return checks
