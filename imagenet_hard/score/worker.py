"""The child process that runs one submission: ``python -m imagenet_hard.score.worker JOB FD``.

It imports the submission, loads it, predicts the rows listed in the job file batch by batch and
writes each batch's top-5 as ``part-*.npz`` (atomically) the moment it is done, so a killed run
loses at most one batch. It talks to the parent through JSON lines on file descriptor ``FD`` (the
submission's own prints go to stdout/stderr, which the parent forwards). It never sees labels.
Before it imports the submission it caps its data memory (``RLIMIT_DATA``, inherited by everything it starts) at
the job's ``memory_limit``; running out of it is reported as the ``memory`` stage.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import contract
from .rgb_point import rgb_after_resize_crop, to_rgb

HARNESS_DIR = str(Path(__file__).resolve().parent)


class Status:
    """JSON-line events to the parent, and which stage / rows the child is in (for errors)."""

    stage = "import"
    rows: list[int] | None = None

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, event: str, **fields) -> None:
        line = json.dumps({"event": event, **fields}) + "\n"
        os.write(self.fd, line.encode("utf-8"))


def submission_traceback(exc: BaseException) -> str:
    """The traceback without the harness's own frames, so the user sees their code."""
    te = traceback.TracebackException.from_exception(exc)
    frames = [f for f in te.stack
              if not f.filename.startswith(HARNESS_DIR) and "importlib" not in f.filename]
    te.stack = traceback.StackSummary.from_list(frames)
    return "".join(te.format())


def _seed(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    if "torch" in sys.modules:  # a submission that never imports torch need not pay for it
        sys.modules["torch"].manual_seed(seed)


def _open_images(arrow_files: list[str]):
    import datasets

    parts = [datasets.Dataset.from_file(f) for f in arrow_files]
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return ds.select_columns(["image"])


def _write_part(out_dir: Path, idx, top5, top5_prob, seconds: float) -> None:
    import numpy as np

    dest = out_dir / f"part-{int(idx[0]):09d}-{len(idx)}.npz"
    tmp = out_dir / f".{dest.name}.tmp.npz"
    np.savez(tmp, idx=np.asarray(idx, dtype=np.int64), top5=top5, top5_prob=top5_prob,
             seconds=np.float64(seconds))
    os.replace(tmp, dest)


def _batches_predict(predictor, ds, indices, bs):
    """Predict form: decode the next batch in a thread while the current one is predicted."""
    chunks = [indices[i:i + bs] for i in range(0, len(indices), bs)]

    def decode(chunk):
        return [to_rgb(im) for im in ds[list(chunk)]["image"]]

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(decode, chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            images = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(decode, chunks[k + 1])
            yield chunk, (lambda images=images: predictor.predict(images))


def _batches_model(model, transform, ds, indices, bs, device, workers):
    """Model form: a DataLoader applies ``transform``; the harness runs ``model``."""
    import torch

    staged = rgb_after_resize_crop(transform)  # RGB where the authors converted (rgb_point)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(indices)

        def __getitem__(self, k):
            return staged(ds[int(indices[k])]["image"])

    loader = torch.utils.data.DataLoader(Rows(), batch_size=bs, shuffle=False,
                                         num_workers=workers, pin_memory=device.startswith("cuda"))
    for k, x in enumerate(loader):
        chunk = indices[k * bs:(k + 1) * bs]

        def run(x=x):
            with torch.inference_mode():
                return model(x.to(device, non_blocking=True))
        yield chunk, run


def _predict_all(batches, seed: int, out_dir: Path, status: Status) -> None:
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
        top5, prob = top5_of(arr)
        _write_part(out_dir, chunk, top5, prob, time.perf_counter() - t0)
        done += len(chunk)
        status.send("part", n=len(chunk), done=done, seconds=time.perf_counter() - t0)


def _start(sub, job: dict, status: Status):
    """Load the model (either form) and return the batch iterator."""
    ds = _open_images(job["arrow_files"])
    indices, bs, device = job["indices"], int(job["batch_size"]), job["device"]
    if job.get("tta"):
        from . import tta

        tta.check_submission(sub)   # still the "contract" stage: nothing loaded yet
    status.stage = "load"
    if sub.form == "predict":
        return _batches_predict(contract.build_predictor(sub, device), ds, indices, bs)
    model = sub.module.model
    if hasattr(model, "eval"):   # a torch.nn.Module; a plain callable is accepted as it is
        model = model.eval().to(device)
    if job.get("tta"):
        return tta.batches(model, sub.module.transform, job["tta"], ds, indices, bs, device,
                           int(job.get("workers", 0)))
    return _batches_model(model, sub.module.transform, ds, indices, bs, device,
                          int(job.get("workers", 0)))


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


def run_job(job: dict, status: Status) -> int:
    status.stage, status.rows = "import", None
    try:
        module = contract.import_file(job["submission"])
        status.stage = "contract"
        sub = contract.inspect(module)
        t0 = time.perf_counter()
        batches = _start(sub, job, status)
        status.send("loaded", form=sub.form, metadata=sub.metadata,
                    seconds=time.perf_counter() - t0)
        status.stage = "predict"
        _predict_all(batches, sub.seed, Path(job["out_dir"]), status)
        status.send("finished")
        return 0
    except contract.ContractError as exc:
        status.send("error", stage=status.stage, rows=status.rows, message=str(exc), traceback="")
        return 2
    except BaseException as exc:  # the submission's own failure, reported with its traceback
        stage = "memory" if out_of_memory(exc) else status.stage
        status.send("error", stage=stage, during=status.stage, rows=status.rows,
                    message=f"{type(exc).__name__}: {exc}", traceback=submission_traceback(exc))
        return 3


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    limit_memory(job.get("memory_limit"))
    return run_job(job, Status(int(argv[1])))


if __name__ == "__main__":
    sys.exit(main())
