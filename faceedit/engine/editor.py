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
edits only the attributes named. Those switches say what this Editor can do; one edit's EditRequest
(Editor.request(changes, auto_strength=False, implied=False, filtered=False, raw=True)) can turn a step off for
that edit alone.

Every edit of crops goes one way, Editor.edit_crops(crops, request) -> CropEdits: attributes -> target ->
strength -> decode -> residual -> filter -> result. edit, reconstruct and sample are thin wrappers over it
(sample: its target and decode steps)."""
from __future__ import annotations

import threading

import numpy as np

from faceedit.core.attributes import decoder_value
from faceedit.engine import stages, tensors
from faceedit.engine.edit_filter import EditFilter
from faceedit.engine.backends import AUTO_ORDER, backend_class, canonical_name
from faceedit.engine.errors import BackendUnavailable, EngineError
from faceedit.engine.request import EditRequest
from faceedit.engine.results import CropEdits
from faceedit.core.model_dir import ModelInfo
from faceedit.core.implied import apply_implied, implied_changes
from faceedit.core.strength import auto_multipliers, pushable

MAX_BATCH = 32             # rows per backend call: bounds memory; the batcher never sends more


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
        self._requests: dict = {}  # Editor.request's answers for plain dicts, by their items and options
        self._lock = threading.Lock()
        self._prior = None
        self.fused = backend.has(model, "editor", precision)
        self._gains = np.asarray(model.edit_gains, np.float32)  # the target step runs on every edit
        self._tops = np.asarray(model.edit_tops or [1.0] * len(self.attribute_names), np.float32)
        self.auto_strength = auto_strength and bool((self._tops > 1).any())
        self._implied = model.implied if implied else None
        self.implied = self._implied is not None
        try:
            self._filter = EditFilter.from_manifest(model.edit_filter, self.attribute_names) if edit_filter else None
        except (KeyError, TypeError, ValueError) as e:
            raise EngineError(f"{model.path}/manifest.json: bad \"edit_filter\" entry: {e}") from None
        self.edit_filter = self._filter is not None
        self.edit_mask = bool(getattr(model, "edit_mask", False))  # the graphs also draw the edit's mask

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

    @property
    def attribute_filters(self) -> list:
        """Per attribute: the GuidedFilter an edit of it alone gets (engine.edit_filter), else None."""
        return list(self._filter.filters) if self._filter is not None else [None] * len(self.attribute_names)

    def describe(self) -> str:
        return (f"{self.backend.describe()}, {self.precision}, {'fused editor graph' if self.fused else 'encoder+decoder graphs'}"
                + (", auto strength" if self.auto_strength else "") + (", implied attributes" if self.implied else "")
                + (", edit filter" if self.edit_filter else "") + (", edit mask" if self.edit_mask else ""))

    @staticmethod
    def stage_times():
        """`with editor.stage_times() as st:` -> engine.stages.StageTimes of this thread's edit_crops calls in
        the block: seconds per step (conversion, target, graph, auto strength, residual, edit filter, copy)."""
        return stages.collecting()

    # ---- requests ------------------------------------------------------------------------------------
    def request(self, changes, *, raw: bool = False, auto_strength: bool = True, implied: bool = True,
                filtered: bool = True) -> EditRequest:
        """{"young": 1, "smiling": 0.3} (or an EditRequest) -> the EditRequest every edit takes: names matched
        and values checked once, with the edit's options (each can only turn a step off for this request; an
        EditRequest passes through, narrowed by the options given). Unknown names and values outside -1..2
        raise EngineError."""
        key = None
        if type(changes) is dict and len(changes) <= 8:  # the same dict again (a batcher's callers): resolved once
            try:
                key = (tuple(changes.items()), raw, auto_strength, implied, filtered)
                hit = self._requests.get(key)
            except TypeError:  # unhashable values: resolved (and refused) as they come
                key = hit = None
            if hit is not None:
                return hit
        r = EditRequest.resolve(changes, self.attribute_names, raw=raw, auto_strength=auto_strength,
                                implied=implied, filtered=filtered)
        if key is not None:
            if len(self._requests) >= 256:
                self._requests.clear()
            self._requests[key] = r  # an EditRequest is immutable: every caller may share it
        return r

    # ---- the edit of crops: one path, step by step ------------------------------------------------------
    def edit_crops(self, crops: list, request) -> CropEdits:
        """Edit crops (HxWx3 uint8, any size; resized to the model's). request: one EditRequest (or dict) for
        every crop, or a list with one per crop, whose values and options may differ row to row. Rows that
        share options run through the steps together, in chunks of MAX_BATCH; each row's result depends on
        that row alone, so batching never changes a face's pixels."""
        crops = list(crops)
        if not crops:
            return CropEdits.empty(len(self.attribute_names), self.size)
        with stages.call():
            return self._edit_crops(crops, self._per_row(request, len(crops)))

    def _edit_crops(self, crops: list, requests: list) -> CropEdits:
        with stages.stage("conversion"):
            x = tensors.to_tensor(crops, self.size)
        parts, order = [], []
        for rows in self._option_groups(requests):
            opts = requests[rows[0]]  # every row of the group has these options
            target = np.stack([requests[i].target for i in rows])
            mask = np.stack([requests[i].mask for i in rows])
            for c in range(0, len(rows), MAX_BATCH):  # bounds memory; the backend never sees more rows
                chunk = rows[c:c + MAX_BATCH]
                # one group of rows in order (a photo's faces): slices, not copies
                picked = slice(chunk[0], chunk[-1] + 1) if chunk[-1] - chunk[0] == len(chunk) - 1 else chunk
                parts.append(self._edit_rows([crops[i] for i in chunk], x[picked], target[c:c + MAX_BATCH],
                                             mask[c:c + MAX_BATCH], opts))
            order.extend(rows)
        out = CropEdits.concat(parts)
        return out if order == sorted(order) else out.take(np.argsort(order))  # back in the crops' order

    def _edit_rows(self, crops, x, target, mask, opts: EditRequest) -> CropEdits:
        """Up to MAX_BATCH rows with the same options, through the steps: attributes -> target -> strength ->
        decode (in _render and _strength) -> residual -> filter -> result."""
        implied = self._implied if opts.implied else None  # a request can turn a step off, never on
        filt = self._filter if opts.filtered else None
        # attributes, target, strength, decode: rendered once, or again harder where the edit did not land
        edited, recon, before, mult, gate, known = self._strength(x, target, mask, implied, filt, opts.auto_strength)
        with stages.stage("residual"):
            delta = edited - recon  # residual: what the edit changed, at model size
        # filter: its coefficients once per row, for the model-size result and the crop-size one alike (auto
        # strength computed them already for the rows' last rendering)
        coefs = known if known is not None and not opts.raw else \
            self._filter_coefficients(x, delta, mask, None if opts.raw else filt)
        # result: at model size (what the attribute head judges) and at each crop's own size (what the user gets);
        # a model's edit mask gates the (filtered) change: the crop itself wherever the mask is 0
        result = edited if opts.raw else self._result_at_model_size(x, delta, mask, filt, coefs, gate)
        with stages.stage("copy"):
            images = self._results_at_crop_size(crops, edited, delta, coefs, opts.raw, gate)
            return CropEdits(images, before, edited, recon, result, mult,
                             implied_changes(implied, target, mask, before), edit_mask=None if gate is None else gate[:, 0])

    def _results_at_crop_size(self, crops, edited, delta, coefs, raw: bool, gate) -> list:
        """Every row's result at its crop's size (_result_at_crop_size); rows whose crop is the model's size
        and whose change is neither filtered nor gated (the batcher's usual rows) in one array operation."""
        s = self.size
        plain = [] if raw or gate is not None else \
            [i for i, c in enumerate(crops) if coefs[i] is None and c.shape[0] == s and c.shape[1] == s]
        images = [None] * len(crops)
        if len(plain) > 1:  # the same arithmetic as tensors.apply_delta(crop, tensors.delta_at(...)), all at once
            d = delta[plain].transpose(0, 2, 3, 1) * np.float32(127.5)
            d += np.stack([crops[i] for i in plain])
            d += np.float32(0.5)
            batch = np.clip(d, 0, 255, out=d).astype(np.uint8)
            for k, i in enumerate(plain):
                images[i] = batch[k]
        for i, c in enumerate(crops):
            if images[i] is None:
                images[i] = self._result_at_crop_size(c, edited[i], delta[i], coefs[i], raw,
                                                      None if gate is None else gate[i, 0])
        return images

    def _per_row(self, request, n: int) -> list[EditRequest]:
        """One EditRequest per crop (resolved here where given as dicts)."""
        if request is None or isinstance(request, (dict, EditRequest)):
            return [self.request(request)] * n
        names = tuple(self.attribute_names)
        # rows resolved by their callers (a batcher's) pass as they are
        rows = [r if type(r) is EditRequest and r.names == names else self.request(r) for r in request]
        if len(rows) != n:
            raise EngineError(f"{len(rows)} edit requests for {n} crops: give one for all, or one per crop")
        return rows

    @staticmethod
    def _option_groups(requests: list) -> list[list[int]]:
        """Row indices grouped by options (one group when every row shares them, as a photo's faces do)."""
        groups: dict = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.options, []).append(i)
        return list(groups.values())

    def _targets(self, values, mask, implied, multipliers=None):
        """target step: user values [N, A] -> the decoder's attribute inputs at this model's edit gain (times
        auto strength's multipliers), plus what the implied rules set (at plain 0/1; they count as set)."""
        gains = self._gains if multipliers is None else self._gains * np.asarray(multipliers, np.float32)
        return apply_implied(implied, np.asarray(decoder_value(values, gains), np.float32), mask, values, mask)

    def _render(self, x, target, mask, implied, multipliers=None):
        """One pass of the model over rows x: -> (edited, reconstruction, before: the input's attributes, the
        edited pass's edit mask [N,1,S,S] or None for a model without one)."""
        with stages.stage("target"):
            values, mask = self._targets(target, mask, implied, multipliers)
        if self.fused:  # attributes, the face's own values and both decodes in one graph call
            with stages.stage("graph"):
                out = self._graph("editor").run({"image": x, "target": values, "mask": mask})
            return out[0], out[1], out[2], (out[3] if self.edit_mask else None)
        # no fused graph at this precision (int8 has none): the same maths from the three graphs
        with stages.stage("graph"):
            mu = self._graph("encoder").run({"image": x})[0]
            before = self._graph("attributes").run({"image": x})[0]
            source = (before > 0.5).astype(np.float32)
            y = mask * values + (1 - mask) * source
            both = self._graph("decoder").run({"z": np.concatenate([mu, mu]), "attributes": np.concatenate([y, source])})
        n = len(x)
        return both[0][:n], both[0][n:], before, (both[1][:n] if self.edit_mask else None)

    def _strength(self, x, target, mask, implied, filt, auto: bool):
        """strength + decode: every row rendered at its gain; with auto strength (the model's and the
        request's), rows whose result the attribute head does not read as asked are rendered again, harder
        (faceedit.core.strength), judged on the residual the user would get. -> (edited, reconstruction,
        before, multipliers [N, A], edit mask [N,1,S,S] or None, the filter coefficients of each row's last
        rendering (as _filter_coefficients gives them) or None where they were not computed here)."""
        if not (auto and self.auto_strength and pushable(target, mask, self._tops).any()):
            edited, recon, before, gate = self._render(x, target, mask, implied)
            return edited, recon, before, np.ones(target.shape, np.float32), gate, None
        out, coefs = [], [None] * len(x)

        def render(rows, mult):
            with stages.stage("auto strength", absorb=bool(out)):  # a second rendering is auto strength's cost
                edited, recon, before, gate = self._render(x[rows], target[rows], mask[rows], implied, mult)
                if not out:  # the first call renders every row
                    out.extend((edited, recon, before, gate))
                else:
                    out[0][rows] = edited
                    if gate is not None:  # the mask of the rendering kept
                        out[3][rows] = gate
                with stages.stage("residual"):
                    delta = edited - recon
                found = self._filter_coefficients(x[rows], delta, mask[rows], filt)
                for j, i in enumerate(rows):  # kept for the result: the same rows' coefficients again otherwise
                    coefs[i] = found[j]
                return self._result_at_model_size(x[rows], delta, mask[rows], filt, found, gate)
        with stages.stage("auto strength"):
            mult = auto_multipliers(render, self.run_attributes, target, mask, self._tops)
        return out[0], out[1], out[2], mult, out[3], coefs

    @staticmethod
    def _filter_coefficients(x, delta, mask, filt) -> list:
        """filter step: per row, (its GuidedFilter, coefficients) where the attributes set are filtered, else
        None (engine.edit_filter)."""
        if filt is None:
            return [None] * len(delta)
        with stages.stage("edit filter"):
            return filt.row_coefficients(x, delta, mask)

    @staticmethod
    def _result_at_model_size(x, delta, mask, filt, coefs=None, gate=None) -> np.ndarray:
        """The residual edit at model size [N,3,S,S]: x + the change, the change filtered by x where the filter
        applies to the attributes set (coefs: _filter_coefficients' answer, when already computed), then gated
        by the model's edit mask where it has one (gate [N,1,S,S]; after the filter, whose smoothing would
        otherwise carry the change past the mask: where the mask is 0 the result is x)."""
        if filt is not None:
            with stages.stage("edit filter"):
                delta = filt.filter_rows(x, delta, mask, coefs)
        with stages.stage("residual"):
            if gate is not None:
                delta = gate * delta
            return np.clip(x + delta, -1.0, 1.0)

    @staticmethod
    def _result_at_crop_size(crop, edited, delta, coef, raw: bool, gate=None) -> np.ndarray:
        """One crop's result at its own size: crop + upsample(delta), or the raw output resized (a raw edit is
        gated when pasted: PhotoEditor.finish_crop). Where the row is filtered (coef), the change is rebuilt at
        the crop's size with the crop itself as the guide. gate: the edit mask [S,S], upsampled and applied
        after the filter."""
        h, w = crop.shape[:2]
        if raw:
            return tensors.resize(tensors.to_uint8(edited), w, h)
        if coef is None:  # the row's attributes are not filtered: the change, upsampled
            change = tensors.delta_at(delta, w, h)
        else:
            f, c = coef
            change = f.apply(c, crop) * np.float32(127.5)
        if gate is not None:
            change = change * tensors.mask_at(gate, w, h)[:, :, None]
        return tensors.apply_delta(crop, change)

    # ---- the model, on tensors (the bench, sampling and the attribute reads) ---------------------------
    @property
    def prior(self):
        """The model directory's latent prior (engine.prior.LatentPrior), read and its sha256 checked on first
        use; N(0, I) for a model without one."""
        if self._prior is None:
            from faceedit.engine.prior import load_for
            with self._lock:
                if self._prior is None:
                    self._prior = load_for(self.model)
        return self._prior

    def use_prior(self, prior) -> None:
        """Draw from this engine.prior.LatentPrior instead of the model directory's (a fit measuring what it is
        about to install; an evaluation of a candidate prior file)."""
        self._prior = prior

    def draw_latents(self, n: int, seed: int | None = None, conditions: np.ndarray | None = None,
                     temperature: float | None = None) -> np.ndarray:
        """n latents [n, *z_shape] where real faces sit (the model's latent prior, engine.prior; N(0, I) for a
        model without one). conditions [n, A]: the attributes each row's decoder gets (a conditional prior
        draws latents of faces with them; others ignore them); None: the model's defaults. temperature:
        None for the prior's own."""
        if conditions is None:
            conditions = np.broadcast_to(np.asarray(self.model.defaults, np.float32), (n, len(self.attribute_names)))
        z = self.prior.draw(n, seed, np.asarray(conditions, np.float32) > 0.5, temperature)
        return z.reshape(n, *self.model.z_shape).astype(np.float32)

    def run_attributes(self, x: np.ndarray) -> np.ndarray:
        g = self._graph("attributes")
        return np.concatenate([g.run({"image": x[i:i + MAX_BATCH]})[0] for i in range(0, len(x), MAX_BATCH)])

    def run_encoder(self, x: np.ndarray) -> np.ndarray:
        """x [N,3,S,S] -> the latent means [N, *z_shape] (the encoder graph alone: parity checks, latent tools)."""
        g = self._graph("encoder")
        return np.concatenate([g.run({"image": x[i:i + MAX_BATCH]})[0] for i in range(0, len(x), MAX_BATCH)])

    def run_decoder(self, z: np.ndarray, attrs: np.ndarray) -> np.ndarray:
        g = self._graph("decoder")
        return np.concatenate([g.run({"z": z[i:i + MAX_BATCH], "attributes": attrs[i:i + MAX_BATCH]})[0]
                               for i in range(0, len(z), MAX_BATCH)])

    # ---- public API on images ----------------------------------------------------------------------
    def attributes(self, images):
        """One image -> {name: probability}; a batch -> float32 array [N, A] (columns: attribute_names)."""
        crops, form = tensors.split_batch(images)
        probs = self.run_attributes(tensors.to_tensor(crops, self.size))
        if form == "single":
            return {n: float(p) for n, p in zip(self.attribute_names, probs[0])}
        return probs

    def edit(self, images, changes, raw: bool = False):
        """Set attributes ({"young": 1, "smiling": 0.3}, or an EditRequest with its options); others keep the
        face's own. Residual by default (the photo's detail kept), raw=True for the decoder's output resized to
        each crop's size."""
        crops, form = tensors.split_batch(images)
        return tensors.join_batch(self.edit_crops(crops, self.request(changes, raw=raw)).images, form)

    def reconstruct(self, images):
        """The decoder's reconstruction (the face's own attributes), resized to each crop's size."""
        crops, form = tensors.split_batch(images)
        return tensors.join_batch(self.edit_crops(crops, self.request({}, raw=True)).images, form)

    def sample(self, n: int, attributes: dict | None = None, seed: int | None = None,
               temperature: float | None = None) -> np.ndarray:
        """n new faces [n, S, S, 3] uint8 with the given attributes (others at the model's defaults), drawn from
        the model's latent prior at its temperature (or this one). The same seed gives the same faces, and
        the first k of n are the k faces sample(k, ...) gives."""
        if n < 1:
            raise EngineError(f"count must be at least 1, got {n}")
        return self.sample_rows([self.request(attributes)] * n, seed, temperature)

    def sample_rows(self, requests: list, seed: int | None = None, temperature: float | None = None) -> np.ndarray:
        """One new face per request ({name: value} or EditRequest), each with its own attributes: [N, S, S, 3]
        uint8. Row i's face depends on the seed, i and its own request only."""
        rows = [self.request(r) for r in requests]
        if not rows:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        target, mask = np.stack([r.target for r in rows]), np.stack([r.mask for r in rows])
        implied = np.array([r.implied for r in rows])
        values = np.empty_like(target)
        # the same target step as an edit (gain, implied rules: a mustache on a man); unset: the defaults
        for on in (True, False):
            if (implied == on).any():
                values[implied == on], mask[implied == on] = self._targets(
                    target[implied == on], mask[implied == on], self._implied if on else None)
        attrs = np.where(mask > 0, values, np.asarray(self.model.defaults, np.float32)).astype(np.float32)
        z = self.draw_latents(len(rows), seed, attrs, temperature)
        images = self.run_decoder(z, np.ascontiguousarray(attrs))
        return np.stack([tensors.to_uint8(t) for t in images])

    def sampling(self, attributes: dict | None = None, seed: int | None = None,
                 temperature: float | None = None) -> dict:
        """How sample() draws for these attributes: the prior ({"kind", "temperature", ...}), the seed, and
        warnings for attributes asked for that the model draws badly, by the per-attribute figures the
        manifest holds for this prior (a `faceedit eval` of it, or its fit's); none without figures."""
        from faceedit.engine.prior import weak_draws
        r = self.request(attributes)
        asked = {n: float(v) for n, v, m in zip(self.attribute_names, r.target, r.mask) if m > 0}
        return {"prior": self.prior.describe(temperature), "seed": seed,
                "warnings": [w["message"] for w in weak_draws(self.model.manifest, self.prior, asked)]}
