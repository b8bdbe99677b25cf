"""serve/memory.py without a server: the photo gate's two bounds and its busy answer, a trim after a burst of
large photos, and the glibc calls (resident size, malloc_trim, the mmap threshold)."""
from __future__ import annotations

import asyncio
import platform

import pytest

from faceedit.engine.errors import Overloaded
from faceedit.serve import memory
from faceedit.serve.memory import PhotoGate


def test_the_gate_bounds_pixels_and_decodes_and_says_busy_after_its_wait():
    async def main():
        g = PhotoGate(pixels=100, decoders=1, wait_s=0.2, trim=False)
        async with g.photo(60):
            with pytest.raises(Overloaded, match="in flight"):
                async with g.photo(60):
                    pass
            async with g.photo(40):
                assert g.pixels == 100
            async with g.decode():
                with pytest.raises(Overloaded, match="decoders"):
                    async with g.decode():
                        pass
        assert (g.pixels, g.decoding, g.waiting) == (0, 0, 0)
        async with g.photo(10_000):  # one photo alone always fits an empty gate
            assert g.pixels == 100
    asyncio.run(main())


def test_a_waiting_photo_gets_in_when_room_frees():
    async def main():
        g = PhotoGate(pixels=100, decoders=1, wait_s=5, trim=False)
        order = []

        async def hold(name, n, s):
            async with g.photo(n):
                order.append(name)
                await asyncio.sleep(s)
        first = asyncio.ensure_future(hold("first", 80, 0.2))
        await asyncio.sleep(0.05)
        await hold("second", 80, 0)
        await first
        assert order == ["first", "second"] and g.waiting == 0
    asyncio.run(main())


def test_a_burst_of_large_photos_ends_in_one_trim(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "collect_and_trim", lambda: calls.append(1) or True)

    async def main():
        g = PhotoGate(pixels=10**9, decoders=4, wait_s=1)

        async def big():
            async with g.photo(memory.TRIM_PIXELS):
                await asyncio.sleep(0.05)
        await asyncio.gather(*(big() for _ in range(4)))
        await asyncio.sleep(memory.TRIM_INTERVAL_S + 0.3)
        async with g.photo(1000):  # a small one does not call for a trim
            pass
        await asyncio.sleep(memory.TRIM_INTERVAL_S + 0.3)
        return g
    g = asyncio.run(main())
    assert 1 <= len(calls) == g.trims <= 2


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_calls():
    assert memory.rss_bytes() > 10 * 2**20
    assert memory.tune_malloc() is True
    assert memory.trim_memory() in (True, False)
    assert memory.collect_and_trim() in (True, False)
