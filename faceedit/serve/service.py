"""FaceService: everything a request needs, with no HTTP in it, so another front end (a Ray Serve deployment)
can reuse it as it is. It owns the one Editor, the face detector and the one JobBatcher every model call goes
through. CPU work (decoding, detection, alignment, pasting, encoding) runs in worker threads (a small aligned
crop's, which costs less than the thread hop, in the event loop); the event loop only awaits. Uploaded bytes
live in memory for the length of a request: never written to disk or logged.

What photos may cost at once is bounded before any pixel is decoded (admit, memory.PhotoGate): a photo's
header gives its width x height; over max_pixels it is refused (413), under min_side a side it cannot hold a
face (422); then it waits for its share of the pixels in flight and for a decode slot (503 if it cannot get
either within decode_wait_s)."""
from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import io
import threading
import time
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
from starlette.concurrency import run_in_threadpool

from faceedit.engine.request import VALUE_RANGE, parse_changes
from faceedit.engine.errors import DecompressionBomb, EngineError, ImageError
from faceedit.engine.imageio import Photo, encode, image_size, read_photo_bytes
from faceedit.engine.job_batcher import JobBatcher
from faceedit.engine.photo import FaceJob, PhotoEditor, parse_face_choice
from faceedit.engine.results import CropEdits
from faceedit.serve.memory import PhotoGate

OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
MAX_SAMPLES = 64
MAX_PIXELS = 40_000_000   # a photo's most pixels (40 MP: ~120 MB as RGB, ~400 MB at the peak of its request)
MIN_SIDE = 16             # a photo's least width and height: smaller cannot hold a face worth editing
INLINE_PIXELS = 256 * 256  # an aligned crop this small is decoded and encoded in the event loop, not a thread
PNG_LEVEL = 1             # zlib level of PNG answers: 3.4x faster to write than Pillow's level 6, 6.5% larger
_PIXELS: ContextVar[int | None] = ContextVar("faceedit_photo_pixels", default=None)


class RequestTimeout(Exception):
    """The model did not answer within the request's time limit (HTTP 504)."""


class PhotoTooSmall(ImageError):
    """A photo with a side under min_side pixels: nothing there can be a face (HTTP 422)."""


@dataclass
class ServiceConfig:
    model: str | None = None
    backend: str = "auto"
    precision: str = "auto"
    max_batch: int = 16
    max_delay_ms: float = 2.0
    max_queue: int = 256
    max_pixels: int = MAX_PIXELS
    min_side: int = MIN_SIDE
    pixels_in_flight: int = 0     # most pixels of photos held by requests at once; 0: 2 x max_pixels
    decoders: int = 0             # photos decoded (detected, aligned) at once; 0: one per core
    decode_wait_s: float = 5.0    # how long a photo may wait for those before 503
    timeout_s: float = 30.0
    detector_model: str | None = None
    face_cache: int = 128   # photos whose detected faces are remembered (by sha256 of the bytes), not the photos
    threads: int = 0        # backend threads; 0: every core this process may use (a Ray replica: its CPUs)


def output_format(name: str) -> str:
    fmt = OUTPUT_FORMATS.get(str(name).lower())
    if fmt is None:
        raise EngineError(f"cannot write '{name}' images: use one of png, jpeg, webp")
    return fmt


def encode_image(rgb: np.ndarray, alpha, fmt: str, jpeg_sampling: int = -1) -> bytes:
    """An answer's image bytes: PNG at PNG_LEVEL (on loadgen's 96-192 px crops, 3.6 ms a crop against 12.1 at
    Pillow's default level 6, for 6.5% more bytes; the files `faceedit run` writes keep level 6), the rest as
    imageio.encode writes them."""
    if fmt == "PNG":
        from PIL import Image
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        if alpha is not None:
            im.putalpha(Image.fromarray(alpha, "L"))
        buf = io.BytesIO()
        im.save(buf, format="PNG", compress_level=PNG_LEVEL)
        return buf.getvalue()
    buf = io.BytesIO()
    encode(rgb, alpha, fmt, buf, jpeg_sampling)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _holds_photo(method):
    """An operation on an uploaded photo: admitted by its header (FaceService.admit), then holding its pixels
    in the PhotoGate for as long as the operation runs (decode to encoded answer)."""
    @functools.wraps(method)
    async def run(self, data: bytes, *args, **kwargs):
        pixels = self.admit(data)
        token = _PIXELS.set(pixels)
        try:
            async with self.gate.photo(pixels):
                return await method(self, data, *args, **kwargs)
        finally:
            _PIXELS.reset(token)
    return run


class FaceService:
    def __init__(self, config: ServiceConfig, on_batch=None):
        from faceedit.engine import Editor
        self.config = config
        self.editor = Editor.load(config.model, backend=config.backend, precision=config.precision,
                                  threads=config.threads)
        self.photo_editor = PhotoEditor(self.editor, config.detector_model)
        self.batcher = JobBatcher(self.editor, max_batch=config.max_batch, max_delay_ms=config.max_delay_ms,
                                  max_queue=config.max_queue, on_batch=on_batch)
        self.names = list(self.editor.attribute_names)
        self._faces_cache: OrderedDict = OrderedDict()
        self._cache_lock = threading.Lock()
        self.gate = PhotoGate(max(config.pixels_in_flight or 2 * config.max_pixels, config.max_pixels),
                              config.decoders, config.decode_wait_s)
        self.ready = False

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def probe(self, timeout_s: float | None = 30.0) -> float:
        """One attribute read through the batcher: the model answers. Returns its time in ms."""
        t = time.perf_counter()
        crop = np.zeros((self.editor.size, self.editor.size, 3), np.uint8)
        await self._wait([self.batcher.submit_attributes(crop)], timeout_s + self.batcher.max_delay if timeout_s else None)
        self.ready = True
        return (time.perf_counter() - t) * 1000

    async def warm_up(self):
        """Load every graph a request may use now, not on the first user's request (the face detector, one edit,
        one sample): a cold detector took 8.6 s on the first photo on a busy 2-core machine."""
        crop = np.full((self.editor.size, self.editor.size, 3), 128, np.uint8)
        await run_in_threadpool(self.photo_editor.faces, np.full((256, 256, 3), 128, np.uint8))
        # one at a time (a queue may hold one), with no request time limit: loading is not a request
        await self._wait([self.batcher.submit_report(crop, self.editor.request({self.names[-1]: 1.0}))], None)
        await self._wait([self.batcher.submit_job(lambda: self.editor.sample(1, {}, 0))], None)

    def close(self):
        self.ready = False
        self.batcher.close(wait=True)

    def model_info(self) -> dict:
        m = self.editor.model
        manifest_sha = hashlib.sha256((m.path / "manifest.json").read_bytes()).hexdigest()
        step = (m.manifest.get("checkpoint") or {}).get("step")
        return {"model_id": f"{m.path.name}" + (f"@step{step}" if step is not None else ""),
                "checksum": f"sha256:{manifest_sha}", "attributes": self.names,
                "defaults": dict(zip(self.names, m.defaults)),
                "value_range": list(VALUE_RANGE), "image_size": self.editor.size,
                "backend": self.editor.backend.name, "precision": self.editor.precision,
                "description": self.editor.describe(), "auto_strength": self.editor.auto_strength,
                "implied_rules": self.editor.implied, "edit_filter": self.editor.edit_filter,
                "tiers": dict(m.tiers),  # attribute -> stable | experimental (core.tiers); {} for an unrated model
                "batcher": {"max_batch": self.batcher.max_batch, "max_delay_ms": self.batcher.max_delay * 1000,
                            "max_queue": self.batcher.max_queue}}

    # ---- helpers -----------------------------------------------------------------------------------
    async def _wait(self, futures, timeout_s: float | None = -1):
        """Await the batcher's futures within the time limit (the request's, by default); on timeout, drop
        what is still queued."""
        timeout_s = self.config.timeout_s if timeout_s == -1 else timeout_s
        wrapped = [asyncio.wrap_future(f) for f in futures]
        try:
            return await asyncio.wait_for(asyncio.gather(*wrapped), timeout_s)
        except asyncio.TimeoutError:
            for f in futures:
                f.cancel()
            raise RequestTimeout(f"the model did not answer within {self.config.timeout_s:g} s: retry later") from None

    def _faces(self, data: bytes, rgb: np.ndarray):
        key = hashlib.sha256(data).digest()
        with self._cache_lock:
            hit = self._faces_cache.get(key)
            if hit is not None:
                self._faces_cache.move_to_end(key)
                return hit
        faces = self.photo_editor.faces(rgb)
        with self._cache_lock:
            self._faces_cache[key] = faces
            while len(self._faces_cache) > self.config.face_cache:
                self._faces_cache.popitem(last=False)
        return faces

    def admit(self, data: bytes) -> int:
        """The photo's pixels, from its header alone: DecompressionBomb over max_pixels, PhotoTooSmall under
        min_side a side, ImageError when the bytes are not an image. Nothing is decoded."""
        w, h, _ = image_size(data)
        cap, side = self.config.max_pixels, self.config.min_side
        if w * h > cap:
            raise DecompressionBomb(f"the photo is {w}x{h} ({w * h / 1e6:.1f} MP), over this server's {cap / 1e6:g} MP "
                                    "limit (a decompression bomb?)", field="max_pixels")
        if min(w, h) < side:
            raise PhotoTooSmall(f"the photo is {w}x{h}: too small to hold a face (at least {side}x{side} pixels)",
                                field="body")
        return w * h

    async def _in_thread_unless_small(self, small: bool, fn, *args):
        return fn(*args) if small else await run_in_threadpool(fn, *args)

    async def _prepared(self, data: bytes, face, aligned: bool, masks: bool = False):
        """_prepare in one of the gate's decode slots: in a worker thread, or in the event loop for a small
        aligned crop (no detection: its decode takes less than a thread hop)."""
        pixels = _PIXELS.get()
        async with self.gate.decode():
            return await self._in_thread_unless_small(aligned and pixels is not None and pixels <= INLINE_PIXELS,
                                                      self._prepare, data, face, aligned, masks)

    def _prepare(self, data: bytes, face, aligned: bool, masks: bool = False):
        """Decode, then PhotoEditor.prepare (with the cached faces): -> (photo, faces found, [FaceJob] of the
        editable faces, [FaceEdit] of every face chosen). masks: make the paste masks now (in this worker
        thread, not in the batcher's)."""
        which = parse_face_choice(face)
        photo = read_photo_bytes(data, self.config.max_pixels)
        found = None if aligned else self._faces(data, photo.rgb)
        jobs = self.photo_editor.prepare(photo, which, aligned, faces=found)
        editable = [j for j in jobs if j.editable]
        if masks:
            for j in editable:
                self.photo_editor.mask_for(j)
        return photo, 1 if aligned else len(found), editable, [j.face for j in jobs]

    # ---- the operations ----------------------------------------------------------------------------
    @_holds_photo
    async def attributes(self, data: bytes, face="all", aligned: bool = False):
        """-> (photo size, number of faces found, [FaceEdit with before])."""
        photo, n_found, jobs, faces = await self._prepared(data, face, aligned)
        probs = await self._wait([self.batcher.submit_attributes(j.crop) for j in jobs])
        for j, p in zip(jobs, probs):
            j.face.before = dict(zip(self.names, map(float, p)))
        return photo.rgb.shape[:2], n_found, faces

    @_holds_photo
    async def edit(self, data: bytes, request, face="largest", aligned: bool = False, fmt: str = "png"):
        """-> (encoded photo bytes, format, photo size, number of faces found, [FaceEdit]). request: an
        EditRequest (Editor.request, with its options: raw, auto_strength, implied, filtered) or a dict.
        PhotoEditor's steps (so the same pixels as `faceedit run`), with the model calls through the batcher."""
        fmt = output_format(fmt)
        request = self.editor.request(request)  # a bad name or value: refused before any decoding
        photo, n_found, jobs, faces = await self._prepared(data, face, aligned, True)
        pe = self.photo_editor
        futures = [self.batcher.submit_report(j.crop, request,
                                              post=lambda im, edit_mask=None, j=j: pe.finish_crop(j, im, request, edit_mask))
                   for j in jobs]
        # one-row answers, one per face; none when every face chosen was too small to edit
        edits = (CropEdits.concat(await self._wait(futures)) if jobs
                 else CropEdits.empty(len(self.names), self.editor.size))
        encoded = await self._in_thread_unless_small(photo.rgb.shape[0] * photo.rgb.shape[1] <= INLINE_PIXELS,
                                                     self._paste_encode, photo, jobs, edits, fmt)
        return encoded, fmt, photo.rgb.shape[:2], n_found, faces

    def _paste_encode(self, photo: Photo, jobs: list[FaceJob], edits: CropEdits, fmt) -> bytes:
        result = self.photo_editor.finish_photo(photo, jobs, edits)  # fills each job's FaceEdit too
        return encode_image(result.photo.rgb, result.photo.alpha, fmt, photo.jpeg_sampling)

    @_holds_photo
    async def reconstruct(self, data: bytes, face="largest", aligned: bool = False):
        """-> (faces found, [FaceEdit] with extra["crop"] and extra["reconstruction"]: PNG bytes of the aligned
        input crop and of the decoder's reconstruction (the face's own attributes), both at the crop's size)."""
        _, n_found, jobs, faces = await self._prepared(data, face, aligned)
        request = self.editor.request({}, raw=True)
        reports = await self._wait([self.batcher.submit_report(j.crop, request) for j in jobs])

        def encode_all():
            return [(encode_image(np.ascontiguousarray(j.crop), None, "PNG"), encode_image(r.images[0], None, "PNG"))
                    for j, r in zip(jobs, reports)]
        pngs = await run_in_threadpool(encode_all)
        for j, r, (crop_png, rec_png) in zip(jobs, reports, pngs):
            j.face.read(self.names, r, 0)
            j.face.extra = {"crop": crop_png, "reconstruction": rec_png}
        return n_found, faces

    async def samples(self, attributes: dict, count: int = 8, seed: int | None = None, fmt: str = "png"):
        """-> [encoded image bytes] of count new faces with the given attributes."""
        fmt = output_format(fmt)
        if not 1 <= count <= MAX_SAMPLES:
            raise EngineError(f"count must be 1..{MAX_SAMPLES}, got {count}")
        self.editor.request(attributes)  # a bad name or value: refused here, not in the worker
        faces = (await self._wait([self.batcher.submit_job(lambda: self.editor.sample(count, attributes, seed))]))[0]
        return await run_in_threadpool(lambda: [encode_image(f, None, fmt) for f in faces])


def parse_sets(items) -> dict:
    """["smiling=0", "young=1"] -> {"smiling": 0.0, "young": 1.0} (engine.request.parse_changes: an error has
    field "set")."""
    return parse_changes(items)
