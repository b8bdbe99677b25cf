"""Reading and writing photos: every common format and mode in, 8-bit RGB (+ alpha kept) out, EXIF rotation
applied, decompression bombs refused before decoding, outputs written to a temp name and renamed."""
from __future__ import annotations

import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceedit.engine.errors import DecompressionBomb, EngineError, ImageError
from faceedit.core.files import usual_mode

DEFAULT_MAX_PIXELS = 50_000_000
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF"}
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
_pil_limit_lock = threading.Lock()


@dataclass
class Photo:
    rgb: np.ndarray               # HxWx3 uint8, upright
    alpha: np.ndarray | None      # HxW uint8 when the file had transparency
    path: Path | None = None
    source_mode: str = ""
    # a JPEG source's chroma subsampling in Pillow's codes (0 4:4:4, 1 4:2:2, 2 4:2:0), -1 for other sources:
    # a JPEG written from it keeps it (4:4:4 would spend time and bytes on colour the photo lacks)
    jpeg_sampling: int = -1


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(a * (255.0 if a.max(initial=0) <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    # 16-bit (and 32-bit 'I' mode that holds 16-bit data): keep the top 8 bits of the range actually used
    top = 65535 if a.max(initial=0) > 255 else 255
    return np.clip(a.astype(np.float32) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)


def read_photo(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode an image file. Raises ImageError (one line) for anything that is not a readable image, and
    DecompressionBomb when it has more than max_pixels pixels (checked from the header, before decoding)."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image not found: {p}")
    if p.is_dir():
        raise ImageError(f"{p} is a folder, not an image")
    return _decode(p, p, p.name, max_pixels)


def read_photo_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "the upload") -> Photo:
    """read_photo for an image held in memory (an HTTP upload): same checks, same errors, nothing on disk."""
    import io
    if not data:
        raise ImageError(f"{name} is empty, not an image")
    return _decode(io.BytesIO(data), None, name, max_pixels)


def image_size(data: bytes, name: str = "the upload") -> tuple[int, int, str]:
    """(width, height, format) of an image held in memory, from its header: no pixel is decoded, so a server
    can refuse or queue a photo by its size before committing memory to it. ImageError as read_photo_bytes."""
    import io
    from PIL import Image, UnidentifiedImageError
    if not data:
        raise ImageError(f"{name} is empty, not an image")
    try:
        with _pil_limit_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # the caller's cap, not Pillow's
            try:
                im = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = old
        with im:
            return im.size[0], im.size[1], im.format or ""
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image (or not a format Pillow can read)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name} is corrupt or truncated ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _decode(source, p: Path | None, name: str, max_pixels: int) -> Photo:
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with _pil_limit_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # our own cap below; Pillow's would refuse what the user allowed
            try:
                im = Image.open(source)
            finally:
                Image.MAX_IMAGE_PIXELS = old
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise DecompressionBomb(f"{name} is {w}x{h} ({w * h / 1e6:.1f} MP), over the {max_pixels / 1e6:g} MP "
                                        "limit (a decompression bomb?): raise the limit if you trust it",
                                        field="max_pixels")
            mode = im.mode
            sampling = _jpeg_sampling(im)
            if im.format == "JPEG" and mode == "RGB":
                rgb = _plain_jpeg(source, im)
                if rgb is not None:
                    return Photo(rgb, None, p, mode, sampling)
            im.load()
            im = ImageOps.exif_transpose(im) or im
            photo = _convert(im, p, mode)
            photo.jpeg_sampling = sampling
            return photo
    except (ImageError, EngineError):
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image (or not a format Pillow can read)") from None
    except PermissionError:
        raise ImageError(f"cannot read {p}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name} is corrupt or truncated ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _jpeg_sampling(im) -> int:
    if im.format != "JPEG":
        return -1
    from PIL import JpegImagePlugin
    return JpegImagePlugin.get_sampling(im)


# EXIF orientation -> what makes the stored pixels upright (as Pillow's ImageOps.exif_transpose does)
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
           8: lambda a: np.rot90(a, 1)}


def _plain_jpeg(source, im) -> np.ndarray | None:
    """An RGB JPEG decoded by OpenCV, upright: the same libjpeg-turbo pixels as Pillow (tests compare them),
    faster (Pillow's array export copies the image through bytes; docs/photo-path.md). None: let
    Pillow decode it (a file not ending in the JPEG end marker may be truncated, and Pillow says so)."""
    import cv2
    data = np.frombuffer(source.getvalue(), np.uint8) if hasattr(source, "getvalue") else np.fromfile(source, np.uint8)
    if data.size < 4 or data[-2] != 0xFF or data[-1] != 0xD9:
        return None
    # OpenCV >= 4.10 decodes straight to RGB (no conversion pass over the photo)
    as_rgb = getattr(cv2, "IMREAD_COLOR_RGB", None)
    rgb = cv2.imdecode(data, (cv2.IMREAD_COLOR if as_rgb is None else as_rgb) | cv2.IMREAD_IGNORE_ORIENTATION)
    if rgb is None or rgb.shape[:2] != (im.size[1], im.size[0]):
        return None
    if as_rgb is None:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB)
    turn = _ORIENT.get(im.getexif().get(0x0112, 1))
    return np.ascontiguousarray(turn(rgb)) if turn else rgb


def _convert(im, p: Path | None, mode: str) -> Photo:
    alpha = None
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGBa"):
        a = np.asarray(im.getchannel("A"))
        alpha = None if a.min() == 255 else a.copy()
        im = im.convert("RGB") if im.mode != "LA" else im.convert("L")
    if im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    a = np.asarray(im)
    if a.ndim == 2:  # greyscale, 1-bit, 16/32-bit integer, float
        a = _to_uint8(a)
        rgb = np.repeat(a[:, :, None], 3, axis=2)
    else:
        rgb = _to_uint8(a[:, :, :3])
    return Photo(np.ascontiguousarray(rgb), alpha, p, mode)


def output_format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise EngineError(f"cannot write '{suffix or Path(path).name}' files: use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


def default_output(src) -> Path:
    """me.jpg -> me.edited.jpg, or me.edited-1.jpg, -2 ... : never an existing file."""
    src = Path(src)
    suffix = src.suffix if src.suffix.lower() in FORMATS else ".png"  # e.g. a .gif input: write a PNG
    cand = src.with_name(f"{src.stem}.edited{suffix}")
    i = 1
    while cand.exists():
        cand = src.with_name(f"{src.stem}.edited-{i}{suffix}")
        i += 1
    return cand


def encode(photo_rgb: np.ndarray, alpha: np.ndarray | None, fmt: str, out, jpeg_sampling: int = -1) -> None:
    """jpeg_sampling: the source's chroma subsampling (Photo.jpeg_sampling), kept for a JPEG output; 4:4:4 when
    the source was not a JPEG (or its subsampling is unknown)."""
    if fmt == "JPEG" and _jpeg_cv2(photo_rgb, out, jpeg_sampling):
        return
    from PIL import Image
    im = Image.fromarray(photo_rgb, "RGB")
    if alpha is not None and fmt in ALPHA_FORMATS:
        im.putalpha(Image.fromarray(alpha, "L"))
    sampling = jpeg_sampling if jpeg_sampling in (0, 1, 2) else 0
    kw = {"JPEG": {"quality": 95, "subsampling": sampling}, "WEBP": {"quality": 95, "method": 4},
          "PNG": {"compress_level": 6}}.get(fmt, {})
    im.save(out, format=fmt, **kw)


def _jpeg_cv2(rgb: np.ndarray, out, jpeg_sampling: int) -> bool:
    """A JPEG at quality 95 through OpenCV's libjpeg-turbo: the same file size and decoded pixels as Pillow's
    encoder at the same settings, in about half the time (no copy into Pillow's 4-byte pixels). False where
    this OpenCV cannot set the chroma subsampling (Pillow writes it then)."""
    import cv2
    factors = {0: "IMWRITE_JPEG_SAMPLING_FACTOR_444", 1: "IMWRITE_JPEG_SAMPLING_FACTOR_422",
               2: "IMWRITE_JPEG_SAMPLING_FACTOR_420"}
    factor = getattr(cv2, factors[jpeg_sampling if jpeg_sampling in factors else 0], None)
    if factor is None or not hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR") or not hasattr(out, "write"):
        return False
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor])
    if not ok:
        return False
    out.write(buf.data)
    return True


def write_photo(path, rgb: np.ndarray, alpha: np.ndarray | None = None, source=None, jpeg_sampling: int = -1) -> Path:
    """Encode to a temp file beside the target, then rename: a reader never sees half a file, and a failed
    encode leaves nothing. With source (default naming), never replaces a file: path is
    default_output(source), and if another writer takes that name first, the next free one is used."""
    path = Path(path)
    fmt = output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    try:
        usual_mode(fd)
        with os.fdopen(fd, "wb") as f:
            encode(rgb, alpha, fmt, f, jpeg_sampling)
        if source is None:
            os.replace(tmp, path)
            return path
        while True:  # link() fails if the name exists: no race with another writer picking the same name
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                path = default_output(source)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
