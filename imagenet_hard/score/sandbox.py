"""The sandbox a submission runs in, made by an existing tool: Debian's ``bubblewrap`` (``bwrap``)
when it works here, else util-linux ``unshare`` (new PID and mount namespaces, and a user
namespace when the kernel allows one; the root is then built by :mod:`imagenet_hard.score.jail`).

Inside, the submission sees a new, empty root holding only what scoring needs, read-only: the
system directories, the Python installation and import path, its own file, an Arrow file of the
dataset's images (no labels) and the weight caches (the Hugging Face hub cache and ``$TORCH_HOME/hub/checkpoints``,
never the token file beside them). ``/tmp`` is a fresh scratch folder (also ``HOME``), the job's
output folder is writable, ``/proc`` shows only the sandbox's own processes, and the whole
process tree dies with the sandbox (PID namespace). ``--no-network`` adds an empty network
namespace. The memory limit is applied by the worker (``RLIMIT_DATA``, see :func:`parse_size`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InvalidValueError, SandboxError

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
#: The installed packages scoring imports; their folders may live outside site-packages.
PACKAGES = ("imagenet_hard", "imagenet_hard.builders", "imagenet_hard.submissions")
#: Scratch paths inside the sandbox.
TMP, HOME = "/tmp", "/tmp/home"


@dataclass(frozen=True)
class Mount:
    """One step of building the root: ``ro``/``rw`` bind (host ``src`` at ``dest``), ``dev``
    (a device node, for GPUs), ``symlink`` (``src`` is the link's target)."""

    kind: str
    src: str
    dest: str


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

    def cleanup(self) -> None:
        for path in (self.scratch, self.root):
            if path:
                shutil.rmtree(path, ignore_errors=True)


# -- memory limit --------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int | None) -> int | None:
    """``"4G"``, ``"512M"``, ``"1.5GiB"`` or a byte count → bytes; ``"none"`` → no limit.
    Units are binary (G = GiB)."""
    if text is None or isinstance(text, int):
        return text
    if str(text).strip().lower() in ("none", "off", "unlimited"):
        return None
    m = _SIZE.match(str(text))
    if not m:
        raise InvalidValueError(f"--memory-limit {text!r}: expected a size such as 8G, 512M or "
                                "none")
    value = int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))
    if value < 64 * 1024 ** 2:
        raise InvalidValueError(f"--memory-limit {text!r} is below 64M; Python alone needs more")
    return value


def format_size(n: int | None) -> str:
    if n is None:
        return "none"
    for unit, k in (("TiB", 4), ("GiB", 3), ("MiB", 2)):
        if n >= 1024 ** k:
            return f"{n / 1024 ** k:.3g} {unit}"
    return f"{n} bytes"


def default_memory_limit() -> int | None:
    """Three quarters of the machine's RAM: a runaway submission fails with a message instead of
    pushing the machine into swap or the OOM killer (which may pick the harness)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return (pages * size * 3 // 4) if pages > 0 and size > 0 else None


# -- what is visible ----------------------------------------------------------------------

def _same_path_binds(paths, kind: str) -> list[Mount]:
    """Bind each existing path at its real location, and at its unresolved one when a symbolic
    link leads there (``pyvenv.cfg`` and ``.pth`` files name paths either way)."""
    out = []
    for p in paths:
        p = os.path.abspath(os.path.expanduser(str(p)))
        real = os.path.realpath(p)
        if not os.path.exists(real):
            continue
        out.append(Mount(kind, real, real))
        if p != real:
            out.append(Mount(kind, real, p))
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


def _python_paths() -> list[str]:
    """The interpreter, its standard library, site-packages and every import-path folder."""
    import importlib.util

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    for name in PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec and spec.submodule_search_locations:
            paths.update(spec.submodule_search_locations)
    return sorted(paths | _link_targets(paths))


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


def _hf_home() -> str:
    return os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")


def hub_cache() -> str:
    """Where huggingface_hub keeps downloaded repositories (not its token), by its own rule."""
    return os.path.expanduser(os.environ.get("HF_HUB_CACHE")
                              or os.environ.get("HUGGINGFACE_HUB_CACHE")
                              or os.path.join(_hf_home(), "hub"))


def torch_home() -> str:
    """``torch.hub``'s home, by torch's own rule (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``)."""
    return os.path.expanduser(os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch"))


def _token_files() -> set[str]:
    """Credentials no mount may contain: the Hub's token files and ``~/.netrc``."""
    home = _hf_home()
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


def _child_paths(read_only, writable, device: str) -> list[Mount]:
    mounts = _same_path_binds([*_python_paths(), *read_only], "ro")
    mounts += _same_path_binds(writable, "rw")
    if device.startswith("cuda"):
        gpu = sorted(str(p) for p in Path("/dev").glob("nvidia*")) + ["/dev/dri"]
        mounts += [Mount("dev", p, p) for p in gpu if os.path.exists(p)]
    secrets = _token_files()
    for m in mounts:
        hidden = [s for s in secrets if _under(s, m.src)]
        if m.kind != "dev" and hidden:
            raise SandboxError(f"the sandbox would expose {hidden[0]} by mounting {m.src} (on the "
                               "Python import path, or the dataset, output or a weight cache); "
                               "move one of them")
    return _nested_order(mounts)


def make_plan(read_only: list[str], writable: list[str], env: dict[str, str], device: str = "cpu",
              no_network: bool = False, memory_limit: int | None = None) -> Plan:
    """The sandbox for one job: ``read_only`` files (submission, Arrow files) and ``writable``
    folders (the job's output) on top of the system, Python and weight caches."""
    hub, torch_dir = hub_cache(), torch_home()
    caches = [hub, os.path.join(torch_dir, "hub", "checkpoints")]
    env = {**env, "HOME": HOME, "TMPDIR": TMP, "XDG_CACHE_HOME": f"{HOME}/.cache",
           "HF_HOME": f"{HOME}/.cache/huggingface", "HF_HUB_CACHE": hub, "TORCH_HOME": torch_dir,
           "HF_TOKEN_PATH": "/dev/null", "PYTHONDONTWRITEBYTECODE": "1"}
    paths = _child_paths([*read_only, *caches], writable, device)
    scratch = tempfile.mkdtemp(prefix="imhard-sandbox-")
    os.makedirs(os.path.join(scratch, "home"))
    mounts = [*_system_mounts(), Mount("rw", scratch, TMP), *paths]
    return Plan(mounts=mounts, env=env, scratch=scratch, no_network=no_network,
                shm_bytes=memory_limit)


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
