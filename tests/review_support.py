"""A fake mining run over the sample source and a review server process, for the review and
publish tests (the fixtures in conftest.py use them; tests import them from here, since a
``from conftest import`` can find another folder's conftest.py first)."""

from __future__ import annotations

# -- a fake mining run over the sample source (review, publish) ------------------------------

#: Sample photos that the fake run lists as candidates, with a plausible wrong judge top-5.
SAMPLE_RUN_TOP5 = {
    "chelsea.png": [285, 287, 281, 282, 283],
    "coffee.png": [504, 967, 968, 809, 925],
    "rocket.jpg": [812, 657, 744, 517, 908],
    "astronaut.png": [834, 617, 812, 457, 869],
    "clock_motion.png": [426, 409, 892, 635, 826],
    "motorcycle_left.png": [671, 665, 670, 444, 880],
    "grace_hopper.jpg": [457, 652, 834, 655, 906],
}
#: Two ObjectNet-origin images made from sample photos: (member, photo, crop box, label, top-5).
SAMPLE_RUN_OBJECTNET = [
    ("objectnet-1.0/images/mug/coffee_mug.png", "coffee.png", (60, 20, 460, 300), [504],
     [968, 504, 409, 892, 872]),
    ("objectnet-1.0/images/tripod/camera_tripod.png", "camera.png", (0, 0, 512, 512), [872],
     [759, 872, 409, 892, 504]),
]
SAMPLE_RUN_OBJECTNET_SPACE = [409, 504, 759, 872, 892, 968]
SAMPLE_RUN_PROBS = [0.41, 0.22, 0.12, 0.07, 0.04]


class SampleRun:
    """What :func:`make_sample_run` wrote: ``home``, ``run`` (its name), ``handle`` (the
    :class:`~imagenet_hard.mining.MiningRun`), ``candidates`` (the candidates file), ``ids`` (all
    candidate ids, sorted), ``sample_ids`` and ``objectnet_ids``."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return f"SampleRun(run={self.run!r}, home={str(self.home)!r}, {len(self.ids)} ids)"


def _objectnet_rows(home):
    import hashlib
    import io

    from PIL import Image

    from imagenet_hard import labels
    from imagenet_hard.records import SourceRow, make_id, write_source_table

    rows = []
    for member, photo, box, label, _top5 in SAMPLE_RUN_OBJECTNET:
        src = next((home / "sources" / "sample").glob(f"*/{photo}"))
        with Image.open(src) as im:
            crop = im.convert("RGB").crop(box)
        buf = io.BytesIO()
        crop.save(buf, format="PNG")
        dest = home / "sources" / "objectnet" / member
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(buf.getvalue())
        rows.append(SourceRow(
            id=make_id("objectnet", member), origin="objectnet",
            path=str(dest.relative_to(home)), label=label,
            english_label=labels.english_labels(label), label_space="objectnet_113",
            width=crop.width, height=crop.height,
            sha256=hashlib.sha256(buf.getvalue()).hexdigest(), label_paper=label))
    write_source_table(rows, home / "sources" / "objectnet.parquet", "objectnet",
                       {"objectnet_113": SAMPLE_RUN_OBJECTNET_SPACE,
                        "objectnet_113_paper": SAMPLE_RUN_OBJECTNET_SPACE})
    return rows


def make_sample_run(home, sample_home, run="sample-run"):
    """Give ``home`` the sample source (copied from ``sample_home``), a two-image ``objectnet``
    source and a finished mining run ``run`` over both (written as ``mine`` writes it)."""
    import shutil
    from pathlib import Path

    import pyarrow.parquet as pq
    from run_support import write_run

    home = Path(home)
    shutil.copytree(Path(sample_home) / "sources", home / "sources", dirs_exist_ok=True)
    cands = {}
    for n, row in enumerate(pq.read_table(home / "sources" / "sample.parquet").to_pylist()):
        top5 = SAMPLE_RUN_TOP5.get(row["id"].rsplit("/", 1)[-1])
        if top5:
            cands[row["id"]] = {"top5": top5, "top5_prob": SAMPLE_RUN_PROBS, "best_crop": 9 * n + 4}
    for row, spec in zip(_objectnet_rows(home), SAMPLE_RUN_OBJECTNET, strict=True):
        cands[row.id] = {"top5": spec[4], "top5_prob": SAMPLE_RUN_PROBS, "best_crop": 130}
    handle = write_run(home, run, ["objectnet", "sample"], cands)
    ids = sorted(cands)
    return SampleRun(home=home, run=run, handle=handle, candidates=handle.candidates_path,
                     ids=ids, sample_ids=[i for i in ids if i.startswith("sample/")],
                     objectnet_ids=[i for i in ids if i.startswith("objectnet/")])


class ReviewServerProcess:
    """``imhard review serve --port 0`` in a subprocess; ``url`` is read from its first line."""

    def __init__(self, home):
        import os
        import re
        import subprocess
        import sys

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "IMHARD_HOME": str(home)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imagenet_hard", "review", "serve", "--port", "0",
             "--home", str(home)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        first = self.proc.stdout.readline()  # "" if it exited instead
        match = re.search(r"http://\S+/", first)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"review server did not start: {first}{self.proc.stdout.read()}")
        self.url = match.group(0)

    def stop(self):
        """SIGTERM (a clean stop) and wait; returns what it printed after the first line."""
        if self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        return out

    def kill(self):
        self.proc.kill()
        self.proc.communicate(timeout=30)
