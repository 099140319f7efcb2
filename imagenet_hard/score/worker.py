"""The child process that runs one submission: ``python -m imagenet_hard.score.worker JOB FD``.

It caps its data memory (``RLIMIT_DATA``) at the job's ``memory_limit``, imports and loads the
submission, then predicts each :class:`Segment` of the :class:`ChildJob` (one per scored set)
batch by batch, writing each batch's top-5 as a part (:data:`PART_HEADER`) the moment it is done,
so a killed run loses at most one batch. Events go to the parent as JSON lines on ``FD``; the
submission's own prints go to stdout/stderr. It never sees labels.
"""

from __future__ import annotations

import json
import os
import random
import struct
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import devices
from ..pixels import open_record, to_rgb
from . import contract
from .rgb_point import rgb_after_resize_crop

HARNESS_DIR = str(Path(__file__).resolve().parent)

#: A prediction part, little-endian: this header (magic, format version, k = 5, row count n),
#: then idx int64[n], top5 int64[n, k], top5_prob float32[n, k] and seconds float64. Raw, not
#: ``.npz``: the submission can write the parts folder, so a part's size must follow from its
#: name (a compressed array can inflate without bound).
PART_HEADER = struct.Struct("<8sIIQ")
PART_MAGIC, PART_VERSION, PART_K, PART_SUFFIX = b"IMHTOP5\0", 1, 5, ".top5"
#: Longest text of an error event the worker sends: the parent refuses event lines over 1 MiB.
EVENT_TEXT_CHARS = 64 * 1024


@dataclass
class Segment:
    """One set of a job: its images, the rows to predict and the folder their parts go to."""

    arrow_files: list[str]
    indices: list[int]
    out_dir: str
    name: str | None = None       # the set (None: the one dataset of a plain run)
    read_only: list[str] = field(default_factory=list)   # image folders its Arrow files point into
    border: int = 0               # pixels its protocol crops off every side
    classes: list[int] | None = None   # the top-5 is taken among these (None: all 1000)


@dataclass
class ChildJob:
    """What the parent asks of one child, written as JSON to a file only the parent can write."""

    submission: str
    device: str
    batch_size: int
    workers: int
    segments: list[Segment]
    memory_limit: int | None = None    # bytes of data memory (RLIMIT_DATA); None: no limit
    tta: dict | None = None   # score.tta: crop set, aggregation, crops per forward pass

    @classmethod
    def read(cls, path: str | Path) -> ChildJob:
        data = json.loads(Path(path).read_text())
        return cls(**{**data, "segments": [Segment(**s) for s in data["segments"]]})

    def mounts(self, job_file: str | None = None) -> tuple[list[str], list[str]]:
        """(read-only, writable) paths the sandbox shows the child; writable: the parts folders."""
        read_only = [self.submission, *([job_file] if job_file else [])]
        for seg in self.segments:
            read_only += [*seg.arrow_files, *seg.read_only]
        return read_only, [seg.out_dir for seg in self.segments]


def part_name(first: int, n: int) -> str:
    return f"part-{first:09d}-{n}{PART_SUFFIX}"


def part_size(n: int) -> int:
    return PART_HEADER.size + n * 8 * (1 + PART_K) + n * 4 * PART_K + 8


def clip(text: str, most: int) -> str:
    """At most ``most`` characters of an error text: its start and its end (where a traceback
    names the exception)."""
    if len(text) <= most:
        return text
    half = most // 2
    return f"{text[:half]}\n[… {len(text) - 2 * half} characters cut]\n{text[-half:]}"


class Status:
    """JSON-line events to the parent, and which stage / rows / set the child is in."""

    stage = "import"
    rows: list[int] | None = None
    segment: str | None = None

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, event: str, **fields) -> None:
        for key in ("message", "traceback"):   # an exception may carry megabytes of text
            if isinstance(fields.get(key), str):
                fields[key] = clip(fields[key], EVENT_TEXT_CHARS)
        line = json.dumps({"event": event, **fields}) + "\n"
        os.write(self.fd, line.encode("utf-8"))


def submission_traceback(exc: BaseException) -> str:
    """The traceback without the harness's own frames, so the user sees their code."""
    te = traceback.TracebackException.from_exception(exc)
    frames = [f for f in te.stack
              if not f.filename.startswith(HARNESS_DIR) and "importlib" not in f.filename]
    te.stack = traceback.StackSummary.from_list(frames)
    return "".join(te.format())


#: The seed of ``random``, ``numpy`` and ``torch`` while the submission file is imported; its
#: ``METADATA`` (and own ``seed``) exist only afterwards (see :mod:`.contract`).
IMPORT_SEED = 0


class _SeedTorchOnImport:
    """Seeds torch the moment something imports it (a submission without torch does not pay)."""

    seed = IMPORT_SEED

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module, seed = spec.loader.exec_module, self.seed

            def exec_and_seed(module):
                exec_module(module)
                module.manual_seed(seed)

            spec.loader.exec_module = exec_and_seed
        return spec


_TORCH_HOOK = _SeedTorchOnImport()


def _seed(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
    else:
        _TORCH_HOOK.seed = seed
        if _TORCH_HOOK not in sys.meta_path:
            sys.meta_path.insert(0, _TORCH_HOOK)


class _Images:
    """A segment's images by row, decoded by the toolkit's image rule (:mod:`imagenet_hard.pixels`),
    not by ``datasets``, which applies EXIF orientation from 2.19 on and the 2023 pipeline did not;
    ``border`` pixels cropped off every side first (ObjectNet's protocol)."""

    def __init__(self, records: list[dict], border: int = 0):
        self.records, self.border = records, border

    def __len__(self) -> int:
        return len(self.records)

    def image(self, row: int):
        im, b = open_record(self.records[row]), self.border
        return im.crop((b, b, im.width - b, im.height - b)) if b and min(im.size) > 2 * b else im


def _open_images(arrow_files: list[str], border: int = 0) -> _Images:
    """The ``image`` column (``{bytes, path}`` records) of the parent's Arrow stream files, read
    with pyarrow: importing ``datasets`` to read them cost every child 0.7 s."""
    import pyarrow as pa

    records: list[dict] = []
    for name in arrow_files:
        with pa.OSFile(name) as f:
            for batch in pa.ipc.open_stream(f):
                records += batch.column("image").to_pylist()
    return _Images(records, border)


def _write_part(out_dir: Path, idx, top5, top5_prob, seconds: float) -> None:
    import numpy as np

    idx = np.asarray(idx, dtype="<i8")
    n = len(idx)
    top5 = np.ascontiguousarray(top5, dtype="<i8").reshape(n, PART_K)
    top5_prob = np.ascontiguousarray(top5_prob, dtype="<f4").reshape(n, PART_K)
    data = b"".join([PART_HEADER.pack(PART_MAGIC, PART_VERSION, PART_K, n), idx.tobytes(),
                     top5.tobytes(), top5_prob.tobytes(), struct.pack("<d", seconds)])
    dest = out_dir / part_name(int(idx[0]), n)
    tmp = out_dir / f".{dest.name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)


def _batches_predict(predictor, ds, indices, bs):
    """Predict form: decode the next batch in a thread while the current one is predicted.
    Images are RGB unless the predictor says ``accepts_stored_mode`` (the model layer's
    ``Model``, whose transform converts after the crop; see rgb_point)."""
    chunks = [indices[i:i + bs] for i in range(0, len(indices), bs)]
    stored = getattr(predictor, "accepts_stored_mode", False) is True

    def decode(chunk):
        images = [ds.image(k) for k in chunk]
        return list(images) if stored else [to_rgb(im) for im in images]

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(decode, chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            images = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(decode, chunks[k + 1])
            yield chunk, (lambda images=images: predictor.predict(images))


def _batches_model(model, transform, ds, indices, bs, device, workers, tta=None):
    """Model form: a DataLoader prepares each image (``transform``, or the crops of ``tta``,
    :mod:`.tta`); the harness runs ``model``."""
    import torch

    if tta:
        from . import tta as tta_mod

        prepare, forward = tta_mod.prepare(model, transform, tta, device)
    else:
        prepare = rgb_after_resize_crop(transform)  # RGB where the authors converted (rgb_point)

        def forward(x):
            return model(x.to(device, non_blocking=True))

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(indices)

        def __getitem__(self, k):
            return prepare(ds.image(int(indices[k])))

    loader = torch.utils.data.DataLoader(Rows(), batch_size=bs, shuffle=False,
                                         num_workers=workers, pin_memory=device.startswith("cuda"))
    for k, x in enumerate(loader):
        chunk = indices[k * bs:(k + 1) * bs]

        def run(x=x):
            with torch.inference_mode():
                return forward(x)
        yield chunk, run


def _predict_all(batches, seed: int, out_dir: Path, status: Status, classes=None) -> None:
    """Predict every batch and write its top-5 (among ``classes`` when given) to ``out_dir``."""
    from .metrics import top5_of

    it = iter(batches)
    done = 0
    while True:
        t0 = time.perf_counter()
        status.send("batch", done=done)
        status.rows = None
        chunk, run = next(it, (None, None))
        if chunk is None:
            return
        status.rows = [int(chunk[0]), int(chunk[-1])]
        _seed(seed + int(chunk[0]))
        out = run()
        status.stage = "output"
        arr = contract.to_array(out, len(chunk))
        status.stage = "predict"
        top5, prob = top5_of(arr, classes)
        _write_part(out_dir, chunk, top5, prob, time.perf_counter() - t0)
        done += len(chunk)
        status.send("part", n=len(chunk), done=done, seconds=time.perf_counter() - t0,
                    segment=status.segment)


def _load(sub, device: str, status: Status):
    """The loaded model: the predictor (predict form) or the module on ``device`` (model form)."""
    status.stage = "load"
    if sub.form == "predict":
        return contract.build_predictor(sub, device)
    model = sub.module.model
    if hasattr(model, "eval"):   # a torch.nn.Module; a plain callable is accepted as it is
        model = model.eval().to(device)
    return model


def _batches(sub, loaded, ds, indices, job: ChildJob):
    if sub.form == "predict":
        return _batches_predict(loaded, ds, indices, job.batch_size)
    return _batches_model(loaded, sub.module.transform, ds, indices, job.batch_size, job.device,
                          job.workers, job.tta)


def limit_memory(limit: int | None) -> None:
    """Cap private writable memory (heap, anonymous maps, thread stacks) of this process and its
    children; file-backed maps such as the memory-mapped Arrow dataset and libraries do not count."""
    import resource

    if limit is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def out_of_memory(exc: BaseException) -> bool:
    """An allocation refused under the limit: Python's MemoryError, or torch's / C++'s own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if isinstance(exc, MemoryError) or "can't allocate memory" in text \
                or "Cannot allocate memory" in text or "std::bad_alloc" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def run_job(job: ChildJob, status: Status) -> int:
    status.stage, status.rows = "import", None
    try:
        if job.device.startswith("cuda"):
            # fp32 means fp32: cuDNN would run a model form's convolutions in TF32 by default.
            # A submission that wants TF32 turns it on itself (the result records the default).
            devices.strict_fp32(job.device)
        else:
            devices.keep_freed_memory()   # batches reuse freed memory, not fresh pages
        _seed(IMPORT_SEED)
        module = contract.import_file(job.submission)
        status.stage = "contract"
        sub = contract.inspect(module)
        if job.tta:
            from . import tta

            tta.check_submission(sub)   # still the "contract" stage: nothing loaded yet
        first = job.segments and _open_images(job.segments[0].arrow_files,
                                              job.segments[0].border)
        t0 = time.perf_counter()
        _seed(sub.seed)
        loaded = _load(sub, job.device, status)
        status.send("loaded", form=sub.form, metadata=sub.metadata,
                    seconds=time.perf_counter() - t0)
        for k, seg in enumerate(job.segments):
            status.stage, status.segment = "predict", seg.name
            ds = first if k == 0 else _open_images(seg.arrow_files, seg.border)
            _predict_all(_batches(sub, loaded, ds, seg.indices, job), sub.seed,
                         Path(seg.out_dir), status, seg.classes)
        status.send("finished")
        return 0
    except contract.ContractError as exc:
        status.send("error", stage=status.stage, rows=status.rows, segment=status.segment,
                    message=str(exc), traceback="")
        return 2
    except BaseException as exc:  # the submission's own failure, reported with its traceback
        stage = "memory" if out_of_memory(exc) else status.stage
        status.send("error", stage=stage, during=status.stage, rows=status.rows,
                    segment=status.segment, message=f"{type(exc).__name__}: {exc}",
                    traceback=submission_traceback(exc))
        return 3


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = ChildJob.read(argv[0])
    limit_memory(job.memory_limit)
    return run_job(job, Status(int(argv[1])))


if __name__ == "__main__":
    code = main()
    # The parts are on disk and the events sent: leave without Python's own exit, which cost
    # ~1 s with torch loaded (and would wait for any thread the submission left running).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced by the submission
            pass
    os._exit(code)
