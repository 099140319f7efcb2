"""The root of the ``unshare`` sandbox: ``python -I -S jail.py PLAN -- CMD…`` inside fresh PID and
mount namespaces builds the root bubblewrap would from the plan, pivots into it, and runs CMD with
every capability dropped in a new session, staying PID 1 so that everything CMD left behind ends
with it. Standard library only: it runs before anything is importable.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MNT_DETACH = 2
#: Mount flags an unprivileged remount must keep (the kernel locks them); statvfs reports them
#: with the same bit values (ST_NOSUID = MS_NOSUID, …).
KEEP = MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096   # + noatime, nodiratime, relatime
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _enc(s):
    return s.encode() if isinstance(s, str) else s


def _mount(src, dest: str, fstype=None, flags: int = 0, data=None) -> None:
    if _libc.mount(_enc(src), _enc(dest), _enc(fstype), flags, _enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {dest}: {os.strerror(err)}")


def _target(root: str, dest: str, is_dir: bool) -> str:
    path = root + dest
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            open(path, "a").close()
    return path


def _mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` (a recursive bind brings a folder's submounts along)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == path or point.startswith(path.rstrip("/") + "/"):
                out.append(point)
    return out


def _bind(src: str, dest: str, read_only: bool) -> None:
    # Recursive: in a user namespace the kernel refuses to bind a folder without the mounts
    # below it (they may hide something); each of them is then made read-only too.
    _mount(src, dest, None, MS_BIND | MS_REC)
    if read_only:
        for point in _mounts_under(dest):
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY | (os.statvfs(point).f_flag & KEEP)
            _mount(None, point, None, flags)


def _dev(root: str, shm_bytes) -> None:
    dev = _target(root, "/dev", True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755")
    for name in DEV_NODES:
        if os.path.exists(f"/dev/{name}"):
            _bind(f"/dev/{name}", _target(root, f"/dev/{name}", False), read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    size = f",size={shm_bytes}" if shm_bytes else ""
    _mount("tmpfs", _target(root, "/dev/shm", True), "tmpfs", MS_NOSUID | MS_NODEV,
           "mode=1777" + size)


def build_root(plan: dict) -> None:
    root = plan["root"]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    _dev(root, plan.get("shm_bytes"))
    _mount("proc", _target(root, "/proc", True), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for m in plan["mounts"]:
        if m["kind"] == "symlink":
            os.symlink(m["src"], root + m["dest"])
            continue
        path = _target(root, m["dest"], os.path.isdir(m["src"]))
        _bind(m["src"], path, read_only=m["kind"] == "ro")
    _mount(None, root + "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(root)
    # pivot_root(".", "."): the old root ends up on top of the new one; detach it.
    subprocess.run(["pivot_root", ".", "."], check=True,
                   env={"PATH": "/usr/sbin:/sbin:/usr/bin:/bin"})
    if _libc.umount2(b".", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "detaching the old root failed")
    os.chdir(plan["cwd"])


def _reap(child: int) -> int:
    """Wait as PID 1 (reaping orphans) until ``child`` ends; its status as a shell would give it."""
    while True:
        pid, status = os.wait()
        if pid == child:
            return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main(argv: list[str]) -> int:
    spec, cmd = argv[0], argv[argv.index("--") + 1:]
    with open(spec) as f:
        plan = json.load(f)
    os.unlink(spec)
    try:
        build_root(plan)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"imhard sandbox (unshare): {exc}", file=sys.stderr)
        return 125
    drop = [plan["setpriv"], "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    child = os.fork()
    if child == 0:
        os.setsid()
        try:
            os.execv(drop[0], [*drop, *cmd])
        except OSError as exc:
            print(f"imhard sandbox (unshare): cannot run {cmd[0]}: {exc}", file=sys.stderr)
        os._exit(127)
    return _reap(child)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
