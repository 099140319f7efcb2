"""``imhard bench memory``: the peak memory of ``imhard score`` and ``imhard publish --check`` as
the dataset grows; both must stay flat in the number of rows.

For each row count N a fresh data home gets N generated images (noise, ``side``×``side`` JPEG, one
source table), a finished mining run in which every image is a candidate (the judging skipped, as
``mining.merge_run`` writes it), and ``imhard publish`` of that run. Then, each in its own
process, ``imhard score`` scores the published folder with a submission that only counts its
inputs (so the harness, not a model, is measured) and ``imhard publish --check`` checks it. A
command's peak is the largest resident set among it and the processes it waited for (``wait4``'s
``ru_maxrss``), so the sandboxed child counts too. It is read by a small launcher process: Linux
carries the high-water mark of the address space a process replaces with ``exec`` into its
``ru_maxrss``, so a command forked straight from this (large) process would report this one.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImHardError, InvalidValueError

#: What "flat" allows: the largest peak at most this much above the smallest.
MAX_GROWTH = 1.25
SOURCE = "bench_memory"

#: A submission that reads every image and answers class 0: no model, so what grows is ours.
SUBMISSION = '''import numpy as np
METADATA = {"name": "Counts its inputs", "uses_tta": False, "extra_training_data": False}


class Blind:
    def predict(self, images):
        out = np.full((len(images), 1000), 1e-4)
        out[:, 0] = 1.0
        return out


def load(device):
    return Blind()
'''


@dataclass(frozen=True)
class MemoryRow:
    rows: int
    command: str
    peak_mib: float
    seconds: float


@dataclass
class MemoryReport:
    rows: list[MemoryRow] = field(default_factory=list)

    def growth(self, command: str) -> float:
        peaks = [r.peak_mib for r in self.rows if r.command == command]
        return max(peaks) / min(peaks) if peaks else 1.0

    @property
    def flat(self) -> bool:
        return all(self.growth(c) <= MAX_GROWTH for c in {r.command for r in self.rows})

    def lines(self) -> list[str]:
        out = [f"{'rows':>7}  {'command':<22} {'peak MiB':>9} {'seconds':>8}"]
        out += [f"{r.rows:>7,}  {r.command:<22} {r.peak_mib:>9.0f} {r.seconds:>8.1f}"
                for r in self.rows]
        for c in dict.fromkeys(r.command for r in self.rows):
            out.append(f"{c}: largest peak ÷ smallest {self.growth(c):.2f} "
                       f"({'flat' if self.growth(c) <= MAX_GROWTH else 'GROWS'}; flat is ≤ "
                       f"{MAX_GROWTH})")
        return out


def parse_rows(text: str) -> tuple[int, ...]:
    """``1000,5000,20000`` → (1000, 5000, 20000); each at least 10."""
    try:
        rows = tuple(int(p) for p in str(text).split(",") if p.strip())
    except ValueError:
        raise InvalidValueError(f"--rows {text!r}: write row counts as 1000,5000,20000") from None
    if not rows or any(n < 10 for n in rows):
        raise InvalidValueError(f"--rows {text!r}: give at least one count, each 10 or more")
    return rows


def _images(n: int, side: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
            buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def _source(home: Path, images: list[bytes]) -> None:
    from .. import catalog
    from ..labels import english_labels
    from ..records import SourceRow, write_source_table

    folder = catalog.parse(SOURCE).path(home).with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, data in enumerate(images):
        (folder / f"{i:06d}.jpg").write_bytes(data)
        label = [i % 1000]
        rows.append(SourceRow(id=f"{SOURCE}/{i:06d}.jpg", origin=SOURCE,
                              path=f"sources/{SOURCE}/{i:06d}.jpg", label=label,
                              english_label=english_labels(label), label_space="in1k",
                              width=1, height=1, sha256=hashlib.sha256(data).hexdigest()))
    write_source_table(rows, catalog.parse(SOURCE).path(home), SOURCE)


def _run_of_candidates(home: Path, name: str) -> None:
    """A finished run in which no crop got any image right: every image is a candidate."""
    from ..home import mining_dir
    from ..mining import MiningRun, order
    from ..mining.plan import load_workload, run_record
    from ..mining.run import merge_run

    work = load_workload([SOURCE], home)
    run = MiningRun(mining_dir(home) / name,
                    run_record("efficientnet-lite0", work, exhaustive=False,
                               shard_size=len(work.images)))
    run.start()
    best = order.crop_order()[0]
    rows = [{"id": im.id, "source": im.source, "origin": im.origin, "label": list(im.label),
             "label_space": im.label_space, "n_correct": None, "mask": None, "correct": False,
             "first_correct_crop": None, "n_forward": 324, "best_crop": best,
             "top5": [(im.label[0] + k + 1) % 1000 for k in range(5)],
             "top5_prob": [0.5, 0.2, 0.15, 0.1, 0.05]} for im in work.images]
    run.write_shard(0, rows, {"shard": 0, "rank": 0, "seconds": 0.0,
                              "forward_passes": 324 * len(rows)})
    merge_run(run, None, seconds=0.0, computed_images=len(rows), computed_crops=324 * len(rows),
              world=1, device="cpu", crops="pil", batch_size=64)


#: Runs argv[2:], then writes its peak resident KiB (wait4) to the fd argv[1] names and exits
#: with its status.
_LAUNCHER = ("import os, sys\n"
             "pid = os.fork()\n"
             "if pid == 0:\n    os.execv(sys.argv[2], sys.argv[2:])\n"
             "_, status, usage = os.wait4(pid, 0)\n"
             "os.write(int(sys.argv[1]), str(usage.ru_maxrss).encode())\n"
             "sys.exit(os.waitstatus_to_exitcode(status))\n")


def peak_of(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``argv``; (peak resident MiB of it and the processes it waited for, seconds, output)."""
    t0 = time.perf_counter()
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(write), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            pass_fds=(write,))
    os.close(write)
    out = proc.stdout.read().decode(errors="replace")
    proc.wait()
    with os.fdopen(read, "rb") as f:
        kib = int(f.read() or 0)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = " | ".join(out.strip().splitlines()[-3:])
        raise ImHardError(f"`{' '.join(argv[2:])}` exited {proc.returncode} in the memory "
                          f"benchmark: {tail}")
    return kib / 1024, seconds, out


def bench_memory(rows: tuple[int, ...] = (1000, 5000, 20000), side: int = 64,
                 sandbox: str = "auto", echo: Callable[[str], None] = print) -> MemoryReport:
    """Peak memory of ``score`` and ``publish --check`` at each row count (see the module)."""
    from ..publish import publish

    report = MemoryReport()
    imhard = [sys.executable, "-m", "imagenet_hard"]
    with tempfile.TemporaryDirectory(prefix="imhard-bench-memory-") as tmp:
        sub = Path(tmp) / "submission" / "blind.py"  # a folder apart: the sandbox mounts it
        sub.parent.mkdir()
        sub.write_text(SUBMISSION)
        for n in rows:
            home = Path(tmp) / f"home-{n}"
            echo(f"{n:,} rows: generating images, a run and its published folder")
            _source(home, _images(n, side))
            _run_of_candidates(home, "bench")
            folder = publish("bench", out=home / "dist" / "imagenet-hard", home=home,
                             include_pending=True).out
            env = {**os.environ, "IMHARD_HOME": str(home)}
            for command, argv in (
                    ("score", imhard + ["score", str(sub), "--dataset", str(folder), "--home",
                                        str(home), "--device", "cpu", "--sandbox", sandbox,
                                        "--quiet", "--batch-size", "256"]),
                    ("publish --check", imhard + ["publish", "--check", str(folder)])):
                peak, seconds, _ = peak_of(argv, env)
                report.rows.append(MemoryRow(n, command, peak, seconds))
                echo(f"  {command}: peak {peak:.0f} MiB in {seconds:.1f} s")
    return report
