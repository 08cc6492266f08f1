"""The lab's errors and its ways to the host: tools, commands, mounts (no other ezctl module
is imported here). Nothing here changes the host's network namespace."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys


class LabError(RuntimeError):
    """A lab operation failed; the message says what and how to go on."""


class LabCommandError(LabError):
    """A command inside the lab exited non-zero (``check=True``)."""

    def __init__(self, argv, returncode, stdout, stderr):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        err = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
        super().__init__(f"command {' '.join(map(str, argv))!r} failed with exit code "
                         f"{returncode}: {err.strip()}")


def tool(name: str) -> str:
    """Absolute path of a host tool (nsenter, unshare, ip ...)."""
    for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if not found:
        raise LabError(f"{name} not found: install util-linux / iproute2")
    return found


def run(argv, input=None, check=True, text=True, capture=True, env=None, timeout=120):
    """Run argv (a list, never a shell); raise LabCommandError on failure when check."""
    proc = subprocess.run(
        [str(a) for a in argv], input=input, text=text, env=env, timeout=timeout,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        stdin=None if input is not None else subprocess.DEVNULL, check=False,
    )
    if check and proc.returncode != 0:
        raise LabCommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def mounts() -> list[str]:
    """Mount points of the caller's mount namespace, in mount order (from /proc/mounts)."""
    result = []
    with open("/proc/mounts", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) >= 2:
                point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
                result.append(point)
    return result


def unmount(point) -> None:
    """Unmount ``point``, lazily when it is busy (errors are left to the caller's next look)."""
    if run([tool("umount"), point], check=False).returncode != 0:
        run([tool("umount"), "-l", point], check=False)


def node_python() -> str:
    """The Python that Ansible runs inside lab nodes (the host's, nodes share its filesystem)."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
