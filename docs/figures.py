"""Make the README's pictures with the shipped model (engine only, no torch):

    python docs/figures.py            # writes docs/img/astronaut-edits.jpg, sampled-edits.png and samples.png
    python docs/figures.py --model DIR --out docs/img/astronaut-edits-OLD.jpg   # the astronaut, another model

The astronaut photo (scikit-image, public domain) is detected, aligned, edited and pasted back exactly as
`faceedit run` does; each panel is the same zoom on the face of the full edited photo.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from faceedit.engine import Editor, PhotoEditor
from faceedit.engine.imageio import read_photo, write_photo
from faceedit.core.attributes import decoder_value
from faceedit.core.implied import apply_implied

ROOT = Path(__file__).resolve().parent.parent
# each panel sets one of these to the opposite of what the model infers for her (a value she already has
# would change nothing, and what the model infers changes with the weights)
EDITED = ["Black_Hair", "Smiling", "Male", "Eyeglasses", "Blond_Hair", "Bangs", "Young", "Mustache", "Bald"]
PER_ROW = 5


def main(out=ROOT / "docs/img/astronaut-edits.jpg", panel=220, model=None):
    photo = read_photo(ROOT / "examples/astronaut.jpg")
    pe = PhotoEditor(Editor.load(model))
    face = pe.edit([photo], {})[0].faces[0]
    x, y, w, h = face.box
    flips = [(name, 0 if face.before[name] >= 0.5 else 1) for name in EDITED]
    edits = [("input", {})] + [(f"{n.lower()}={v}", {n.lower(): v}) for n, v in flips]
    cx, cy, side = x + w / 2, y + h / 2, int(max(w, h) * 1.6)
    x0 = int(np.clip(cx - side / 2, 0, photo.rgb.shape[1] - side))
    y0 = int(np.clip(cy - side / 2, 0, photo.rgb.shape[0] - side))
    panels = []
    for label, changes in edits:
        rgb = pe.edit([photo], changes)[0].photo.rgb if changes else photo.rgb
        tile = cv2.resize(rgb[y0:y0 + side, x0:x0 + side], (panel, panel), interpolation=cv2.INTER_AREA)
        bar = np.full((26, panel, 3), 255, np.uint8)
        cv2.putText(bar, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        panels.append(np.vstack([tile, bar]))
    rows = [np.hstack(panels[i:i + PER_ROW]) for i in range(0, len(panels), PER_ROW)]
    write_photo(Path(out), np.vstack(rows))
    print(f"wrote {out}")


def sampled_grid(out=ROOT / "docs/img/sampled-edits.png", rows=6, seed=3, scale=2):
    """Faces the model draws itself (latents from the model's fitted prior, no real person), then each
    attribute set to the opposite of the row's value, column by column: the model's edits without any photo."""
    from faceedit.engine import tensors
    ed = Editor.load()
    z = ed.draw_latents(rows, seed)
    base = np.tile(np.asarray(ed.model.defaults, np.float32), (rows, 1))
    cols = [("sampled", base)]
    for name in ("Male", "Young", "Smiling", "Eyeglasses", "Blond_Hair", "Black_Hair", "Bangs", "Mustache", "Bald"):
        i = ed.attribute_names.index(name)
        y = base.copy()
        y[:, i] = decoder_value(1 - base, ed.model.edit_gains)[:, i]  # the value at this model's edit gain
        asked = (np.arange(len(ed.attribute_names)) == i).astype(np.float32)[None].repeat(rows, 0)
        y, _ = apply_implied(ed.model.implied, y, asked, 1 - base, asked)  # as the editor does (a mustache: a man's)
        cols.append((name.lower()[:10] + ("=0" if base[0, i] else "=1"), y))
    s = ed.size * scale
    tiles = [[cv2.resize(tensors.to_uint8(img), (s, s), interpolation=cv2.INTER_NEAREST)
              for img in ed.run_decoder(z, y)] for _, y in cols]
    header = np.full((22, s * len(cols), 3), 255, np.uint8)
    for c, (label, _) in enumerate(cols):
        cv2.putText(header, label, (c * s + 3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    grid = np.vstack([header] + [np.hstack([tiles[c][r] for c in range(len(cols))]) for r in range(rows)])
    write_photo(Path(out), grid)
    print(f"wrote {out}")


# the README's grid of new faces: four attribute settings, four fixed seeds each (issue 32's by-eye target)
SAMPLE_ROWS = [("woman, young, smiling", {"male": 0, "young": 1, "smiling": 1}),
               ("man", {"male": 1}),
               ("man with eyeglasses", {"male": 1, "eyeglasses": 1}),
               ("woman, blond hair", {"male": 0, "blond_hair": 1})]


def samples_grid(out=ROOT / "docs/img/samples.png", per_row=4, seed=1, scale=2, model=None):
    """New faces as `faceedit sample` draws them (the model directory's prior at its own temperature), one row
    per attribute setting, the same seed for every row."""
    ed = Editor.load(model)
    s = ed.size * scale
    rows = []
    for label, changes in SAMPLE_ROWS:
        faces = ed.sample(per_row, changes, seed)
        header = np.full((20, s * per_row, 3), 255, np.uint8)
        cv2.putText(header, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        rows += [header, np.hstack([cv2.resize(f, (s, s), interpolation=cv2.INTER_LINEAR) for f in faces])]
    how = ed.sampling({}, seed, None)["prior"]
    write_photo(Path(out), np.vstack(rows))
    print(f"wrote {out} (prior {how['kind']}, temperature {how['temperature']:g}, seed {seed})")


if __name__ == "__main__":
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    if set(args) - {"--model", "--out"} or len(sys.argv) % 2 == 0:
        sys.exit("usage: python docs/figures.py [--model DIR --out PATH]")
    if args:
        main(Path(args.get("--out", ROOT / "docs/img/astronaut-edits.jpg")), model=args.get("--model"))
    else:
        main()
        sampled_grid()
        samples_grid()
