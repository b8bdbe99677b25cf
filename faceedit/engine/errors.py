"""The runtime's exceptions. User-caused ones are ValueErrors with a one-line message in the API's terms, so
any caller that already handles ValueError can report them as they are; an EngineError that concerns one
option says which in `field`, by its API name, so each front end can name it its own way."""
from __future__ import annotations

from faceedit.core.manifest import ManifestError as ModelError  # missing, damaged or tampered model directory


class EngineError(ValueError):
    """Something the caller can fix: a bad argument, image, attribute or backend choice.

    field: the API name of the option it concerns ("set", "face", "aligned", "max_pixels", "detector",
    "detector_model", "precision", ...), or None. The message never spells an option as a CLI flag or an
    HTTP parameter: the CLI prints the flag (cli.reporting.one_line), the HTTP service the query field."""

    def __init__(self, *args, field: str | None = None):
        super().__init__(*args)
        self.field = field


class BackendUnavailable(EngineError):
    """The requested backend (or precision on it) is not installed or cannot run here."""


class ImageError(EngineError):
    """A file that cannot be used as an image: unreadable, corrupt, not an image, or too large."""


class DecompressionBomb(ImageError):
    """More pixels than the configured cap (a decompression bomb, or a photo bigger than allowed)."""


class NoFaceFound(EngineError):
    """Face detection found nothing in a photo."""


class Overloaded(RuntimeError):
    """The dynamic batcher's queue is full: the caller should back off and retry (HTTP 503 territory)."""


class BatcherClosed(RuntimeError):
    """submit() after the batcher was closed."""


__all__ = ["ModelError", "EngineError", "BackendUnavailable", "ImageError", "DecompressionBomb", "NoFaceFound",
           "Overloaded", "BatcherClosed"]
