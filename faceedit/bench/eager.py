"""The PyTorch-eager baseline for `faceedit bench`: the checkpoint's own modules doing what the engine's
editor does (docs/model-directory.md), from uint8 crops in to uint8 crops out, so the ratio is the one a
user would see. CPU fp32 is the baseline; on a CUDA GPU also fp32, fp16 and fp16 with CUDA graphs."""
from __future__ import annotations

import numpy as np
import torch

from faceedit.train.checkpoint import load_checkpoint
from faceedit.train.from_model import generator_from_model_dir
from faceedit.train.model import edit


class EagerEditor:
    """edit(crops_u8 [N,S,S,3] RGB, target [N,A], mask [N,A]) -> edited crops, uint8 [N,S,S,3]."""

    def __init__(self, checkpoint=None, device: str = "cpu", dtype: str = "fp32", cuda_graphs: bool = False,
                 model_dir=None):
        """checkpoint: a training checkpoint; or model_dir: the exported directory's own weights, rebuilt as
        PyTorch modules (faceedit.train.from_model), so a fresh clone has a baseline without any checkpoint."""
        if model_dir is not None:
            model, manifest = generator_from_model_dir(model_dir)
            self.step = (manifest.get("checkpoint") or {}).get("step")
        else:
            model, state = load_checkpoint(checkpoint)
            self.step = state.get("step")
        self.cfg = model.cfg
        self.device = torch.device(device)
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        self.encoder = model.encoder.to(self.device, self.dtype).eval()
        self.attribute_head = model.attribute_head.to(self.device, self.dtype).eval()
        self.decoder = model.decoder.to(self.device, self.dtype).eval()
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple] = {}

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def attributes(self) -> list[str]:
        return list(self.cfg.attributes)

    def _forward(self, x, target, mask):
        edited, reconstruction, _, *edit_mask = edit(self.encoder, self.attribute_head, self.decoder, x, target, mask)
        if edit_mask:  # a model with an edit mask: the change gated by it, as the engine does
            return (x + edit_mask[0] * (edited - reconstruction)).clamp(-1, 1)
        return (x + (edited - reconstruction)).clamp(-1, 1)

    def _graph_for(self, n: int):
        if n not in self._graphs:
            s, a = self.image_size, len(self.attributes)
            x = torch.zeros(n, 3, s, s, device=self.device, dtype=self.dtype)
            t = torch.zeros(n, a, device=self.device, dtype=self.dtype)
            m = torch.zeros(n, a, device=self.device, dtype=self.dtype)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(3):
                    self._forward(x, t, m)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                out = self._forward(x, t, m)
            self._graphs[n] = (graph, x, t, m, out)
        return self._graphs[n]

    @torch.inference_mode()
    def edit(self, crops: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2)
        x = (x.to(self.dtype) / 127.5 - 1)
        t = torch.from_numpy(target).to(self.device, self.dtype)
        m = torch.from_numpy(mask).to(self.device, self.dtype)
        if self.cuda_graphs:
            graph, gx, gt, gm, out = self._graph_for(len(crops))
            gx.copy_(x), gt.copy_(t), gm.copy_(m)
            graph.replay()
            y = out
        else:
            y = self._forward(x, t, m)
        y = ((y.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return y.cpu().numpy()


def variants() -> tuple[dict[str, dict], dict[str, str]]:
    """The eager configurations this machine can run ({name: EagerEditor kwargs}) and the absent ones."""
    run = {"pytorch-eager/fp32": {"device": "cpu", "dtype": "fp32"}}
    absent = {}
    cuda = ["pytorch-cuda/fp32", "pytorch-cuda/fp16", "pytorch-cuda-graphs/fp16"]
    if torch.cuda.is_available():
        run["pytorch-cuda/fp32"] = {"device": "cuda", "dtype": "fp32"}
        run["pytorch-cuda/fp16"] = {"device": "cuda", "dtype": "fp16"}
        run["pytorch-cuda-graphs/fp16"] = {"device": "cuda", "dtype": "fp16", "cuda_graphs": True}
    else:
        absent.update({k: "no CUDA device visible to torch" for k in cuda})
    return run, absent


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def torch_threads() -> int:
    return torch.get_num_threads()
