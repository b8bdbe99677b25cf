"""Editor: the embeddable API over a model directory and one backend.

    editor = Editor.load()                                   # shipped model, fastest backend here
    probs = editor.attributes(face)                          # {"Young": 0.93, ...}
    out = editor.edit(faces, {"young": 1, "smiling": 0.3})   # residual edit at each crop's own size

Images are aligned face crops, uint8 HxWx3 RGB, any size (resized to the model's); one image, a list or an
NxHxWx3 array, and results come back in the same form. Every method is safe to call from many threads.
Edits use the model's auto strength where its manifest has one (faceedit.core.strength: an edit the attribute
head does not see land is pushed harder); Editor.load(auto_strength=False) keeps every edit at its gain.
Where the manifest has implied attributes (faceedit.core.implied), an attribute set fully on or off also sets what
every training face with that value has (a mustache: male, with facial hair); Editor.load(implied=False)
edits only the attributes named."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from faceedit.core.attributes import decoder_value
from faceedit.engine import tensors
from faceedit.engine.edit_filter import EditFilter
from faceedit.engine.backends import AUTO_ORDER, backend_class, canonical_name
from faceedit.engine.errors import BackendUnavailable, EngineError
from faceedit.engine.request import EditRequest
from faceedit.core.model_dir import ModelInfo
from faceedit.core.implied import apply_implied, implied_changes
from faceedit.core.strength import auto_multipliers, pushable

MAX_BATCH = 32             # rows per backend call: bounds memory; the batcher never sends more


@dataclass
class EditOutput:
    images: list            # uint8 crops at their own sizes
    before: np.ndarray      # [N, A] attribute probabilities of the inputs
    edited_small: np.ndarray  # [N, 3, S, S] the model-size result (residual or raw), for the attribute head
    multipliers: np.ndarray | None = None  # [N, A] auto strength's multiplier on each gain (1: rendered once)
    implied: np.ndarray | None = None      # [N, A] bool: attributes the edit set by an implied rule, where the face read otherwise


class Editor:
    def __init__(self, model: ModelInfo, backend, precision: str, selection: str = "", auto_strength: bool = True,
                 implied: bool = True, edit_filter: bool = True):
        self.model = model
        self.backend = backend
        self.precision = precision
        self.selection = selection or f"{backend.name}, {precision}"
        self.size = model.image_size
        self.attribute_names = list(model.attribute_names)
        self._graphs: dict = {}
        self._lock = threading.Lock()
        self._prior = None
        self.fused = backend.has(model, "editor", precision)
        self._gains = np.asarray(model.edit_gains, np.float32)  # decoder_values runs on every edit
        self._tops = np.asarray(model.edit_tops or [1.0] * len(self.attribute_names), np.float32)
        self.auto_strength = auto_strength and bool((self._tops > 1).any())
        self._implied = model.implied if implied else None
        self.implied = self._implied is not None
        try:
            self._filter = EditFilter.from_manifest(model.edit_filter, self.attribute_names) if edit_filter else None
        except (KeyError, TypeError, ValueError) as e:
            raise EngineError(f"{model.path}/manifest.json: bad \"edit_filter\" entry: {e}") from None
        self.edit_filter = self._filter is not None

    # ---- loading -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, model=None, backend: str = "auto", precision: str = "auto", threads: int = 0,
             verify: bool = True, cache: bool = True, auto_strength: bool = True, implied: bool = True,
             edit_filter: bool = True) -> "Editor":
        """model: a model directory, a model name, or None for the shipped default. backend: auto or a name
        from faceedit.engine.backends.NAMES. precision: auto (the backend's preferred variant among those the
        export accepted within its accuracy budget: bf16 on OpenVINO with a bf16 CPU, fp16 on GPUs, else fp32;
        int8 only when asked for), or
        fp32, int8, bf16 (OpenVINO), fp16 (GPU backends), when the model has it. auto_strength: False renders
        every edit at its attribute's gain even where the model has auto strength. implied: False sets only the
        attributes named, even where the model has implied rules. edit_filter: False adds the decoder's change
        as it comes, even where the model's manifest asks for it to be filtered (engine.edit_filter)."""
        info = model if isinstance(model, ModelInfo) else ModelInfo.load(model, verify=verify)
        name = canonical_name(backend)
        if name != "auto":
            b = cls._make(name, threads, cache)
            p = b.auto_precision(info) if precision == "auto" else precision
            ed = cls(info, b, p, f"{b.name} (requested), {p}", auto_strength, implied, edit_filter)
            ed._probe()
            return ed
        skipped = []
        for cand in AUTO_ORDER:
            try:
                b = cls._make(cand, threads, cache)
                p = b.auto_precision(info) if precision == "auto" else precision
                if not b.has(info, "attributes", p):
                    raise BackendUnavailable(f"no {p} graphs for it in this model")
                ed = cls(info, b, p, "", auto_strength, implied, edit_filter)
                ed._probe()
            except Exception as e:  # not installed, no device, or fails on this model: try the next one
                skipped.append(f"{cand}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                continue
            ed.selection = f"{b.name} (auto: fastest available here), {p}"
            ed.skipped = skipped
            return ed
        raise BackendUnavailable("no backend can run this model here: " + "; ".join(skipped))

    @staticmethod
    def _make(name, threads, cache):
        cls = backend_class(name)
        ok, why = cls.available()
        if not ok:
            raise BackendUnavailable(f"backend {name} is not available: {why}")
        return cls(threads=threads, cache=cache)

    def _probe(self):
        """Load the smallest graph and run one row: a backend that installs but cannot run fails here."""
        x = np.zeros((1, 3, self.size, self.size), np.float32)
        self._graph("attributes").run({"image": x})

    def _graph(self, name):
        g = self._graphs.get(name)
        if g is None:
            with self._lock:  # graphs load on first use (a cold `faceedit attrs` never loads the decoder)
                g = self._graphs.get(name)
                if g is None:
                    g = self._graphs[name] = self.backend.load(self.model, name, self.precision)
        return g

    def preload(self) -> None:
        """Load the graphs an edit runs now rather than at the first edit (callers overlap it with reading
        and detecting photos: the compile releases the GIL)."""
        for name in (("editor",) if self.fused else ("encoder", "decoder")) + ("attributes",):
            self._graph(name)

    def describe(self) -> str:
        return (f"{self.backend.describe()}, {self.precision}, {'fused editor graph' if self.fused else 'encoder+decoder graphs'}"
                + (", auto strength" if self.auto_strength else "") + (", implied attributes" if self.implied else "")
                + (", edit filter" if self.edit_filter else ""))

    # ---- attribute vectors -------------------------------------------------------------------------
    def request(self, changes) -> EditRequest:
        """{"young": 1, "smiling": 0.3} (or an EditRequest) -> the EditRequest every edit method takes: names
        matched and values checked once. Unknown names and values outside -1..2 raise EngineError."""
        return EditRequest.resolve(changes, self.attribute_names)

    def change_vectors(self, changes) -> tuple[np.ndarray, np.ndarray]:
        """(target [A], mask [A]) of request(changes)."""
        r = self.request(changes)
        return r.target, r.mask

    # ---- the model, on tensors -----------------------------------------------------------------------
    def run_edit(self, x: np.ndarray, target: np.ndarray, mask: np.ndarray):
        """x [N,3,S,S], target/mask [N,A] user values -> (edited, reconstruction, probabilities), in chunks of
        MAX_BATCH. With auto strength, rows whose residual result the attribute head does not read as asked
        are rendered again, harder (faceedit.core.strength); each row's result depends on that row alone."""
        return self.run_edit_with_strength(x, target, mask)[:3]

    def run_edit_with_strength(self, x, target, mask):
        """run_edit, plus the multipliers [N, A] auto strength ended at."""
        if len(x) > MAX_BATCH:
            parts = [self.run_edit_with_strength(x[i:i + MAX_BATCH], target[i:i + MAX_BATCH], mask[i:i + MAX_BATCH])
                     for i in range(0, len(x), MAX_BATCH)]
            return tuple(np.concatenate(p) for p in zip(*parts))
        if not (self.auto_strength and pushable(target, mask, self._tops).any()):
            return (*self._render(x, target, mask), np.ones(target.shape, np.float32))
        out = []

        def render(rows, mult):
            edited, recon, probs = self._render(x[rows], target[rows], mask[rows], mult)
            if not out:  # the first call renders every row
                out.extend((edited, recon, probs))
            else:
                out[0][rows] = edited
            return self.residual(x[rows], edited, recon, mask[rows])
        mult = auto_multipliers(render, self.run_attributes, target, mask, self._tops)
        return (*out, mult)

    def _render(self, x, target, mask, multipliers=None):
        """One pass of the model: user values -> decoder inputs at gain x multiplier (plus the implied
        attributes, at plain 0/1), edited and reconstructed."""
        target, mask = apply_implied(self._implied, self.decoder_values(target, multipliers), mask, target, mask)
        if self.fused:
            return tuple(self._graph("editor").run({"image": x, "target": target, "mask": mask}))
        # no fused graph at this precision (int8 has none): the same maths from the three graphs
        mu = self._graph("encoder").run({"image": x})[0]
        probs = self._graph("attributes").run({"image": x})[0]
        source = (probs > 0.5).astype(np.float32)
        y = mask * target + (1 - mask) * source
        both = self._graph("decoder").run({"z": np.concatenate([mu, mu]), "attributes": np.concatenate([y, source])})[0]
        n = len(x)
        return both[:n], both[n:], probs

    def draw_latents(self, n: int, seed: int | None = None) -> np.ndarray:
        """n latents where real faces sit (the export's fitted Gaussian; N(0, I) for a model without one)."""
        eps = np.random.default_rng(seed).standard_normal((n, int(np.prod(self.model.z_shape))))
        if self.model.latent_prior:
            if self._prior is None:
                with np.load(self.model.path / self.model.latent_prior, allow_pickle=False) as f:
                    self._prior = (f["mean"].astype(np.float64), f["factor"].astype(np.float64))
            mean, factor = self._prior
            eps = mean + eps @ factor.T
        return eps.reshape(n, *self.model.z_shape).astype(np.float32)

    def decoder_values(self, values: np.ndarray, multipliers=None) -> np.ndarray:
        """User values [..., A] -> the decoder's attribute inputs, with this model's edit gain for each
        attribute (attributes.decoder_value), times auto strength's multipliers [..., A] when given."""
        gains = self._gains if multipliers is None else self._gains * np.asarray(multipliers, np.float32)
        return np.asarray(decoder_value(values, gains), np.float32)

    def run_attributes(self, x: np.ndarray) -> np.ndarray:
        g = self._graph("attributes")
        return np.concatenate([g.run({"image": x[i:i + MAX_BATCH]})[0] for i in range(0, len(x), MAX_BATCH)])

    def run_decoder(self, z: np.ndarray, attrs: np.ndarray) -> np.ndarray:
        g = self._graph("decoder")
        return np.concatenate([g.run({"z": z[i:i + MAX_BATCH], "attributes": attrs[i:i + MAX_BATCH]})[0]
                               for i in range(0, len(z), MAX_BATCH)])

    def residual(self, x: np.ndarray, edited: np.ndarray, reconstruction: np.ndarray, mask: np.ndarray,
                 coefs: list | None = None) -> np.ndarray:
        """The residual edit at model size, [N,3,S,S]: x + the change (edited - reconstruction), the change
        filtered by x where the manifest asks for it for the attributes set (mask [N,A]; engine.edit_filter;
        coefs: the filter's row_coefficients, when already computed)."""
        delta = edited - reconstruction
        if self._filter is not None:
            delta = self._filter.filter_rows(x, delta, mask, coefs)
        return np.clip(x + delta, -1.0, 1.0)

    def finish(self, crop: np.ndarray, edited: np.ndarray, reconstruction: np.ndarray, raw: bool,
               mask: np.ndarray, coef=None) -> np.ndarray:
        """One crop's result at its own size: crop + upsample(edited - reconstruction), or the raw output.
        Where the edit filter applies to the attributes set (mask [A]), the change is rebuilt at the crop's size
        with the crop itself as the guide (coef: this row's (filter, coefficients), when already computed)."""
        h, w = crop.shape[:2]
        if raw:
            return tensors.resize(tensors.to_uint8(edited), w, h)
        f = self._filter.for_row(mask) if self._filter is not None else None
        if f is None:  # the row's attributes are not filtered: no guide to prepare
            return tensors.apply_delta(crop, tensors.delta_at(edited - reconstruction, w, h))
        if coef is None:
            coef = (f, f.coefficients(tensors.to_tensor([crop], self.size), (edited - reconstruction)[None])[:, 0])
        return tensors.apply_delta(crop, coef[0].apply(coef[1], crop) * np.float32(127.5))

    def edit_crops(self, crops: list[np.ndarray], target: np.ndarray, mask: np.ndarray, raw: bool = False) -> EditOutput:
        """The batch workhorse: crops (HxWx3 uint8), per-row target/mask [N,A] (or one row for all)."""
        n = len(crops)
        x = tensors.to_tensor(crops, self.size)
        target = np.ascontiguousarray(np.broadcast_to(target, (n, len(self.attribute_names))), np.float32)
        mask = np.ascontiguousarray(np.broadcast_to(mask, target.shape), np.float32)
        edited, recon, probs, mult = self.run_edit_with_strength(x, target, mask)
        # the filter's coefficients once per row, for the model-size residual and the crop-size result alike
        coefs = (self._filter.row_coefficients(x, edited - recon, mask) if self._filter is not None and not raw
                 else [None] * n)
        outs = [self.finish(c, edited[i], recon[i], raw, mask[i], coefs[i]) for i, c in enumerate(crops)]
        # what the attribute head sees of the result: the model-size residual (or raw) image
        small = edited if raw else self.residual(x, edited, recon, mask, coefs)
        return EditOutput(outs, probs, small, mult, implied_changes(self._implied, target, mask, probs))

    # ---- public API on images ----------------------------------------------------------------------
    def attributes(self, images):
        """One image -> {name: probability}; a batch -> float32 array [N, A] (columns: attribute_names)."""
        crops, form = tensors.split_batch(images)
        probs = self.run_attributes(tensors.to_tensor(crops, self.size))
        if form == "single":
            return {n: float(p) for n, p in zip(self.attribute_names, probs[0])}
        return probs

    def edit(self, images, changes: dict, raw: bool = False):
        """Set attributes ({"young": 1, "smiling": 0.3}); others keep the face's own. Residual by default
        (the photo's detail kept), raw=True for the decoder's output resized to each crop's size."""
        crops, form = tensors.split_batch(images)
        target, mask = self.change_vectors(changes)
        return tensors.join_batch(self.edit_crops(crops, target, mask, raw).images, form)

    def reconstruct(self, images):
        """The decoder's reconstruction (the face's own attributes), resized to each crop's size."""
        crops, form = tensors.split_batch(images)
        a = len(self.attribute_names)
        out = self.edit_crops(crops, np.zeros(a, np.float32), np.zeros(a, np.float32), raw=True)
        return tensors.join_batch(out.images, form)

    def sample(self, n: int, attributes: dict | None = None, seed: int | None = None) -> np.ndarray:
        """n new faces [n, S, S, 3] uint8 with the given attributes (others at the model's defaults)."""
        if n < 1:
            raise EngineError(f"count must be at least 1, got {n}")
        target, mask = self.change_vectors(attributes)
        attrs = np.where(mask > 0, self.decoder_values(target), np.asarray(self.model.defaults, np.float32)).astype(np.float32)
        attrs = apply_implied(self._implied, attrs[None], mask[None], target[None], mask[None])[0][0]  # a mustache: on a man
        z = self.draw_latents(n, seed)
        images = self.run_decoder(z, np.ascontiguousarray(np.broadcast_to(attrs, (n, len(attrs)))))
        return np.stack([tensors.to_uint8(t) for t in images])
