"""Each image is decoded once per mining job (not once per 81-crop chunk or per round), and
--crops torch on CUDA decodes JPEGs on the device with the CPU decode as twin and fallback.

Decodes are counted as ``PIL.Image.open`` calls while a shard is mined in this process
(``workers=0``); the device decoder is faked on the CPU by torchvision's libjpeg decode."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
import torch
from mining_support import SynthImage, make_source
from PIL import Image

from imagenet_hard import zoom
from imagenet_hard.errors import MissingFileError
from imagenet_hard.judges.base import Judge
from imagenet_hard.mining import decode, engine, order
from imagenet_hard.mining.engine import ShardMiner
from imagenet_hard.mining.plan import ImageRow

LABEL = 7
SPACES = {"in1k": tuple(range(1000))}


class NeverJudge(Judge):
    """Wrong on every crop: early exit runs all five rounds."""

    def __init__(self):
        super().__init__("never", device="cpu", precision="fp32")

    def __call__(self, crops):  # no normalisation: these tests count decodes, not pixels
        logits = torch.zeros((crops.shape[0], 1000))
        logits[:, LABEL + 1] = 1.0
        return logits


@pytest.fixture
def cheap_crops(monkeypatch):
    """Crop makers that cost nothing (decode counts do not depend on the pixels); each records
    the images it was given, by image size."""
    seen: dict = {}

    def crops(image, indices=None):
        seen.setdefault(("pil", image.size), np.array(image))
        return torch.zeros((len(indices), 3, 224, 224), dtype=torch.uint8)

    def crops_torch(images, device=None, indices=None):
        seen.setdefault(("torch", tuple(images[0].shape)), images[0].clone())
        return torch.zeros((1, len(indices), 3, 224, 224), dtype=torch.uint8)

    monkeypatch.setattr(zoom, "zoom_crops", crops)
    monkeypatch.setattr(zoom, "zoom_crops_torch", crops_torch)
    monkeypatch.setattr(zoom, "standard_crop",
                        lambda image: torch.zeros((3, 224, 224), dtype=torch.uint8))
    return seen


def _rows(home, rows):
    return [ImageRow(r.id, "synth", r.origin, r.path, tuple(r.label), r.label_space)
            for r in rows]


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    home = tmp_path_factory.mktemp("decode_home")
    rows = make_source(home, "synth", [SynthImage("a.png", (40, 30), (LABEL,), 1),
                                       SynthImage("b.png", (33, 47), (LABEL,), 2)])
    return home, _rows(home, rows)


def _count_opens(monkeypatch) -> Counter:
    opened: Counter = Counter()
    real = Image.open

    def counting(fp, *a, **kw):
        opened[fp.getvalue()[:64] if isinstance(fp, io.BytesIO) else str(fp)] += 1
        return real(fp, *a, **kw)

    monkeypatch.setattr(Image, "open", counting)
    return opened


@pytest.mark.parametrize("crops", ["pil", "torch"])
@pytest.mark.parametrize("exhaustive", [True, False])
def test_each_image_is_decoded_once_per_job(pngs, monkeypatch, cheap_crops, crops, exhaustive):
    """Exhaustive: 4 chunks of 81 and the 1-crop were 5 decodes per image; early exit to the
    last round (1 + 1 + 1 + 1 + 3 chunks) was 7. Now 1 either way."""
    home, rows = pngs
    miner = ShardMiner(NeverJudge(), SPACES, home, torch.device("cpu"), exhaustive=exhaustive,
                       batch_size=100, workers=0, crops=crops)
    opened = _count_opens(monkeypatch)
    out = miner.mine_shard(rows)
    want = order.N_CROPS + 1 if exhaustive else order.N_CROPS
    assert [r["n_forward"] for r in out] == [want, want]
    assert sorted(opened.values()) == [1, 1]
    assert miner._decoded == {} and miner._decoded_bytes == 0


def test_kept_images_leave_room_in_a_small_dev_shm(monkeypatch):
    from imagenet_hard import devices

    mib = 1 << 20
    loader = 2 * engine.PREFETCH * engine.ITEM_BYTES
    monkeypatch.setattr(devices, "shared_memory_free", lambda: loader + 64 * mib)
    assert engine.decoded_budget(torch.device("cpu"), "pil", 2) == 32 * mib
    assert engine.decoded_budget(torch.device("cpu"), "torch", 2) == 32 * mib
    monkeypatch.setattr(devices, "shared_memory_free", lambda: 64 * mib)  # not even the loader
    assert engine.decoded_budget(torch.device("cpu"), "pil", 2) == 0
    # on the device, in the process's own memory, or through pipes: the full budget
    assert engine.decoded_budget(torch.device("cuda"), "torch", 2) == engine.DECODED_BYTES
    assert engine.decoded_budget(torch.device("cpu"), "pil", 0) == engine.DECODED_BYTES
    monkeypatch.setattr(devices, "tensor_transport", lambda: "pipes (/dev/shm: 64 MiB free)")
    assert engine.decoded_budget(torch.device("cpu"), "pil", 2) == engine.DECODED_BYTES


def test_over_the_budget_an_image_is_decoded_again_in_its_next_round(tmp_path, monkeypatch,
                                                                     cheap_crops):
    rows = _rows(tmp_path, make_source(tmp_path, "synth", [
        SynthImage(f"{k}.png", (40, 30), (LABEL,), k) for k in range(3)]))
    monkeypatch.setattr(engine, "DECODED_BYTES", 40 * 30 * 3)  # room for one image
    miner = ShardMiner(NeverJudge(), SPACES, tmp_path, torch.device("cpu"), batch_size=100,
                       workers=0)
    opened = _count_opens(monkeypatch)
    miner.mine_shard(rows)
    # the worker's last decode still serves the next job of the same image
    assert sorted(opened.values()) == [1, len(order.ROUND_SIZES), len(order.ROUND_SIZES)]


def test_two_worker_processes_decode_each_image_once(tmp_path, monkeypatch, cheap_crops):
    """Real (forked) workers, early exit to the last round: the pixels go to the main process
    and back through shared memory between rounds, and an image's chunks meet its worker's last
    decode. Decodes are counted in a file, which every process appends to."""
    import os

    rows = _rows(tmp_path, make_source(tmp_path, "synth", [
        SynthImage(f"{k}.png", (40 + k, 30), (LABEL,), k) for k in range(2)]))
    log = tmp_path / "opens.log"
    log.write_text("")
    real = Image.open

    def counting(fp, *a, **kw):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(fp, *a, **kw)

    monkeypatch.setattr(Image, "open", counting)
    from imagenet_hard import devices

    # these items are a few kB: no /dev/shm check (a CI container's 64 MB would refuse the
    # engine's estimate for 12-megapixel photos) and the full budget for kept images
    monkeypatch.setattr(devices, "shared_memory_free", lambda: None)
    miner = ShardMiner(NeverJudge(), SPACES, tmp_path, torch.device("cpu"), batch_size=700,
                       workers=2)
    try:
        out = miner.mine_shard(rows)
    finally:
        miner.close()
    assert [r["n_forward"] for r in out] == [order.N_CROPS] * 2
    pids = log.read_text().split()
    assert len(pids) == len(rows) and str(os.getpid()) not in pids


def test_routed_sends_all_of_an_images_jobs_to_one_worker():
    per_image = [[(p, c) for c in range(3)] for p in range(5)]
    for workers in (0, 1, 2, 3):
        jobs = engine.routed(per_image, workers)
        assert sorted(jobs) == sorted(j for js in per_image for j in js)
        w = max(1, workers)
        full = len(per_image) // w * w  # the last, shorter block may spread
        owner = {}
        for k, (p, _c) in enumerate(jobs):
            if p < full:
                assert owner.setdefault(p, k % w) == k % w


# Device decoding ---------------------------------------------------------------------------

def _jpeg(mode: str, size=(48, 36), seed=0, **save) -> bytes:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    rgb.convert(mode).save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def test_gpu_jpeg_takes_only_what_nvjpeg_decodes_like_the_image_rule():
    assert decode.gpu_jpeg(_jpeg("RGB"))
    assert not decode.gpu_jpeg(_jpeg("RGB", progressive=True))  # the workers decode it
    assert decode.jpeg_frame(_jpeg("RGB", progressive=True))[0] == 0xC2
    assert not decode.gpu_jpeg(_jpeg("L"))       # greyscale: PIL's conversion
    assert not decode.gpu_jpeg(_jpeg("CMYK"))    # CMYK (Adobe marker): PIL's conversion
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    assert not decode.gpu_jpeg(png.getvalue())
    assert not decode.gpu_jpeg(b"\xff\xd8\xff")   # truncated header
    assert not decode.gpu_jpeg(b"")


def test_gpu_jpeg_refuses_a_header_past_pils_pixel_limit(monkeypatch):
    """A bomb's header must not reach the device decoder: the CPU path refuses it in words."""
    data = _jpeg("RGB")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 48 * 36 // 2 - 1)
    assert not decode.gpu_jpeg(data)


def test_jpeg_frame_survives_hostile_lengths():
    for data in (b"\xff\xd8\xff\xe0\x00\x01", b"\xff\xd8\xff\xe0\xff\xff" + b"\0" * 10,
                 b"\xff\xd8\xff\xc0\x00\x03\x08", b"\xff\xd8" + b"\xff" * 100):
        assert decode.jpeg_frame(data) is None


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """One RGB JPEG (device), one greyscale JPEG, one PNG and one CMYK JPEG (CPU)."""
    home = tmp_path_factory.mktemp("jpeg_home")
    rows = make_source(home, "synth", [SynthImage(f"{k}.png", (40 + k, 30), (LABEL,), k)
                                       for k in range(4)])
    for k, (row, mode) in enumerate(zip(rows, ("RGB", "L", None, "CMYK"), strict=True)):
        if mode is not None:
            (home / row.path).write_bytes(_jpeg(mode, (40 + k, 30), seed=k))
    return home, _rows(home, rows)


def _mine(home, rows, device_decode):
    miner = ShardMiner(NeverJudge(), SPACES, home, torch.device("cpu"), exhaustive=True,
                       batch_size=400, workers=0, crops="torch", device_decode=device_decode)
    return miner.mine_shard(rows)


def test_device_decode_takes_rgb_jpegs_and_leaves_the_rest_to_the_cpu(jpegs, monkeypatch,
                                                                       cheap_crops):
    """The device decoder (faked: libjpeg through torchvision) gets the RGB JPEG only, and the
    crops are made from the very pixels the CPU decode gives; the 1-crop of a device-decoded
    image is made on the device (standard_crop_torch), the others' by the worker."""
    home, rows = jpegs
    from torchvision.io import ImageReadMode, decode_jpeg

    seen, std = [], []

    def fake(data, device):
        seen.append(len(data))
        return decode_jpeg(data, mode=ImageReadMode.RGB).to(device)

    monkeypatch.setattr(decode, "device_decode", fake)
    monkeypatch.setattr(zoom, "standard_crop_torch",
                        lambda img: std.append(img.shape) or torch.zeros((3, 224, 224),
                                                                         dtype=torch.uint8))
    on_device = _mine(home, rows, True)
    images = dict(cheap_crops)
    cheap_crops.clear()
    assert on_device == _mine(home, rows, False)
    assert seen == [(home / rows[0].path).stat().st_size] and std == [(3, 30, 40)]
    assert images.keys() == cheap_crops.keys()
    assert all(torch.equal(images[k], cheap_crops[k]) for k in images)
    assert not ShardMiner(NeverJudge(), SPACES, home, torch.device("cpu"), workers=0,
                          crops="torch").device_decode  # auto: CUDA only


def test_jpegs_are_decoded_on_the_device_only_where_torch_makes_crops_on_cuda():
    assert engine.decodes_on_device(torch.device("cuda", 0), "torch")
    assert not engine.decodes_on_device(torch.device("cuda"), "pil")
    assert not engine.decodes_on_device(torch.device("cpu"), "torch")
    assert not engine.decodes_on_device(torch.device("meta"), "torch")


def test_the_device_decoder_allocates_on_a_side_stream_handed_to_the_judging_one():
    """torchvision's CUDA decoder writes its output from its own stream without waiting for
    the caller's (pytorch/vision#9606): it runs under a stream of its own, and its output is
    recorded on the judging stream. A recording stand-in for torch.cuda checks the order."""
    log = []

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_stream(self, other):
            log.append(("wait", self.name, other.name))

    class Ctx:
        def __init__(self, stream):
            self.stream = stream

        def __enter__(self):
            log.append(("enter", self.stream.name))

        def __exit__(self, *exc):
            log.append(("exit", self.stream.name))

    class Out:
        def record_stream(self, stream):
            log.append(("record", stream.name))

    class FakeCuda:
        made = 0

        def Stream(self, device):
            FakeCuda.made += 1
            return Stream("side")

        def current_stream(self, device):
            return Stream("judging")

        def stream(self, stream):
            return Ctx(stream)

    cuda, device = FakeCuda(), torch.device("meta")  # meta: a device no other test decodes on
    decode._SIDE_STREAMS.pop(device, None)
    for _ in range(2):
        out = decode.on_side_stream(lambda: log.append(("decode",)) or Out(), device, cuda)
        assert isinstance(out, Out)
    assert FakeCuda.made == 1  # one side stream per device
    assert log[:5] == [("enter", "side"), ("decode",), ("exit", "side"),
                       ("wait", "judging", "side"), ("record", "judging")]
    decode._SIDE_STREAMS.pop(device, None)


def test_a_device_decode_failure_falls_back_to_the_cpu(jpegs, monkeypatch, cheap_crops):
    home, rows = jpegs

    def broken(data, device):
        raise RuntimeError("nvjpeg: unsupported")

    monkeypatch.setattr(decode, "device_decode", broken)
    img = decode.decode_on_device(decode.read_for_device(home / rows[0].path),
                                  torch.device("cpu"))
    assert torch.equal(img, decode.pixels(home / rows[0].path).permute(2, 0, 1))
    assert _mine(home, rows[:1], True) == _mine(home, rows[:1], False)


def test_a_broken_jpeg_is_one_error_naming_it(tmp_path, monkeypatch, cheap_crops):
    rows = make_source(tmp_path, "synth", [SynthImage("x.png", (40, 30), (LABEL,), 0)])
    good = _jpeg("RGB", (40, 30))
    (tmp_path / rows[0].path).write_bytes(good[:len(good) // 3])  # header intact, scan cut

    def broken(data, device):
        raise RuntimeError("nvjpeg: bitstream")

    monkeypatch.setattr(decode, "device_decode", broken)
    with pytest.raises(MissingFileError, match="cannot read image sources/synth/x.png"):
        _mine(tmp_path, _rows(tmp_path, rows), True)


def test_standard_crop_torch_is_within_two_grey_levels_of_pils():
    rng = np.random.default_rng(3)
    for size in ((300, 260), (257, 400), (256, 256)):
        rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        ref = zoom.standard_crop(rgb).int()
        ours = zoom.standard_crop_torch(torch.from_numpy(np.array(rgb)).permute(2, 0, 1)).int()
        assert ours.shape == ref.shape and (ours - ref).abs().max() <= 2


def test_kept_pixels_ride_with_one_job_of_an_image_a_round(pngs, monkeypatch, cheap_crops):
    """The main process sends a kept image with its first job of a round only, not with every
    chunk (through pipes, each job's pixels were pickled whole); the worker's last decode serves
    the image's later chunks, so each image is still decoded once."""
    home, rows = pngs
    rounds = []
    real = engine.routed
    monkeypatch.setattr(engine, "routed", lambda per_image, w: rounds.append(per_image) or
                        real(per_image, w))
    miner = ShardMiner(NeverJudge(), SPACES, home, torch.device("cpu"), batch_size=100,
                       workers=0)
    opened = _count_opens(monkeypatch)
    miner.mine_shard(rows)
    assert sorted(opened.values()) == [1, 1]
    assert max(len(jobs) for per_image in rounds for jobs in per_image) > 1  # a round of chunks
    for per_image in rounds[1:]:                     # after the first round, every image is kept
        for jobs in per_image:
            assert [job[3] is not None for job in jobs] == [True] + [False] * (len(jobs) - 1)


def test_a_file_the_device_will_not_take_is_read_once(jpegs, monkeypatch, cheap_crops):
    """The worker read every file for the device check, then again to decode one the device
    would not take (greyscale, PNG, CMYK); it now decodes the bytes it has read."""
    from collections import Counter
    from pathlib import Path

    home, rows = jpegs
    from torchvision.io import ImageReadMode, decode_jpeg

    monkeypatch.setattr(decode, "device_decode", lambda data, device: decode_jpeg(
        data, mode=ImageReadMode.RGB).to(device))
    reads: Counter = Counter()
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.update([self.name]) or real(self))
    _mine(home, rows, True)
    assert sorted(reads.values()) == [1, 1, 1, 1]
