"""The judging loop of one shard: rounds of crops, batched across images, verdicts on the device.

Crops are made off the critical path by torch ``DataLoader`` workers (persistent for the whole run)
and arrive per (image, chunk of a round); the loop packs them into full batches of ``batch_size``
regardless of image boundaries, runs the judge (which owns its normalisation and precision: the
run's protocol), masks the logits to each image's judged label space, and resolves a batch's
verdicts only after the next batch is launched, so the device never waits on the host's
bookkeeping. On CUDA the verdicts travel to pinned host buffers with ``non_blocking`` copies and
an event per batch (:class:`VerdictCopies`); a batch is read once its event has completed, so the
host never waits for the batch behind it. Per-image state lives in numpy arrays updated with
vectorised scatter operations; there is no Python loop over crops.

A low-precision judge (fp16/bf16 autocast) can put two classes within its rounding of each other,
and which one wins then depends on the kernels the batch shape picks: a crop's verdict would
depend on the batch size. Crops whose top-2 margin within the label space is at most
:data:`NEAR_TIE` times the precision's epsilon times the larger logit are judged again in fp32,
and their verdicts replaced; :attr:`ShardMiner.rejudged` counts them (recorded per shard). A judge
holding ``clip.load``'s fp16 weights (the ``paper`` protocol's CLIP at fp16) is not re-judged: its
verdicts are meant to be the authors' arithmetic, near-ties and all, and the authors had no fp32
pass (:data:`imagenet_hard.mining_protocol.FP16_WEIGHTS`).

Each image is decoded once per job (:mod:`imagenet_hard.mining.decode`). A loader worker keeps
its last decode, and the pil backend's chunks are laid out so that all chunks of an image reach
the same worker (the DataLoader hands job ``k`` of a round to worker ``k % workers``); the first
chunk of an image that a later round may need brings its pixels back to the main process, which
sends them with that image's jobs in the later rounds (within :func:`decoded_budget`). The torch
backend takes one job per image and round, keeps the decoded image on the device for the later
rounds, and on CUDA decodes JPEGs there.

Exhaustive runs also judge the standard 1-crop (resize 256, centre crop 224:
:func:`imagenet_hard.zoom.standard_crop`), which is not one of the 324 transforms for most image
shapes, so the analyses can compare zoom with the usual view. It travels as the extra crop index
:data:`ONE_CROP`, counts in ``n_forward`` and is kept out of the mask, ``first_correct_crop`` and
``best_crop``/``top5``, so candidates do not depend on it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .. import devices, mining_protocol, zoom
from ..errors import InvalidValueError, MissingFileError
from ..labels import NUM_CLASSES
from ..pixels import ImageError
from . import decode, order
from .plan import ImageRow

#: Most crops one loader item carries (9 scales × 9 anchors, ~12 MB of uint8); bigger rounds are
#: cut into several items so shared memory per item stays small and workers share the work.
CHUNK = 81
#: Loader items each worker keeps ready, and the shared memory one takes (a full chunk of uint8
#: crops; a torch-backend item, one decoded photo, is of that order for 12-megapixel photos).
PREFETCH = 4
ITEM_BYTES = CHUNK * 3 * 224 * 224
CROP_BACKENDS = ("pil", "torch")
#: Loader crop index of the standard 1-crop (exhaustive runs only).
ONE_CROP = order.N_CROPS
#: A near-tie: a top-2 margin at most this many epsilons of the precision, relative to the
#: larger of the two logits (bf16: 2 × 2^-7 × 25 ≈ 0.4 for a CLIP logit of 25; fp16: 0.05).
NEAR_TIE = 2.0
#: Decoded images the main process keeps for an image's later rounds (early exit), in bytes
#: at most (:func:`decoded_budget`): device memory with --crops torch on CUDA, else host memory,
#: shared with the workers. Beyond it an image is decoded again in its next round.
DECODED_BYTES = 2 << 30


class CropJobs(Dataset):
    """Loader items: ``(pos, path, crop indices, pixels, keep)`` →
    ``(pos, crop indices, x, error, extra)``.

    ``pixels`` is the image already decoded (a later round: uint8 (H, W, 3) from the main
    process), or None: decode it, unless this worker's last job decoded the same path.

    ``pil``: ``x`` is the uint8 crops (pixel-identical to the paper's definition); ``extra`` the
    pixels when ``keep`` asks for them (the main process keeps them for later rounds).
    ``torch``: the job holds a whole round of the image; ``x`` is the image, uint8 (3, H, W), or
    with ``device_decode`` a JPEG's bytes (1-D uint8) for the main process to decode on the
    device; ``extra`` the standard 1-crop when the round asks for it and the worker decoded.
    """

    def __init__(self, home: Path, backend: str, device_decode: bool = False):
        self.home = Path(home)
        self.backend = backend
        self.device_decode = device_decode
        self._last: tuple[str, torch.Tensor] | None = None

    def _pixels(self, path: str, data: bytes | None = None) -> torch.Tensor:
        if self._last is None or self._last[0] != path:
            self._last = None  # the previous image's memory goes before the next one's arrives
            self._last = (path, decode.pixels(self.home / path if data is None else data))
        return self._last[1]

    def __getitem__(self, job):
        pos, path, crops, pix, keep = job
        data = None
        if self.backend == "torch" and pix is None and self.device_decode:
            data = decode.read_for_device(self.home / path)
            if isinstance(data, torch.Tensor):
                return pos, crops, data, None, None
        try:   # the one image rule (stored pixel order), as the source table and review see it
            if pix is None:
                pix = self._pixels(path, data)   # bytes the device will not take: read once
            else:   # the image's first job of a round: its later chunks come without pixels
                self._last = (path, pix)
        except MissingFileError:
            return pos, crops, None, f"{self.home / path}: the file is missing", None
        except ImageError as exc:
            return pos, crops, None, f"{self.home / path}: {exc.reason}", None
        if self.backend == "torch":
            std = zoom.standard_crop(_image(pix))[None] if ONE_CROP in crops else None
            return pos, crops, pix.permute(2, 0, 1), None, std
        if tuple(crops) == (ONE_CROP,):
            return pos, crops, zoom.standard_crop(_image(pix))[None], None, pix if keep else None
        return pos, crops, zoom.zoom_crops(_image(pix), crops), None, pix if keep else None

    def __len__(self):  # only the job sampler indexes this dataset
        return 0


def _image(pix: torch.Tensor):
    from PIL import Image

    return Image.fromarray(pix.numpy())


def routed(per_image: Sequence[Sequence], workers: int) -> list:
    """Jobs of several images (each image's in order) in the order that sends all of an image's
    jobs to one worker: the DataLoader gives job ``k`` of a round to worker ``k % workers``, so
    each block of ``workers`` images goes job-major. A last, shorter block spreads its images'
    jobs over workers (each may decode them again); correctness never depends on the layout."""
    w = max(1, int(workers))
    out = []
    for b in range(0, len(per_image), w):
        block = per_image[b:b + w]
        for c in range(max(len(jobs) for jobs in block)):
            out.extend(jobs[c] for jobs in block if c < len(jobs))
    return out


class JobList(Sampler):
    """A sampler whose jobs are replaced before each round (workers persist across rounds)."""

    def __init__(self):
        self.jobs: list = []

    def __iter__(self):
        return iter(list(self.jobs))

    def __len__(self):
        return len(self.jobs)


def decodes_on_device(device: torch.device, crops: str) -> bool:
    """Whether JPEGs are decoded on the device (nvJPEG, :mod:`~imagenet_hard.mining.decode`):
    where the crops are made on a CUDA device (``--crops torch``); the pil backend's crops are
    PIL's, from PIL's decode."""
    return torch.device(device).type == "cuda" and crops == "torch"


def decoded_budget(device: torch.device, crops: str, workers: int) -> int:
    """Bytes of decoded images kept between rounds: :data:`DECODED_BYTES`, or where they sit in
    /dev/shm (host-kept images that workers made or will be sent, tensors travelling through
    shared memory) half of what the loader's items in flight leave free there, so a small
    /dev/shm (containers: 64 MB) holds no kept image it has no room for."""
    on_device = crops == "torch" and torch.device(device).type == "cuda"
    if on_device or workers <= 0 or devices.tensor_transport().startswith("pipes"):
        return DECODED_BYTES
    free = devices.shared_memory_free()
    if free is None:
        return DECODED_BYTES
    return int(max(0, min(DECODED_BYTES, (free - workers * PREFETCH * ITEM_BYTES) // 2)))


def default_workers(device: torch.device) -> int:
    """CUDA: this rank's share of the CPUs less one, up to 16; CPU: one worker beside the judge."""
    cpus = devices.cpu_count() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if device.type == "cuda":
        return max(1, min(16, cpus - 1))
    return 1 if cpus > 1 else 0


@dataclass
class ShardState:
    """Per-image verdict state of one shard (numpy, updated per batch)."""

    n: int
    exhaustive: bool
    crop_order: order.CropOrder = field(default_factory=order.heuristic_order)

    def __post_init__(self):
        self.first_rank = np.full(self.n, order.N_CROPS, dtype=np.int32)
        self.n_forward = np.zeros(self.n, dtype=np.int32)
        self.best_conf = np.full(self.n, -1.0, dtype=np.float32)
        self.best_crop = np.full(self.n, -1, dtype=np.int32)
        self.top5 = np.zeros((self.n, 5), dtype=np.int64)
        self.top5_prob = np.zeros((self.n, 5), dtype=np.float32)
        self.mask = np.zeros((self.n, order.N_CROPS), dtype=bool) if self.exhaustive else None
        self.one_crop = np.zeros(self.n, dtype=bool) if self.exhaustive else None

    def settled(self) -> np.ndarray:
        return self.first_rank < order.N_CROPS

    def update(self, pos, crop, correct, conf, top5, top5_prob) -> None:
        """Fold one batch of per-crop results (numpy arrays) into the per-image state."""
        np.add.at(self.n_forward, pos, 1)
        one = crop == ONE_CROP
        if one.any():
            self.one_crop[pos[one]] = correct[one]
            keep = ~one
            pos, crop, correct, conf = pos[keep], crop[keep], correct[keep], conf[keep]
            top5, top5_prob = top5[keep], top5_prob[keep]
        rank = self.crop_order.rank[crop]
        np.minimum.at(self.first_rank, pos, np.where(correct, rank, order.N_CROPS))
        if self.mask is not None:
            self.mask[pos, crop] = correct
        # Most confident crop per image; ties go to the lower transform index.
        o = np.lexsort((crop, -conf, pos))
        first = np.r_[True, pos[o][1:] != pos[o][:-1]]
        w = o[first]
        p = pos[w]
        better = (conf[w] > self.best_conf[p]) | (
            (conf[w] == self.best_conf[p]) & (crop[w] < self.best_crop[p]))
        w, p = w[better], p[better]
        self.best_conf[p] = conf[w]
        self.best_crop[p] = crop[w]
        self.top5[p] = top5[w]
        self.top5_prob[p] = top5_prob[w]

    def rows(self, images: Sequence[ImageRow]) -> list[dict]:
        crop_order = self.crop_order.indices
        out = []
        for k, im in enumerate(images):
            first = int(self.first_rank[k])
            out.append({
                "id": im.id, "source": im.source, "origin": im.origin, "label": list(im.label),
                "label_space": im.label_space,
                "judged_label": list(im.judged_label), "judged_label_space": im.judged_space,
                "correct": first < order.N_CROPS,
                "first_correct_crop": crop_order[first] if first < order.N_CROPS else None,
                "n_forward": int(self.n_forward[k]),
                "best_crop": int(self.best_crop[k]),
                "top5": self.top5[k].tolist(),
                "top5_prob": self.top5_prob[k].tolist(),
                "n_correct": int(self.mask[k].sum()) if self.mask is not None else None,
                "mask": self.mask[k].tolist() if self.mask is not None else None,
                "one_crop_correct": bool(self.one_crop[k]) if self.one_crop is not None else None,
            })
        return out


class CropBuffer:
    """Crops waiting for a batch: parts of (pos, crop index, uint8 crops), split at batch size.

    Crops are held on ``device`` (the judge's, when the torch backend makes them there; the host
    otherwise) and moved there on arrival: the exhaustive 1-crop comes from a loader worker on the
    host even when the zoom crops are made on the GPU. Positions and crop indices stay on the
    host, where the verdict bookkeeping reads them.
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device("cpu" if device is None else device)
        self.parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.size = 0

    def add(self, pos: int, crops: Sequence[int], x: torch.Tensor) -> None:
        if x.device != self.device:
            x = x.to(self.device, non_blocking=True)
        k = x.shape[0]
        self.parts.append((torch.full((k,), pos, dtype=torch.long),
                           torch.as_tensor(crops, dtype=torch.long), x))
        self.size += k

    def take(self, n: int, out: torch.Tensor | None = None):
        """Remove the first ``n`` crops: (pos, crop, x) with ``x`` written into ``out`` if given."""
        taken, left, need = [], [], n
        for part in self.parts:
            if need <= 0:
                left.append(part)
                continue
            k = part[0].shape[0]
            if k <= need:
                taken.append(part)
            else:
                taken.append(tuple(t[:need] for t in part))
                left.append(tuple(t[need:] for t in part))
            need -= min(k, need)
        self.parts, self.size = left, self.size - n
        pos = torch.cat([t[0] for t in taken])
        crop = torch.cat([t[1] for t in taken])
        xs = [t[2] for t in taken]
        x = torch.cat(xs, out=out[:n]) if out is not None else torch.cat(xs)
        return pos, crop, x


class VerdictCopies:
    """A batch's verdict tensors, on their way to the host.

    On CUDA (``asynchronous``): copied with ``non_blocking=True`` into one of two sets of pinned
    buffers, an ``event`` recorded after the copies; :meth:`finish` waits on that event only. Two
    sets suffice because a batch is finished before the batch after next starts (one batch lag).
    The CPU twin: the tensors are already on the host.
    """

    def __init__(self, device: torch.device, batch_size: int, asynchronous: bool | None = None,
                 event=None):
        self.asynchronous = device.type == "cuda" if asynchronous is None else asynchronous
        self.event = event or (torch.cuda.Event if self.asynchronous else None)
        pinned = device.type == "cuda"
        n = int(batch_size)
        self.sets = [(torch.empty(n, dtype=torch.bool, pin_memory=pinned),
                      torch.empty(n, dtype=torch.float32, pin_memory=pinned),
                      torch.empty((n, 5), dtype=torch.long, pin_memory=pinned),
                      torch.empty((n, 5), dtype=torch.float32, pin_memory=pinned),
                      torch.empty(n, dtype=torch.bool, pin_memory=pinned))
                     for _ in range(2)] if self.asynchronous else []
        self._k = 0

    def start(self, tensors: Sequence[torch.Tensor]):
        """Begin copying (correct, conf, top5, top5_prob, near); a handle for :meth:`finish`."""
        if not self.asynchronous:
            return [t.cpu() for t in tensors], None
        bufs = self.sets[self._k % 2]
        self._k += 1
        out = [b[:t.shape[0]].copy_(t, non_blocking=True) for b, t in zip(bufs, tensors,
                                                                           strict=True)]
        event = self.event()
        event.record()
        return out, event

    @staticmethod
    def finish(handle) -> list[np.ndarray]:
        out, event = handle
        if event is not None:
            event.synchronize()
        return [t.numpy() for t in out]


class ShardMiner:
    """Judges shards with one judge; holds the loader workers and the label-space masks."""

    def __init__(self, judge, spaces: dict[str, tuple[int, ...]], home: Path,
                 device: torch.device, exhaustive: bool = False, batch_size: int = 256,
                 workers: int | None = None, crops: str = "pil",
                 crop_order: order.CropOrder | None = None, device_decode: bool | None = None):
        if crops not in CROP_BACKENDS:
            raise InvalidValueError(f"crops must be one of {', '.join(CROP_BACKENDS)}, got {crops!r}")
        self.judge, self.device, self.exhaustive = judge, device, exhaustive
        self.batch_size, self.backend = int(batch_size), crops
        self.crop_order = crop_order or order.heuristic_order()
        self.rounds = [_chunks(r) for r in self.crop_order.rounds(exhaustive)]
        if exhaustive:
            self.rounds[0].append((ONE_CROP,))
        self.space_names = sorted(spaces)
        masks = torch.zeros((len(self.space_names), NUM_CLASSES), dtype=torch.bool)
        for k, name in enumerate(self.space_names):
            masks[k, list(spaces[name])] = True
        self.space_masks = masks.to(device)
        workers = default_workers(device) if workers is None else int(workers)
        devices.check_shared_memory(workers, ITEM_BYTES, PREFETCH)
        self.workers = workers
        self.decoded_budget = decoded_budget(device, crops, workers)
        self.device_decode = (decodes_on_device(device, crops) if device_decode is None
                              else bool(device_decode))
        self.jobs = JobList()
        self.loader = DataLoader(CropJobs(home, crops, self.device_decode), sampler=self.jobs,
                                 batch_size=None,
                                 num_workers=workers, persistent_workers=workers > 0,
                                 prefetch_factor=PREFETCH if workers > 0 else None)
        # Pinned double buffers for host crops (the one-batch lag makes reuse safe); the torch
        # backend's crops are already on the device.
        pinned = device.type == "cuda" and crops == "pil"
        self.staging = [torch.empty((self.batch_size, 3, zoom.CROP, zoom.CROP), dtype=torch.uint8,
                                    pin_memory=pinned) for _ in range(2)] if pinned else None
        self.copies = VerdictCopies(device, self.batch_size)
        self.math = judge_math(judge)
        # Only autocast judges: one with its own fp16 weights has no autocast (amp_dtype None).
        amp = getattr(judge, "amp_dtype", None)
        self.tie_resolution = NEAR_TIE * torch.finfo(amp).eps if amp is not None else None
        self.forward_passes = 0
        self.rejudged = 0
        self._flushes = 0

    def mine_shard(self, images: Sequence[ImageRow]) -> list[dict]:
        """Judge every image of a shard; the shard's rows (see ``SHARD_SCHEMA``)."""
        state = ShardState(len(images), self.exhaustive, self.crop_order)
        hot = torch.zeros((len(images), NUM_CLASSES), dtype=torch.bool)
        for k, im in enumerate(images):
            hot[k, list(im.judged_label)] = True
        space = np.array([self.space_names.index(im.judged_space) for im in images],
                         dtype=np.int64)
        # Built on the host, moved once per shard (not a torch.tensor(list, device=...) per use).
        self._hot = hot.to(self.device, non_blocking=True)
        self._space = torch.from_numpy(space).to(self.device, non_blocking=True)
        active = np.arange(len(images))
        self._decoded, self._decoded_bytes = {}, 0
        try:
            for r, chunks in enumerate(self.rounds):
                if active.size == 0:
                    break
                self._run_round(state, images, active, chunks, keep=r + 1 < len(self.rounds))
                active = active[~state.settled()[active]]
                self._forget(set(active.tolist()))
        finally:
            self._forget(set())
        return state.rows(images)

    def _keep(self, pos: int, pix: torch.Tensor) -> None:
        """Keep an image's decoded pixels for its later rounds, within :data:`DECODED_BYTES`."""
        size = pix.numel() * pix.element_size()
        if pos not in self._decoded and self._decoded_bytes + size <= self.decoded_budget:
            self._decoded[pos] = pix
            self._decoded_bytes += size

    def _forget(self, active: set[int]) -> None:
        """Drop the decoded images no later round needs (settled, or the shard is done)."""
        for pos in [p for p in self._decoded if p not in active]:
            pix = self._decoded.pop(pos)
            self._decoded_bytes -= pix.numel() * pix.element_size()

    def _run_round(self, state: ShardState, images, active, chunks, keep: bool) -> None:
        buf = CropBuffer(self.device if self.backend == "torch" else None)
        self._pending = None
        with torch.inference_mode():
            if self.backend == "torch":
                self._torch_round(state, images, active, chunks, keep, buf)
            else:
                self._pil_round(state, images, active, chunks, keep, buf)
            if buf.size:
                self._pending = self._launch(buf, buf.size, self._pending, state)
            self._resolve(self._pending, state)
            self._pending = None

    def _fill(self, buf: CropBuffer, state: ShardState) -> None:
        while buf.size >= self.batch_size:
            self._pending = self._launch(buf, self.batch_size, self._pending, state)

    def _pil_round(self, state, images, active, chunks, keep, buf) -> None:
        """Workers make the crops, chunk by chunk; an image's pixels travel with its first job
        of a round once decoded (the worker keeps them for the image's later chunks, which
        :func:`routed` sends it; through pipes each job's pixels are pickled whole), and the
        first chunk of a newly decoded image brings them back (``keep``)."""
        per_image = []
        for p in active:
            p = int(p)
            pix = self._decoded.get(p)
            per_image.append([(p, images[p].path, c, pix if k == 0 else None,
                               keep and pix is None and k == 0)
                              for k, c in enumerate(chunks)])
        self.jobs.jobs = routed(per_image, self.workers)
        for pos, crops, x, err, pix in self.loader:
            if err is not None:
                raise MissingFileError(f"cannot read image {err}; rebuild its source")
            if pix is not None:
                self._keep(pos, pix)
            buf.add(pos, crops, x)
            self._fill(buf, state)

    def _torch_round(self, state, images, active, chunks, keep, buf) -> None:
        """One job per image: a worker decodes it (or reads a JPEG's bytes for the device); the
        crops are made here on the device. Images kept from an earlier round skip the loader."""
        crops = tuple(i for c in chunks for i in c)
        kept = [int(p) for p in active if int(p) in self._decoded]
        self.jobs.jobs = [(int(p), images[p].path, crops, None, False) for p in active
                          if int(p) not in self._decoded]
        loaded = iter(self.loader) if self.jobs.jobs else iter(())  # workers start meanwhile
        for pos in kept:
            self._torch_crops(pos, self._decoded[pos], crops, None, buf, state)
        for pos, crops_, x, err, std in loaded:
            if err is not None:
                raise MissingFileError(f"cannot read image {err}; rebuild its source")
            if x.dim() == 1:  # a JPEG's bytes: decode on the device
                try:
                    img = decode.decode_on_device(x, self.device)
                except ImageError as exc:
                    raise MissingFileError(f"cannot read image {images[pos].path}: "
                                           f"{exc.reason}; rebuild its source") from None
            else:
                img = x.to(self.device, non_blocking=True)
            if keep:
                self._keep(pos, img)
            self._torch_crops(pos, img, crops_, std, buf, state)

    def _torch_crops(self, pos: int, img: torch.Tensor, crops, std, buf, state) -> None:
        zoom_idx = tuple(i for i in crops if i != ONE_CROP)
        for chunk in _chunks(zoom_idx):
            buf.add(pos, chunk, zoom.zoom_crops_torch([img], device=self.device, indices=chunk)[0])
            self._fill(buf, state)
        if len(zoom_idx) < len(crops):
            buf.add(pos, (ONE_CROP,), std if std is not None else
                    zoom.standard_crop_torch(img)[None])
            self._fill(buf, state)

    def _launch(self, buf: CropBuffer, n: int, pending, state: ShardState):
        """Start judging the next ``n`` crops, then resolve the previous batch (one batch lag)."""
        out = None
        if self.staging is not None:
            out = self.staging[self._flushes % 2]
        self._flushes += 1
        pos, crop, x = buf.take(n, out)
        x = x.to(self.device, non_blocking=True)
        pos_d = pos.to(self.device, non_blocking=True)
        logits = self.judge(x)
        result = verdicts_and_ties(logits.float(), self._space[pos_d], self.space_masks,
                                   self._hot[pos_d], self.tie_resolution)
        handle = self.copies.start(result)
        self.forward_passes += n
        self._resolve(pending, state)
        return pos, crop, x, pos_d, handle

    def _resolve(self, pending, state: ShardState) -> None:
        if pending is None:
            return
        pos, crop, x, pos_d, handle = pending
        correct, conf, top5, top5_prob, near = self.copies.finish(handle)
        if near.any():
            correct, conf, top5, top5_prob = self._rejudge(
                np.flatnonzero(near), x, pos_d, (correct, conf, top5, top5_prob))
        state.update(pos.numpy(), crop.numpy(), correct, conf, top5, top5_prob)

    def _rejudge(self, idx: np.ndarray, x: torch.Tensor, pos_d: torch.Tensor, verdicts):
        """The verdicts with those of near-tied crops ``idx`` replaced by fp32 ones (rare: the
        synchronous copy here costs nothing on the batches without near-ties)."""
        sel = torch.from_numpy(idx).to(x.device)
        logits = judge_fp32(self.judge, x[sel])
        again = judge_verdicts(logits.float(), self._space[pos_d[sel]], self.space_masks,
                               self._hot[pos_d[sel]])
        out = [v.copy() for v in verdicts]
        for arr, new in zip(out, again, strict=True):
            arr[idx] = new.cpu().numpy()
        self.rejudged += len(idx)
        return out

    def close(self) -> None:
        self.jobs.jobs = []
        self.loader = None  # persistent workers exit when the loader is collected


def judge_math(judge) -> str:
    """What the judge computes in (recorded per shard): the run record's rule
    (:func:`imagenet_hard.mining_protocol.judge_math`), after TF32 goes off on CUDA, where
    cuDNN's default would make an fp32 judge's convolutions TF32, and the fp32 re-judging of a
    low-precision judge's near-ties too. A judge that declares no precision (a plain callable:
    the run records ``own``) is given fp32 crops, so its shards say ``fp32``."""
    devices.strict_fp32(getattr(judge, "device", torch.device("cpu")))
    math = mining_protocol.judge_math(judge)
    return "fp32" if math == mining_protocol.OWN else math


def judge_fp32(judge, crops: torch.Tensor) -> torch.Tensor:
    """``judge(crops)`` with its autocast off: the fp32 logits of its fp32 weights."""
    saved = judge.amp_dtype
    judge.amp_dtype = None
    try:
        return judge(crops)
    finally:
        judge.amp_dtype = saved


def judge_verdicts(logits: torch.Tensor, space: torch.Tensor, space_masks: torch.Tensor,
                   label_hot: torch.Tensor):
    """Per-crop verdicts from raw (N, 1000) logits, within each crop's label space.

    ``space`` (N,) indexes ``space_masks`` (n_spaces, 1000); ``label_hot`` (N, 1000) marks each
    crop's image's label set. A crop is correct when its top-1 within the space is in the set.
    Returns (correct, confidence of that top-1, top-5 classes, top-5 probabilities), all
    softmax-ed within the space.
    """
    return verdicts_and_ties(logits, space, space_masks, label_hot)[:4]


def verdicts_and_ties(logits: torch.Tensor, space: torch.Tensor, space_masks: torch.Tensor,
                      label_hot: torch.Tensor, tie_resolution: float | None = None):
    """:func:`judge_verdicts` and a fifth tensor: near-ties, crops whose top-2 margin within
    the space is at most ``tie_resolution`` × the larger of the two logits (none without one)."""
    if logits.dim() != 2 or logits.shape[1] != NUM_CLASSES:
        raise InvalidValueError(f"a judge must return (N, {NUM_CLASSES}) logits, got "
                                f"{tuple(logits.shape)}")
    masked = logits.masked_fill(~space_masks[space], -math.inf)
    top1 = masked.argmax(dim=1, keepdim=True)
    probs = masked.softmax(dim=1)
    top5_prob, top5 = probs.topk(5, dim=1)
    correct = label_hot.gather(1, top1).squeeze(1)
    if tie_resolution is None:
        near = torch.zeros_like(correct)
    else:
        top2 = masked.topk(2, dim=1).values
        near = ((top2[:, 0] - top2[:, 1]) <= tie_resolution * top2.abs().amax(dim=1)) \
            & torch.isfinite(top2[:, 1])  # a one-class space has no runner-up
    return correct, probs.gather(1, top1).squeeze(1), top5, top5_prob, near


def _chunks(crops: tuple[int, ...]) -> list[tuple[int, ...]]:
    """A round's crops in transform order, cut into loader items of at most :data:`CHUNK`."""
    ordered = sorted(crops)
    return [tuple(ordered[i:i + CHUNK]) for i in range(0, len(ordered), CHUNK)]
