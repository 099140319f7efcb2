"""The installed wheel, not only the checkout, finds the builders and the package data."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setuptools_config() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_folder_of_the_package_is_in_the_packages_list():
    """setuptools warns "Package would be ignored" for every folder it can import (a subpackage,
    or a data folder such as templates/) missing from the hand-written `packages` list, and a
    subpackage missing there is missing from the wheel. Folders mapped by `package-dir`
    (builders/, leaderboard/submissions/) count with their subfolders."""
    from setuptools import find_namespace_packages

    cfg = _setuptools_config()
    packages = set(cfg["packages"])
    found = set(find_namespace_packages(str(ROOT), include=["imagenet_hard", "imagenet_hard.*"],
                                        exclude=["*__pycache__*"]))
    for name, folder in cfg["package-dir"].items():
        assert (ROOT / folder).is_dir(), f"package-dir maps {name} to missing {folder}"
        found |= {name} | {f"{name}.{sub}" for sub in find_namespace_packages(
            str(ROOT / folder), exclude=["*__pycache__*"])}
    assert found - packages == set(), "folders missing from [tool.setuptools] packages"
    assert packages - found == set(), "packages listed that are not folders here"


@pytest.mark.slow
def test_wheel_ships_builders_and_data(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-v", "-w", str(tmp_path / "dist"), str(ROOT)],
                           check=True, cwd=tmp_path, capture_output=True, text=True)
    assert "would be ignored" not in built.stdout + built.stderr   # setuptools' package warning
    wheel = next((tmp_path / "dist").glob("imagenet_hard-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    data = [p.relative_to(ROOT).as_posix() for folder in ("data", "templates", "review/static")
            for p in (ROOT / "imagenet_hard" / folder).rglob("*") if p.is_file()
            and "__pycache__" not in p.parts]
    assert data and set(data) <= set(names), sorted(set(data) - set(names))
    builders = {Path(n).name for n in names if n.startswith("imagenet_hard/builders/")}
    expected = {p.name for p in (ROOT / "builders").glob("*.py")}
    assert expected <= builders, f"wheel lacks builders: {sorted(expected - builders)}"
    shipped = {n for n in names if n.startswith("imagenet_hard/corruptions/")}
    assert {f"imagenet_hard/corruptions/{p.name}" for p in
            (ROOT / "imagenet_hard" / "corruptions").glob("*.py")} <= shipped
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Import from the unpacked wheel with the checkout off the path: what an installed user gets.
    code = ("import imagenet_hard, sys; assert 'site' in imagenet_hard.__file__, imagenet_hard.__file__;"
            "from imagenet_hard.sources import list_sources; print(' '.join(list_sources()));"
            "from imagenet_hard.score.examples import write_example_submission as w;"
            "import sys; w(sys.argv[1])")
    example = tmp_path / "lite0.py"
    out = subprocess.run([sys.executable, "-c", code, str(example)], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin",
                                            "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert example.read_bytes() == (ROOT / "leaderboard/submissions/efficientnet_lite0.py").read_bytes()
    assert set(out.stdout.split()) >= {p.stem.replace("_", "-") for p in (ROOT / "builders").glob("*.py")
                                       if p.stem != "__init__"}


def test_tests_follow_the_package_layout():
    """Each test folder is named after a stage (a subpackage of imagenet_hard, or the builders);
    tests of top-level modules sit at the root, next to the shared fixtures."""
    stages = {p.name for p in (ROOT / "imagenet_hard").iterdir() if (p / "__init__.py").is_file()}
    stages.add("builders")
    stages.add("gpu")  # the CUDA suite spans stages (marker gpu, make gpu-check)
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders and folders <= stages, f"test folders without a stage: {sorted(folders - stages)}"
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), "two test files share a name (pytest imports by basename)"
