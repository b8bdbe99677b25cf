"""The HTTP load benchmarks' parts that need no server: loadgen's inputs (many different crops and photos, so
no detection is answered from the server's cache), its targets, and the bomb files of faceedit.bench.bombs
(what their headers declare). The benchmarks themselves run against a real server: see docs/serving.md."""
from __future__ import annotations

import pytest

pytest.importorskip("skimage")


def test_inputs_are_all_different_and_of_varied_sizes():
    from faceedit.bench import loadgen
    from faceedit.engine.imageio import image_size
    crops = loadgen.crops(12)
    assert len(set(crops)) == 12
    sides = [image_size(c)[:2] for c in crops]
    assert all(w == h and 96 <= w <= 192 for w, h in sides) and len(set(sides)) > 3
    photos = loadgen.photos(10)
    assert len({b for b, _, _ in photos}) == 10
    assert {f for _, f, _ in photos} == {1, 2, 3}          # one, two and three faces
    for body, _, (w, h) in photos:
        assert image_size(body) == (w, h, "JPEG")
    mp = sorted(w * h / 1e6 for _, _, (w, h) in photos)
    assert mp[0] < 0.5 and mp[-1] > 1.0


def test_targets_compare_64_clients_with_the_offline_rates():
    from faceedit.bench.loadgen import targets
    result = {"offline": {"engine": {"crops_per_s": 200.0}, "photo_pipeline": {"photos_per_s": 20.0}},
              "runs": {"edit-crop": [{"clients": 1, "requests_per_s": 50.0}, {"clients": 64, "requests_per_s": 160.0}],
                       "edit-photo": [{"clients": 64, "requests_per_s": 11.0}]}}
    t = targets(result)
    assert t["edit-crop_64_clients_vs_engine"]["measured"] == 0.8 and t["edit-crop_64_clients_vs_engine"]["pass"]
    assert t["edit-photo_64_clients_vs_photo_pipeline"]["measured"] == 0.55
    assert not t["edit-photo_64_clients_vs_photo_pipeline"]["pass"]


def test_bomb_files_declare_what_they_say():
    from faceedit.bench import bombs
    from faceedit.engine.imageio import image_size
    assert image_size(bombs.jpeg_declaring(65000, 65000))[:2] == (65000, 65000)
    assert image_size(bombs.gif_declaring(65535, 65535))[:2] == (65535, 65535)
    png = bombs.png_rows(3000, 2000, 8, 0, bytes(1 + 3000))
    assert image_size(png) == (3000, 2000, "PNG") and len(png) < 20_000
