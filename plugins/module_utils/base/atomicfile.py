# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files written atomically: compare first, then temp file + fsync + rename (+ fsync of the
directory); read and remove. Standard library only: imported on the managed node and on the
controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import os
import tempfile


def read_text(path):
    """File content, or None when it does not exist."""
    try:
        with open(path, 'r') as handle:
            return handle.read()
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def needs_write(path, text, mode=0o644):
    """True unless ``path`` holds exactly ``text`` with ``mode``."""
    try:
        current = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return True
        raise
    return read_text(path) != text or (current.st_mode & 0o7777) != mode


def write_atomic(path, text, mode=0o644, dir_mode=0o755):
    """Write ``text`` to ``path`` atomically unless it already holds it. Returns changed."""
    if not needs_write(path, text, mode):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, dir_mode, exist_ok=True)   # nodes of one run create it at once
        os.chmod(directory, dir_mode)   # makedirs honours the umask
    if read_text(path) == text:          # only the mode differs
        os.chmod(path, mode)
        return True
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return True


def file_diff(path, before, after):
    """A file's --diff, headed by its path."""
    return dict(before=before or '', after=after or '', before_header=path, after_header=path)


def put(path, text, check_mode=False, mode=0o644):
    """Write ``text`` to ``path`` when it differs (atomically, its directory made; not in check
    mode): (changed, its --diff)."""
    before = read_text(path)
    if check_mode:
        changed = needs_write(path, text, mode=mode)
    else:
        changed = write_atomic(path, text, mode=mode, dir_mode=0o755)
    return changed, file_diff(path, before, text)


def drop(path, check_mode=False):
    """Remove ``path`` if it is there (not in check mode): (changed, its --diff or None)."""
    before = read_text(path) if path else None
    if before is None:
        return False, None
    if not check_mode:
        remove_file(path)
    return True, file_diff(path, before, '')


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_file(path):
    """Remove ``path``; returns True if it existed."""
    try:
        os.unlink(path)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
