"""The confinement of a stranger's process (the scoring child, :mod:`imagenet_hard.score.runner`
starts it): made by ``bubblewrap`` (``bwrap``) when it works here, else util-linux ``unshare``
(PID and mount namespaces, a user namespace when allowed; the root built by :mod:`.jail`). What
the child sees is :func:`make_plan`'s mounts, each with a role of :data:`ROLES`, and
:func:`child_env`'s environment (``docs/scoring.md`` states the threat model);
:func:`check_no_labels` refuses a plan through which a file of the scored data would be visible,
by path and by content. Nothing here imports the scoring package: the worker it copies into the
sandbox is named by module (:data:`WORKER_ROOTS`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__
from ..errors import InvalidValueError, SandboxError, SubmissionError
from ..models.weights import hf_home, hub_cache, torch_checkpoints, torch_home
from ..sizes import MiB, parse_size

TOOLS = ("auto", "bwrap", "unshare", "none")
JAIL = str(Path(__file__).with_name("jail.py"))

#: Files and folders of /etc a Python program needs (loader, users, DNS, TLS roots, time zone);
#: the rest of /etc (e.g. /etc/shadow, credentials of system services) stays invisible.
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "hosts",
       "host.conf", "resolv.conf", "gai.conf", "localtime", "timezone", "ssl", "pki",
       "ca-certificates", "ca-certificates.conf", "crypto-policies", "alternatives", "mime.types",
       "os-release", "fonts")
#: Top-level system folders (bound, or recreated as the symbolic links they are on merged-/usr).
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: The project's packages, hidden from the child (sample labels and results ship in them).
PACKAGES = ("imagenet_hard", "imagenet_hard.builders", "imagenet_hard.submissions")
#: Modules the child's copy of the package starts from; what they import is followed.
WORKER_ROOTS = ("imagenet_hard.score.worker", "imagenet_hard.models")
#: Scratch paths inside the sandbox.
TMP, HOME = "/tmp", "/tmp/home"
#: Where the GPU's device nodes are found on the host (a test fakes it).
DEV = "/dev"


#: Why a mount is there: every mount has one of these roles, listed as they are in
#: ``docs/scoring.md`` (a test holds the two together).
ROLES = {
    "system": "system folders, a few files of /etc, /sys (read-only)",
    "python": "the interpreter, its standard library and site-packages (read-only)",
    "worker": "a copy of the worker and model-loader modules, Python files only (read-only)",
    "hidden": "empty folders over the project's own package folders",
    "job": "the submission file, the job file and the unlabelled image files (read-only)",
    "weights": "models--* of the hub cache and $TORCH_HOME/hub/checkpoints (read-only)",
    "scratch": "/tmp, a fresh folder thrown away after the run, also HOME (writable)",
    "output": "the job's prediction folders (writable)",
    "gpu": "/dev/nvidia* and /dev/dri, only when scoring on CUDA",
}


@dataclass(frozen=True)
class Mount:
    """``ro``/``rw`` bind (host ``src`` at ``dest``), ``dev`` node or ``symlink`` (to ``src``)."""

    kind: str
    src: str
    dest: str
    role: str = "system"


@dataclass
class Plan:
    """What the sandbox holds; both tools build the same root from it."""

    mounts: list[Mount]
    env: dict[str, str]
    scratch: str               # host folder behind /tmp
    shm_bytes: int | None      # size of /dev/shm (DataLoader workers pass batches through it)
    no_network: bool = False
    cwd: str = TMP
    root: str = ""             # unshare only: the empty host folder the new root is mounted on
    worker: str = ""           # the copy of the worker's modules (read-only in the sandbox)

    def cleanup(self) -> None:
        for path in (self.scratch, self.root, self.worker):
            if path:
                shutil.rmtree(path, ignore_errors=True)


# -- environment and network ---------------------------------------------------------------

#: Environment variables never passed to a submission: tokens, keys, passwords, cloud credentials.
SECRET_ENV = re.compile(
    r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|_KEY$|^KEY$|^AWS_|^GITHUB_|^GH_|^GITLAB_|^AZURE_|"
    r"^GOOGLE_|^GCP_|^GCLOUD_|^HUGGING_FACE_HUB_|^KAGGLE_|^OPENAI_|^ANTHROPIC_|^WANDB_|^NETRC|"
    r"^SSH_AUTH_SOCK$|^ACTIONS_|^CI_JOB_JWT", re.IGNORECASE)


def child_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without secrets; the Hub token file is hidden too."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items()
           if not SECRET_ENV.search(k)}
    env["HF_TOKEN_PATH"] = os.devnull          # huggingface_hub would read ~/.cache/.../token
    env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def network_prefix() -> list[str]:
    """The command prefix that runs a program in a new, empty network namespace, or an error."""
    if shutil.which("unshare") is None:
        raise SubmissionError("--no-network needs util-linux `unshare` (apt-get install util-linux)")
    tries = [["unshare", "--net"], ["unshare", "--map-root-user", "--net"]]
    if os.geteuid() != 0:
        tries.reverse()
    errors = []
    for prefix in tries:
        res = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if res.returncode == 0:
            return prefix
        errors.append(f"`{' '.join(prefix)}`: {res.stderr.strip() or res.returncode}")
    raise SubmissionError(
        "--no-network: this kernel refused a new network namespace (" + "; ".join(errors) + "). "
        "Allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
        "user.max_user_namespaces > 0), run as root, or score inside a container without network.")


# -- memory limit --------------------------------------------------------------------------

#: The smallest ``--memory-limit``: Python alone needs more.
MIN_MEMORY_LIMIT = 64 * MiB


def parse_memory_limit(text: str | int | None) -> int | None:
    """``--memory-limit``: ``"4G"``, ``"512M"``, ``"1.5GiB"`` or a byte count → bytes (the one
    size syntax, :func:`imagenet_hard.sizes.parse_size`); ``"none"`` → no limit."""
    return parse_size(text, option="--memory-limit", minimum=MIN_MEMORY_LIMIT,
                      below="Python alone needs more", none=True, examples="8G, 512M")


def default_memory_limit() -> int | None:
    """Three quarters of the machine's RAM: a runaway submission fails with a message instead of
    pushing the machine into swap or the OOM killer (which may pick the harness)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return (pages * size * 3 // 4) if pages > 0 and size > 0 else None


# -- what is visible ----------------------------------------------------------------------

def _same_path_binds(paths, kind: str, role: str) -> list[Mount]:
    """Bind each existing path at its real location, and at its unresolved one when a symbolic
    link leads there (``pyvenv.cfg`` and ``.pth`` files name paths either way)."""
    out = []
    for p in paths:
        p = os.path.abspath(os.path.expanduser(str(p)))
        real = os.path.realpath(p)
        if not os.path.exists(real):
            continue
        out.append(Mount(kind, real, real, role))
        if p != real:
            out.append(Mount(kind, real, p, role))
    return out


def _system_mounts() -> list[Mount]:
    mounts = []
    for name in SYSTEM:
        path = "/" + name
        if os.path.islink(path):
            mounts.append(Mount("symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            mounts.append(Mount("ro", path, path))
    mounts += [Mount("ro", os.path.realpath(f"/etc/{n}"), f"/etc/{n}") for n in ETC
               if os.path.exists(f"/etc/{n}")]
    if os.path.isdir("/sys"):
        mounts.append(Mount("ro", "/sys", "/sys"))   # CPU topology for torch, GPU discovery
    return mounts


def _package_folders() -> list[str]:
    """Where the project's packages live here (a checkout when installed editable)."""
    import importlib.util

    out = []
    for name in PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec and spec.submodule_search_locations:
            out += [os.path.realpath(p) for p in spec.submodule_search_locations]
    return sorted(set(out))


def _interpreter_trees() -> list[str]:
    return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                 sys.base_exec_prefix)})


def _python_paths() -> list[str]:
    """The interpreter, its standard library, site-packages and the import-path folders of other
    installed code; never a folder that holds the project's checkout (``python -m pytest`` and
    ``pip install -e`` put it on the path: its tests, data and leaderboard would come along),
    nor ``/tmp`` or a folder above it (``python /tmp/script.py`` puts /tmp on the path: bound
    read-only over the child's scratch /tmp, it left the child no place for temporary files)."""
    trees = _interpreter_trees()
    checkouts = [os.path.dirname(p) for p in _package_folders()]
    paths = {*trees, os.path.dirname(os.path.realpath(sys.executable))}
    for p in sys.path:
        if not p or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        holds_checkout = any(_under(c, real) for c in checkouts)
        in_checkout = any(_under(real, c) for c in checkouts) and not any(
            _under(real, t) for t in trees)
        if not (holds_checkout or in_checkout or _under(TMP, real)):
            paths.add(p)
    return sorted(paths | _link_targets(paths))


def _module_file(root: Path, name: str) -> Path | None:
    path = root.joinpath(*name.split(".")[1:])
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _worker_modules() -> tuple[str, ...]:
    """The project modules :data:`WORKER_ROOTS` import, followed through every ``import`` (lazy
    ones included), as paths relative to the package folder. The package's and ``score``'s own
    ``__init__`` are not followed: the copy gets empty ones (the real ones import the harness)."""
    import ast

    root = Path(__file__).resolve().parent.parent
    stubs = ("imagenet_hard", "imagenet_hard.score")
    todo = [*WORKER_ROOTS]
    todo += [f"imagenet_hard.models.{f.stem}" for f in (root / "models").glob("*.py")
             if f.stem != "__init__"]
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen or name in stubs or not name.startswith("imagenet_hard."):
            continue
        path = _module_file(root, name)
        if path is None:
            continue
        seen[name] = path
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base) if node.level \
                    else (node.module or "")
                todo += [mod, *(f"{mod}.{a.name}" for a in node.names)]
    return tuple(sorted(str(p.relative_to(root)) for p in seen.values()))


def worker_package(dest: str) -> str:
    """Write into ``dest`` an ``imagenet_hard`` package holding only the modules the child runs
    (:func:`_worker_modules`) and return ``dest``, the folder to put on the child's path."""
    root = Path(__file__).resolve().parent.parent
    pkg = Path(dest) / "imagenet_hard"
    for rel in ("__init__.py", "score/__init__.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text('"""The modules a scored submission may run: a copy made by the '
                               'harness."""\n' + (f"__version__ = {__version__!r}\n"
                                                   if rel == "__init__.py" else ""))
    for rel in _worker_modules():
        target = pkg / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        init = target.parent / "__init__.py"
        if not init.exists():
            init.write_text("")
        shutil.copyfile(root / rel, target)
    return dest


def _link_targets(folders) -> set[str]:
    """Folders holding what import-path entries link to (a site-packages of symbolic links into
    another environment's, as shared installs make)."""
    out = set()
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                out.add(os.path.dirname(os.path.realpath(entry.path)))
    return out


def _token_files() -> set[str]:
    """Credentials no mount may contain: the Hub's token files and ``~/.netrc``."""
    home = hf_home()
    names = {os.path.join(home, "token"), os.path.join(home, "stored_tokens"),
             os.environ.get("HF_TOKEN_PATH") or "", "~/.cache/huggingface/token", "~/.netrc"}
    return {os.path.realpath(os.path.expanduser(n)) for n in names if n}


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _nested_order(mounts: list[Mount]) -> list[Mount]:
    """Parents before children (a later bind would hide what is below it); one mount per
    destination, writable winning over read-only (an output folder on the import path)."""
    by_dest: dict[str, Mount] = {}
    for m in mounts:
        if m.dest not in by_dest or m.kind == "rw":
            by_dest[m.dest] = m
    return sorted(by_dest.values(), key=lambda m: (m.dest.rstrip("/").count("/"), m.dest))


def _child_paths(read_only, writable, worker: str, device: str) -> list[Mount]:
    mounts = _same_path_binds(_python_paths(), "ro", "python")
    mounts += _same_path_binds([worker], "ro", "worker")
    mounts += _same_path_binds(read_only, "ro", "job")
    mounts += _same_path_binds(weight_caches(), "ro", "weights")
    mounts += _same_path_binds(writable, "rw", "output")
    mounts += [Mount("dev", src, f"/dev/{os.path.basename(src)}", "gpu")
               for src in gpu_nodes(device)]
    secrets = _token_files()
    for m in mounts:
        hidden = [s for s in secrets if _under(s, m.src)]
        if m.kind != "dev" and hidden:
            raise SandboxError(f"the sandbox would expose {hidden[0]} by mounting {m.src} (on the "
                               "Python import path, or the dataset, output or a weight cache); "
                               "move one of them")
    return mounts


def gpu_nodes(device: str) -> list[str]:
    """The host device nodes a CUDA job needs, bound read-write (``--dev-bind``; the jail binds
    them the same way): every ``/dev/nvidia*`` (``nvidiactl``, ``nvidia0``…, ``nvidia-uvm``,
    ``nvidia-uvm-tools``, ``nvidia-modeset``, the ``nvidia-caps`` folder) and ``/dev/dri``, those
    present. None for a CPU job. The driver creates ``nvidia-uvm*`` on first use, which the
    sandbox cannot do: a host process must have used CUDA once (``nvidia-smi`` does)."""
    if not device.startswith("cuda"):
        return []
    dev = Path(DEV)
    found = sorted(str(p) for p in dev.glob("nvidia*")) + [str(dev / "dri")]
    return [p for p in found if os.path.exists(p)]


def weight_caches() -> list[str]:
    """The weight folders a child may read: each model repository of the hub cache and torch's
    checkpoints. Datasets (``datasets--*``) and Spaces share the hub cache and are left out: a
    scored dataset downloaded from the Hub keeps its labelled parquet files there."""
    hub = Path(hub_cache())
    models = sorted(str(p) for p in hub.glob("models--*") if p.is_dir()) if hub.is_dir() else []
    return [*models, torch_checkpoints()]


def make_plan(read_only: list[str], writable: list[str], env: dict[str, str], device: str = "cpu",
              no_network: bool = False, memory_limit: int | None = None,
              label_files: list[str] = ()) -> Plan:
    """The sandbox for one job: ``read_only`` files (submission, job file, image files) and
    ``writable`` folders (the job's output) on top of the system, Python and weight caches.
    ``label_files``: files and folders of the datasets being scored, which no mount may show
    (:func:`check_no_labels`)."""
    hub, torch_dir = hub_cache(), torch_home()
    worker = tempfile.mkdtemp(prefix="imhard-worker-")
    try:
        worker_package(worker)
        env = {**env, "HOME": HOME, "TMPDIR": TMP, "XDG_CACHE_HOME": f"{HOME}/.cache",
               "HF_HOME": f"{HOME}/.cache/huggingface", "HF_HUB_CACHE": hub,
               "TORCH_HOME": torch_dir, "HF_TOKEN_PATH": "/dev/null",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": worker}
        paths = _child_paths(read_only, writable, worker, device)
        # The project's own folders, wherever they are visible (site-packages when installed
        # normally), are covered by empty ones: the child imports the copy in ``worker``.
        empty = os.path.join(worker, ".empty")
        os.mkdir(empty)
        hidden = [Mount("ro", empty, f, "hidden") for f in _package_folders()
                  if any(_under(f, m.dest) for m in paths if m.kind != "dev")]
        covered = {h.dest for h in hidden}
        paths = _nested_order([*(m for m in paths if m.dest not in covered), *hidden])
        check_no_labels(paths, label_files)
    except BaseException:
        shutil.rmtree(worker, ignore_errors=True)
        raise
    scratch = tempfile.mkdtemp(prefix="imhard-sandbox-")
    os.makedirs(os.path.join(scratch, "home"))
    mounts = [*_system_mounts(), Mount("rw", scratch, TMP, "scratch"), *paths]
    return Plan(mounts=mounts, env=env, scratch=scratch, no_network=no_network,
                shm_bytes=memory_limit, worker=worker)


# -- no label within reach ------------------------------------------------------------------

def _files_under(path: str):
    """Regular files at or below ``path``, links not followed (inside the sandbox a link leads
    only to what is mounted, and that is walked on its own)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        yield path, st.st_size
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [path]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    yield e.path, e.stat(follow_symlinks=False).st_size


def check_no_labels(mounts: list[Mount], label_files) -> None:
    """Refuse a sandbox through which a file of the scored data could be read: a label file (or
    a folder of them) under any mount, or a file with the same bytes as one in any mount outside
    the interpreter's own installation (the hub cache, a weight folder, an extra import path).
    Walking the interpreter's tens of thousands of files would cost seconds per run; data lands
    in caches and user folders, not in site-packages, and the path check covers those too."""
    labels = [os.path.realpath(p) for p in label_files if os.path.lexists(p)]
    if not labels:
        return
    visible = [m for m in mounts if m.kind in ("ro", "rw")]
    for m in visible:
        for lab in labels:
            if _under(lab, os.path.realpath(m.src)) or _under(os.path.realpath(m.src), lab):
                raise SandboxError(
                    f"the sandbox would show {lab}, which holds labels of the data being scored, "
                    f"by mounting {m.src}; move the dataset (or that folder) so that one does not "
                    "hold the other")
    by_size: dict[int, list[str]] = {}
    for lab in labels:
        for path, size in _files_under(lab):
            by_size.setdefault(size, []).append(path)
    trees = _interpreter_trees()
    digests: dict[str, str] = {}

    def digest(path: str) -> str:
        if path not in digests:
            from ..files import sha256_file

            digests[path] = sha256_file(path)
        return digests[path]

    for m in visible:
        if any(_under(os.path.realpath(m.src), t) for t in trees):
            continue
        for path, size in _files_under(m.src):
            for lab in by_size.get(size, ()):
                if size and digest(path) == digest(lab):
                    raise SandboxError(
                        f"the sandbox would show {path} (mounted from {m.src}), a copy of "
                        f"{lab}, which holds labels of the data being scored; remove the copy "
                        "or score from another folder")


# -- the two tools ------------------------------------------------------------------------

def bwrap_argv(plan: Plan, cmd: list[str]) -> list[str]:
    argv = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--dev", "/dev",
            *(["--size", str(plan.shm_bytes)] if plan.shm_bytes else []), "--tmpfs", "/dev/shm",
            "--proc", "/proc"]
    if plan.no_network:
        argv.append("--unshare-net")
    flag = {"ro": "--ro-bind", "rw": "--bind", "dev": "--dev-bind", "symlink": "--symlink"}
    for m in plan.mounts:
        argv += [flag[m.kind], m.src, m.dest]
    return [*argv, "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", plan.cwd, "--", *cmd]


def unshare_argv(plan: Plan, cmd: list[str], map_root: bool) -> list[str]:
    if not plan.root:
        plan.root = tempfile.mkdtemp(prefix="imhard-root-")
    spec = Path(plan.scratch) / ".plan.json"
    spec.write_text(json.dumps({"mounts": [asdict(m) for m in plan.mounts], "root": plan.root,
                                "cwd": plan.cwd, "shm_bytes": plan.shm_bytes,
                                "setpriv": shutil.which("setpriv")}))
    # setpriv --pdeathsig: unshare dies with the harness, and --kill-child takes the jail with it
    # (what bwrap's --die-with-parent does).
    prefix = ["setpriv", "--pdeathsig", "KILL", "--",
              "unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc"]
    prefix += ["--map-root-user"] if map_root else []
    prefix += ["--net"] if plan.no_network else []
    # -I -S: the jail imports only the standard library and nothing from the environment.
    return [*prefix, "--", sys.executable, "-I", "-S", JAIL, str(spec), "--", *cmd]


def _try(argv: list[str]) -> str | None:
    """None when the command ran, else why it did not."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if res.returncode == 0:
        return None
    lines = (res.stderr or res.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {res.returncode}"


@functools.cache
def _working(tool: str, no_network: bool, euid: int) -> tuple[str | None, str]:
    """``(how to start it, "")`` when ``tool`` builds a sandbox here, else ``(None, why not)``."""
    exe = "unshare" if tool == "unshare" else "bwrap"
    if shutil.which(exe) is None:
        return None, f"`{exe}` is not installed"
    if tool == "unshare" and shutil.which("setpriv") is None:
        return None, "`setpriv` (util-linux) is not installed"
    plan = make_plan([], [], dict(os.environ), no_network=no_network)
    try:
        if tool == "bwrap":
            why = _try(bwrap_argv(plan, ["true"]))
            return (None, why) if why else ("bwrap", "")
        why = ""
        for map_root in ((True, False) if euid == 0 else (True,)):
            why = _try(unshare_argv(plan, ["true"], map_root))
            if why is None:
                return ("unshare-map-root" if map_root else "unshare"), ""
        return None, why
    finally:
        plan.cleanup()


def choose(tool: str = "auto", no_network: bool = False) -> str:
    """The sandbox to use: ``bwrap``, ``unshare``/``unshare-map-root``, or ``none`` when asked
    for; a :class:`SandboxError` saying what to install when no tool works."""
    if tool not in TOOLS:
        raise InvalidValueError(f"--sandbox {tool!r}: choose one of {', '.join(TOOLS)}")
    if tool == "none":
        return "none"
    reasons = []
    for candidate in (("bwrap", "unshare") if tool == "auto" else (tool,)):
        how, why = _working(candidate, no_network, os.geteuid())
        if how:
            return how
        reasons.append(f"{candidate}: {why}")
    raise SandboxError(
        f"no sandbox for the submission ({'; '.join(reasons)}): install bubblewrap "
        "(apt-get install bubblewrap) or allow user namespaces (sysctl "
        "kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0), or pass "
        "--sandbox none to run it unconfined (only for files you trust)")


def wrap(how: str, plan: Plan, cmd: list[str]) -> list[str]:
    """``cmd`` run inside ``plan`` by the tool :func:`choose` returned."""
    if how == "bwrap":
        return bwrap_argv(plan, cmd)
    return unshare_argv(plan, cmd, map_root=how == "unshare-map-root")
