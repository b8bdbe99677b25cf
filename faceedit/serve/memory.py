"""What photos may cost the server at once, and giving memory back after a burst of large ones.

PhotoGate bounds two things for every request that carries a photo, from the header's width x height (read
before any pixel is decoded):
- pixels in flight: the sum over the requests holding a photo now (from its decode to its encoded answer,
  which is how long its pixels live) stays under a budget, so a burst of large photos cannot take the
  process's memory past what the budget allows, however many arrive together;
- decodes at once: at most `decoders` requests decode (and detect, and align) at the same time, one per core
  by default: more would only share the same cores and hold more memory at once.
A request that cannot get in within wait_s gets Overloaded (HTTP 503 with Retry-After).

Large photos leave glibc's heaps holding memory after a burst: its mmap threshold grows with every large
block freed (up to 32 MB), so photo-sized buffers come from the heaps of the threads that made them, and
each heap keeps up to 64 MB free at its top, which malloc_trim cannot return for a thread's heap. So the
resident size stays near its peak (a 2-core test, 8 threads decoding 1.2-2.6k-pixel-square photos: 109 MB
idle, 494 MB after, 385 MB after malloc_trim). tune_malloc() fixes the mmap threshold at 4 MB instead: a
buffer that large (a photo over ~1.3 MP) is mapped on its own and unmapped when freed, and the heaps trim
their tops at glibc's default (the same test: 83 MB idle, 115 MB after). trim_memory() (malloc_trim(0)) hands
what the heaps still hold back; PhotoGate calls it in a worker thread, at most once a second, once the large
photos of a burst have left, after a gc.collect() (collect_and_trim: failed requests leave their photos in
reference cycles). Elsewhere than glibc both do nothing (the collection still happens)."""
from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import platform
import threading
import time
from contextlib import asynccontextmanager

from faceedit.engine.errors import Overloaded

# a photo at least this large leaves enough behind in the heaps to be worth a malloc_trim once it has gone
TRIM_PIXELS = 4_000_000
TRIM_INTERVAL_S = 1.0
MMAP_THRESHOLD = 4 * 2**20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)

_libc = None
_libc_lock = threading.Lock()


def _glibc():
    global _libc
    with _libc_lock:
        if _libc is None:
            _libc = False
            if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
                try:
                    lib = ctypes.CDLL("libc.so.6")
                    lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                    _libc = lib
                except (OSError, AttributeError):
                    pass
        return _libc or None


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (process-wide, from now on): blocks at least this large are mapped apart and
    returned when freed. True when set (glibc), else False."""
    lib = _glibc()
    if lib is None:
        return False
    lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(lib.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)))


def trim_memory() -> bool:
    """Hand the free memory of every malloc heap back to the system (glibc's malloc_trim(0)). True when
    something was released; False when nothing was, or this is not glibc."""
    lib = _glibc()
    return bool(lib.malloc_trim(0)) if lib is not None else False


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux /proc; 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class PhotoGate:
    """pixels: the most pixels of photos held by requests at once (at least one photo's max_pixels);
    decoders: decodes at once (0: one per core); wait_s: how long a request may wait to get in."""

    def __init__(self, pixels: int, decoders: int = 0, wait_s: float = 5.0, trim: bool = True):
        self.pixels_max, self.decoders_max = int(pixels), int(decoders) or usable_cores()
        self.wait_s, self.trim = float(wait_s), trim
        self.pixels = 0          # held by requests now
        self.decoding = 0        # decodes running now
        self.waiting = 0         # requests waiting to get in
        self.trims = 0
        self._cond: asyncio.Condition | None = None  # made in the event loop, on first use
        self._cond_loop = None
        self._large_left = False
        self._last_trim = 0.0
        self._trim_timer = None
        self._trim_when = 0.0

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._cond is None or self._cond_loop is not loop:  # a condition serves one event loop
            self._cond, self._cond_loop = asyncio.Condition(), loop
        return self._cond

    async def _enter(self, fits, take, what: str):
        cond = self._condition()
        async with cond:
            if not fits():
                self.waiting += 1
                try:
                    await asyncio.wait_for(cond.wait_for(fits), self.wait_s)
                except asyncio.TimeoutError:
                    raise Overloaded(f"{what} for {self.wait_s:g} s: retry later") from None
                finally:
                    self.waiting -= 1
            take()

    async def _leave(self, give):
        cond = self._condition()
        async with cond:
            give()
            cond.notify_all()

    @asynccontextmanager
    async def photo(self, pixels: int):
        """Hold `pixels` of the budget for the life of a request's photo."""
        n = min(int(pixels), self.pixels_max)  # one photo alone always fits an empty gate

        def take():
            self.pixels += n

        def give():
            self.pixels -= n
        await self._enter(lambda: self.pixels + n <= self.pixels_max, take,
                          f"{self.pixels / 1e6:.0f} MP of photos are in flight (the budget is "
                          f"{self.pixels_max / 1e6:g} MP)")
        try:
            yield
        finally:
            await self._leave(give)
            if pixels >= TRIM_PIXELS:
                self._large_left = True
            self._maybe_trim()

    @asynccontextmanager
    async def decode(self):
        """One of the `decoders` decode slots, for the decode (and detection and alignment) of one photo."""
        def take():
            self.decoding += 1

        def give():
            self.decoding -= 1
        await self._enter(lambda: self.decoding < self.decoders_max, take,
                          f"all {self.decoders_max} decoders are taken")
        try:
            yield
        finally:
            await self._leave(give)

    def _maybe_trim(self):
        """malloc_trim once large photos have left: at the end of a burst (nothing large in flight any more),
        or every 10 s under a steady stream of them; at most once a second (a trim due sooner is put off, not
        dropped, so the last one of a burst always happens); in a worker thread, never waited for."""
        if not (self.trim and self._large_left):
            return
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        gap = (10 if self.pixels >= TRIM_PIXELS else 1) * TRIM_INTERVAL_S
        when = max(now, self._last_trim + gap)
        if self._trim_timer is not None:
            if self._trim_when <= when:
                return
            self._trim_timer.cancel()  # the burst ended: trim sooner than the steady-stream one planned
        self._trim_when = when
        self._trim_timer = loop.call_later(when - now, self._trim_now, loop)

    def _trim_now(self, loop):
        self._trim_timer = None
        self._large_left, self._last_trim = False, time.monotonic()
        self.trims += 1
        self._trimming = loop.run_in_executor(None, collect_and_trim)


def collect_and_trim() -> bool:
    """gc.collect(), then trim_memory(). A request that failed on a decoded photo (no face, say) leaves its
    exception's traceback in reference cycles (the exception, its frames, the futures and tasks that carried
    it), and those frames hold the photo's arrays: freed only when the cycle collector runs, which an idle
    server may not do for a long time (measured: 4 requests on a 38-MP PNG left 553 MB resident against 226
    idle; after gc.collect(), 226)."""
    gc.collect()
    return trim_memory()
