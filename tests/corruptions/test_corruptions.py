"""``imagenet_hard.corruptions``: the 19 ImageNet-C corruptions, reference backend, seeding."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenet_hard import corruptions as C
from imagenet_hard.errors import ImHardError, InvalidValueError, UnknownNameError

RANDOM = [n for n in C.NAMES if n not in C.DETERMINISTIC]


def photo(size: tuple[int, int] | None = None) -> np.ndarray:
    """scikit-image's coffee (600×400, a real non-square photo), optionally resized to (w, h)."""
    from skimage import data

    im = Image.fromarray(data.coffee())
    return np.asarray(im if size is None else im.resize(size, Image.BICUBIC))


SMALL = photo((150, 100))


def test_names_and_groups_follow_design():
    assert len(C.NAMES) == 19 and len(set(C.NAMES)) == 19
    assert C.NAMES[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert C.BENCHMARK + C.HELD_OUT == C.NAMES
    assert set(C.HELD_OUT) == {"speckle_noise", "gaussian_blur", "spatter", "saturate"}
    assert set(C.PAPER_SIX) <= set(C.BENCHMARK) and len(C.PAPER_SIX) == 6
    assert set(C.SEVERITY_PARAMS) == set(C.NAMES)
    assert all(len(v) == 5 for v in C.SEVERITY_PARAMS.values())


def _reference_lists() -> dict[str, list]:
    """The ``c = [...]`` (or ``alpha = [...]``) severity list in each reference function."""
    from imagecorruptions import corruptions as module

    out = {}
    for name in C.NAMES:
        tree = ast.parse(inspect.getsource(getattr(module, name)))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript)
                    and isinstance(node.value.value, ast.List)
                    and node.targets[0].id in ("c", "alpha")):
                expr = ast.Expression(node.value.value)
                out[name] = eval(compile(expr, name, "eval"), {"np": np, "__builtins__": {}})
    return out


def test_severity_params_match_the_installed_reference():
    lists = _reference_lists()
    assert set(lists) == set(C.NAMES)
    for name in C.NAMES:
        for sev in C.SEVERITIES:
            ref, ours = lists[name][sev - 1], C.SEVERITY_PARAMS[name][sev - 1]
            if name == "zoom_blur":
                np.testing.assert_allclose(ref, C.zoom_factors(sev))
            else:
                assert tuple(np.atleast_1d(ref)) == pytest.approx(tuple(np.atleast_1d(ours))), \
                    (name, sev)


@pytest.mark.parametrize("name", C.NAMES)
@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_every_corruption_and_severity(name, severity):
    out = C.corrupt(SMALL, name, severity, seed=11)
    assert out.dtype == np.uint8 and out.shape == SMALL.shape
    assert out.flags.c_contiguous
    again = C.corrupt(SMALL, name, severity, seed=11)
    assert again.tobytes() == out.tobytes()
    other = C.corrupt(SMALL, name, severity, seed=12)
    if name in C.DETERMINISTIC:
        assert other.tobytes() == out.tobytes()
    else:
        assert other.tobytes() != out.tobytes()
    assert SMALL.tobytes() == photo((150, 100)).tobytes()  # the input is not modified


@pytest.mark.parametrize("name", C.NAMES)
def test_same_bytes_as_the_package_seeded_globally(name):
    """A private RandomState(seed) draws what np.random.seed(seed) would: the reference as is."""
    import imagecorruptions

    kwargs = {"seed": 5} if name in ("impulse_noise", "glass_blur") else {}
    np.random.seed(5)
    expected = imagecorruptions.corrupt(SMALL, 3, name, **kwargs)
    assert C.corrupt(SMALL, name, 3, seed=5).tobytes() == expected.tobytes()


@pytest.mark.parametrize("name", C.NAMES)
def test_full_size_photo(name):
    img = photo()  # 600×400, as scikit-image ships it
    out = C.corrupt(img, name, 5, seed=1)
    assert out.shape == (400, 600, 3) and out.dtype == np.uint8
    assert out.tobytes() != img.tobytes()


@pytest.mark.parametrize("name", C.NAMES)
@pytest.mark.parametrize("size", [(32, 32), (33, 61), (200, 32)])
def test_smallest_and_odd_sizes(name, size):
    img = photo(size)
    for severity in (1, 5):
        out = C.corrupt(img, name, severity, seed=3)
        assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fog", "frost", "snow", "glass_blur", "impulse_noise",
                                  "elastic_transform", "motion_blur"])
def test_large_image(name):
    img = photo((2000, 1500))
    out = C.corrupt(img, name, 3, seed=2)
    assert out.shape == (1500, 2000, 3) and out.dtype == np.uint8
    assert C.corrupt(img, name, 3, seed=2).tobytes() == out.tobytes()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fog", "frost", "jpeg_compression"])
def test_largest_supported_size(name):
    img = np.asarray(Image.fromarray(photo()).resize((4000, 4000), Image.NEAREST))
    out = C.corrupt(img, name, 5, seed=2)
    assert out.shape == (4000, 4000, 3) and out.dtype == np.uint8


def test_threads_give_the_same_bytes_as_serial():
    """Corrupting concurrently, while other code reseeds NumPy's global generator, changes
    nothing: each call draws from its own generator."""
    jobs = [(name, seed) for name in RANDOM for seed in (1, 2)]
    serial = {job: C.corrupt(SMALL, job[0], 4, job[1]).tobytes() for job in jobs}
    stop = threading.Event()

    def meddle():
        while not stop.is_set():
            np.random.seed(0)
            np.random.normal(size=64)

    meddler = threading.Thread(target=meddle)
    meddler.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda j: C.corrupt(SMALL, j[0], 4, j[1]).tobytes(),
                                    jobs * 2))
    finally:
        stop.set()
        meddler.join()
    assert results == [serial[j] for j in jobs * 2]


def test_global_generator_is_left_alone():
    np.random.seed(42)
    expected = np.random.random(5)
    np.random.seed(42)
    C.corrupt(SMALL, "gaussian_noise", 2, seed=9)
    C.corrupt(SMALL, "frost", 2, seed=9)
    assert np.array_equal(np.random.random(5), expected)


def test_image_seed_is_documented_rule():
    import hashlib

    digest = hashlib.sha256(b"imagenet/ILSVRC2012_val_00000001.JPEG|fog|3").digest()
    assert C.image_seed("imagenet/ILSVRC2012_val_00000001.JPEG", "fog", 3) == \
        int.from_bytes(digest[:4], "big")
    assert C.image_seed("a", "fog", 3) != C.image_seed("a", "fog", 4)
    assert 0 <= C.image_seed("b", "snow", 1) < 2**32


def test_bad_name_lists_close_matches_and_all_names():
    with pytest.raises(UnknownNameError) as err:
        C.corrupt(SMALL, "zoom_blurr", 3, 0)
    assert "Did you mean: zoom_blur" in str(err.value)
    assert all(n in str(err.value) for n in C.NAMES)
    assert C.check_name("Zoom-Blur") == "zoom_blur"


@pytest.mark.parametrize("severity", [0, 6, 2.5, "3", True, None])
def test_bad_severity(severity):
    with pytest.raises(InvalidValueError, match=r"severity must be one of 1, 2, 3, 4, 5"):
        C.corrupt(SMALL, "fog", severity, 0)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "7"])
def test_bad_seed(seed):
    with pytest.raises(InvalidValueError, match="seed must be an integer"):
        C.corrupt(SMALL, "fog", 1, seed)


@pytest.mark.parametrize("image", [
    np.zeros((40, 40), np.uint8), np.zeros((40, 40, 4), np.uint8),
    np.zeros((40, 40, 3), np.float32), np.zeros((31, 40, 3), np.uint8), [[0, 0, 0]],
])
def test_bad_image(image):
    with pytest.raises(InvalidValueError, match=r"uint8 numpy array of shape \(H, W, 3\)|32x32"):
        C.corrupt(image, "fog", 1, 0)


def test_bad_backend():
    with pytest.raises(UnknownNameError, match="Did you mean: torch"):
        C.corrupt(SMALL, "fog", 1, 0, backend="torhc")


def without_modules(monkeypatch, *missing: str) -> None:
    """Make ``missing`` unimportable for this test (``None`` in sys.modules) and drop the cached
    torch backend, so the next import of it runs again."""
    for name in [m for m in sys.modules if m.startswith("imagenet_hard.corruptions.torch_backend")]:
        monkeypatch.delitem(sys.modules, name)
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(("missing", "says"), [
    ("torch", "needs PyTorch: pip install torch"),
    ("imagenet_hard.corruptions.torch_backend", "not part of this installation"),
])
def test_torch_backend_missing_is_a_clear_error(monkeypatch, missing, says):
    without_modules(monkeypatch, missing)
    with pytest.raises(ImHardError, match="torch corruption backend .* use backend 'reference'") \
            as err:
        C.corrupt(SMALL, "fog", 1, 0, backend="torch")
    assert says in str(err.value)
    assert C.corrupt(SMALL, "fog", 1, 0).shape == SMALL.shape  # the reference still runs


def test_import_and_reference_call_keep_torch_out():
    code = ("import sys, numpy as np\n"
            "import imagenet_hard.corruptions as c\n"
            "c.corrupt(np.full((40, 50, 3), 128, np.uint8), 'glass_blur', 2, 1)\n"
            "c.corrupt(np.full((40, 50, 3), 128, np.uint8), 'frost', 2, 1)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_frost_photos_come_from_the_package_not_this_repository():
    repo = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True)
    names = tracked.stdout.split() if tracked.returncode == 0 else []
    assert not [n for n in names if Path(n).name.startswith("frost")]


def test_bench_times_both_backends_on_one_photo():
    from imagenet_hard.bench.corrupt import bench_corrupt, photo
    from imagenet_hard.bench.report import format_report

    report = bench_corrupt(photo(size=(96, 64)), names=["contrast", "zoom_blur"], repeat=1)
    assert list(report.results) == ["contrast", "zoom_blur"]
    assert report.reference.items == report.ours.items == 2
    assert report.reference.seconds > 0 and report.ours.seconds > 0
    text = format_report(report)
    assert "zoom_blur: torch" in text and "96×64" in text
    with pytest.raises(ImHardError, match="unknown corruption"):
        bench_corrupt(photo(size=(96, 64)), names=["zoom"], repeat=1)


def test_bench_cli_prints_a_table():
    from click.testing import CliRunner

    from imagenet_hard.cli import main

    res = CliRunner().invoke(main, ["bench", "corrupt", "--size", "80x60", "--corruptions",
                                    "pixelate", "--repeat", "1"])
    assert res.exit_code == 0, res.output
    assert "80×60" in res.output and "pixelate" in res.output and "ratio" in res.output
    bad = CliRunner().invoke(main, ["bench", "corrupt", "--size", "big"])
    assert bad.exit_code == 1 and "WIDTHxHEIGHT" in bad.output


# -- the torch backend through corrupt(): a contract check that skips until it is installed;
#    its agreement with the reference (tolerances per corruption) is tested with the backend.

def _torch_backend_or_skip():
    pytest.importorskip("torch")
    try:
        return C.load_torch_backend()
    except ImHardError:
        pytest.skip("the torch corruption backend is not installed")


@pytest.mark.parametrize("name", C.NAMES)
def test_torch_backend_contract(name):
    _torch_backend_or_skip()
    out = C.corrupt(SMALL, name, 3, 4, backend="torch")
    assert out.dtype == np.uint8 and out.shape == SMALL.shape
    assert C.corrupt(SMALL, name, 3, 4, backend="torch").tobytes() == out.tobytes()
    if name not in C.DETERMINISTIC:
        assert C.corrupt(SMALL, name, 3, 5, backend="torch").tobytes() != out.tobytes()


def test_torch_batches_equal_single_calls():
    _torch_backend_or_skip()
    imgs, seeds = [SMALL, photo((120, 90)), SMALL], [1, 2, 3]
    batch = C.corrupt_batch(imgs, "gaussian_noise", 3, seeds, backend="torch")
    single = [C.corrupt(im, "gaussian_noise", 3, s, backend="torch")
              for im, s in zip(imgs, seeds, strict=True)]
    assert [b.tobytes() for b in batch] == [s.tobytes() for s in single]
