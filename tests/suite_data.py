"""Small built sources of real photos whose answers a controlled submission reads off the image.

Each image is a scikit-image photo (64×48, PNG) with the answer written into five pixels of its
middle row, starting at the centre: pixel k holds class ``top5[k]`` as R·256 + G, and the first
pixel's B channel the top-1 probability in hundredths. The centre of an even-sized image is the
same photo pixel after ObjectNet's 2-pixel border crop, so the code survives it. An image with
``red_border`` gets a 1-pixel pure-red frame (as ObjectNet images carry): the submission answers
garbage when it sees that red corner, i.e. when the harness did not crop the border.

The tables are made by the real builders from folders in each source's own layout
(``imhard build --path``), except ImageNet-C's, written with the records code.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image
from source_archives import loc_csv, objectnet_members, write_members

from imagenet_hard import labels
from imagenet_hard.corruptions.build import META_IMAGENET_C
from imagenet_hard.records import SourceRow, make_id, write_source_table
from imagenet_hard.sources import build

SIZE = (64, 48)
_PHOTOS: list[Image.Image] = []


def _photos() -> list[Image.Image]:
    if not _PHOTOS:
        from skimage import data

        for f in (data.chelsea, data.coffee, data.astronaut, data.rocket):
            _PHOTOS.append(Image.fromarray(f()).convert("RGB"))
    return _PHOTOS


def coded_photo(k: int, top5: list[int], pct: int, red_border: bool = False) -> bytes:
    """Photo ``k`` (a different crop of one of four photos) carrying the answer ``top5``."""
    photo = _photos()[k % 4]
    x0 = 10 * (k // 4)
    im = photo.crop((x0, x0, x0 + 4 * SIZE[0], x0 + 4 * SIZE[1])).resize(SIZE)
    cx, cy = SIZE[0] // 2, SIZE[1] // 2
    for j, c in enumerate(top5):
        im.putpixel((cx + j, cy), (c // 256, c % 256, pct if j == 0 else 0))
    if red_border:
        w, h = SIZE
        for x in range(w):
            im.putpixel((x, 0), (255, 0, 0))
            im.putpixel((x, h - 1), (255, 0, 0))
        for y in range(h):
            im.putpixel((0, y), (255, 0, 0))
            im.putpixel((w - 1, y), (255, 0, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


#: A predict-form submission answering what the image says (tests/scoring_data.py's 8×8 images
#: too). With IMHARD_TEST_CRASH_AT set to a class index, the process kills itself on the first
#: image whose top-1 is that class.
CONTROLLED = '''
import os
import numpy as np

METADATA = {"name": "Controlled suite", "uses_tta": False, "extra_training_data": False}
CRASH_AT = os.environ.get("IMHARD_TEST_CRASH_AT")


def decode(image):
    w, h = image.size
    if w < 16:                                   # tests/scoring_data.py's 8×8 images: first row
        px = [image.getpixel((k, 0)) for k in range(5)]
        top5, p = [r * 256 + g for r, g, _ in px], px[0][2] / 100.0
    elif image.getpixel((0, 0)) == (255, 0, 0):  # an ObjectNet border nobody cropped
        top5, p = [0, 1, 2, 3, 5], 0.99
    else:
        px = [image.getpixel((w // 2 + k, h // 2)) for k in range(5)]
        top5, p = [r * 256 + g for r, g, _ in px], px[0][2] / 100.0
    if CRASH_AT is not None and top5[0] == int(CRASH_AT):
        os.kill(os.getpid(), 9)
    rest = 1.0 - p
    out = np.full(1000, rest * 0.5 / 995)
    for c, share in zip(top5, [p, rest * 0.2, rest * 0.15, rest * 0.1, rest * 0.05]):
        out[c] = share
    return out


class Oracle:
    def predict(self, images):
        return np.stack([decode(im) for im in images])


def load(device):
    return Oracle()
'''

#: Always the same wrong answer (class 999, never a label here): an ImageNet-C baseline whose
#: error is 1 on every table, standing in for AlexNet.
ALWAYS_WRONG = '''
import numpy as np
METADATA = {"name": "Always 999"}

class Wrong:
    def predict(self, images):
        out = np.zeros((len(images), 1000))
        out[:, 999] = 1.0
        return out

def load(device):
    return Wrong()
'''


def in_a_wnid(k: int) -> tuple[str, int]:
    w = labels.imagenet_a_wnids()[k]
    return w, labels.index_of(w)


# ImageNet-A: the 200 classes are in_a_200; class 0 (tench) is not among them.
A0, A1 = in_a_wnid(0)[1], in_a_wnid(1)[1]        # 6 (stingray), 11 (goldfinch)
IMAGENET_A_ROWS = [  # (wnid index, file, top5, pct)
    (0, "outside_first.png", [0, A0, 1, 2, 3], 60),   # 1000-way top-1 is tench; within 200: A0 ✓
    (0, "second.png", [A1, A0, 0, 1, 2], 55),          # within 200: A1 ✗ (top-5 ✓)
    (1, "plain.png", [A1, 0, 1, 2, 3], 80),            # A1 ✓
]

# ImageNet val / ReaL: val 1 has an empty ReaL list, val 2's is {970, 795}, val 3's {230, 231}.
VAL_ROWS = [  # (val number, ImageNet label written to LOC_val_solution.csv, top5, pct)
    (1, 500, [500, 1, 2, 3, 4], 70),        # IN ✓; ReaL: left out
    (2, 970, [795, 970, 1, 2, 3], 65),      # IN ✗ (top-5 ✓); ReaL ✓ (795 is in its set)
    (3, 229, [229, 230, 1, 2, 3], 90),      # IN ✓; ReaL ✗ (229 only in the IN ∪ ReaL union)
]

# ObjectNet (synthetic mappings of source_archives): union of mapped classes
# {409, 530, 954, 671, 444, 423, 559, 765}.
OBJECTNET_ROWS = [  # (folder, file, top5, pct, red border)
    ("chair", "folding.png", [559, 1, 2, 3, 4], 75, False),      # folding chair: Chair ✓
    ("bicycle", "goldfish.png", [1, 444, 2, 3, 4], 50, False),   # goldfish outside; 444 tandem ✓
    ("alarm_clock", "banana.png", [954, 409, 2, 3, 4], 40, False),  # banana ✗ (top-5 ✓)
    ("banana", "bordered.png", [954, 1, 2, 3, 4], 85, True),     # ✓ only when the border is cut
]

# ImageNet-C stand-in tables: (corruption, severity) → rows of (label, top5, pct).
IMAGENET_C_ROWS = {
    ("fog", 1): [(10, [10, 1, 2, 3, 4], 70), (20, [21, 1, 2, 3, 4], 70)],     # error 1/2
    ("fog", 2): [(10, [11, 1, 2, 3, 4], 70), (20, [21, 1, 2, 3, 4], 70)],     # error 2/2
    ("saturate", 1): [(30, [30, 1, 2, 3, 4], 70), (40, [40, 1, 2, 3, 4], 70)],  # error 0/2
}


def build_imagenet_a(home: Path, src: Path) -> Path:
    members = {f"imagenet-a/{in_a_wnid(k)[0]}/{f}": coded_photo(n, t5, pct)
               for n, (k, f, t5, pct) in enumerate(IMAGENET_A_ROWS)}
    return build("imagenet-a", home=home, path=write_members(src / "in-a", members)).table


def build_imagenet_val(home: Path, src: Path) -> tuple[Path, Path]:
    members = {f"ILSVRC2012_val_{n:08d}.png": coded_photo(10 + n, t5, pct)
               for n, _, t5, pct in VAL_ROWS}
    members["LOC_val_solution.csv"] = loc_csv({n: lab for n, lab, _, _ in VAL_ROWS})
    folder = write_members(src / "val", members)
    return (build("imagenet", home=home, path=folder).table,
            build("imagenet-real", home=home, path=folder).table)


def build_objectnet(home: Path, src: Path) -> Path:
    members = {k: v for k, v in objectnet_members()[0].items() if "/images/" not in k}
    for n, (folder, f, t5, pct, red) in enumerate(OBJECTNET_ROWS):
        members[f"objectnet-1.0/images/{folder}/{f}"] = coded_photo(20 + n, t5, pct, red)
    return build("objectnet", home=home, path=write_members(src / "on", members)).table


def write_imagenet_c(home: Path) -> list[Path]:
    """One table per (corruption, severity), as the corruption stage will write them."""
    out = []
    for (c, s), rows in IMAGENET_C_ROWS.items():
        recs = []
        for n, (lab, t5, pct) in enumerate(rows):
            data = coded_photo(40 + n + 7 * len(out), t5, pct)
            member = f"{c}/{s}/ILSVRC2012_val_{n + 1:08d}.png"
            dest = home / "sources" / "imagenet_c" / member
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            recs.append(SourceRow(id=make_id("imagenet_c", member), origin=f"imagenet_c/{c}/{s}",
                                  path=str(dest.relative_to(home)), label=[lab],
                                  english_label=labels.english_labels([lab]), label_space="in1k",
                                  width=SIZE[0], height=SIZE[1],
                                  sha256=hashlib.sha256(data).hexdigest()))
        record = {"source": "imagenet-c", "corruption": c, "severity": s, "base": "imagenet",
                  "backend": "reference", "image_format": "png"}  # what the build records
        out.append(write_source_table(recs, home / "sources" / f"imagenet_c_{c}_{s}.parquet",
                                      f"imagenet_c_{c}_{s}",
                                      metadata={META_IMAGENET_C: json.dumps(record).encode()}))
    return out


def build_all(home: Path, src: Path) -> None:
    build_imagenet_a(home, src)
    build_imagenet_val(home, src)
    build_objectnet(home, src)
    write_imagenet_c(home)


def write_submission(folder: Path, body: str = CONTROLLED, name: str = "controlled.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    return path


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())

