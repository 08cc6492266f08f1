# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The route guard's entry point, and the only place that starts processes for it.

The guard runs on the node outside Ansible (a systemd unit or a background process), so it
cannot use ``AnsibleModule.run_command``; module_utils must not start processes themselves.
This file gives them ``run``, ``spawn``, ``detach`` and ``fork``. The role bundles it with module_utils
into the one ``flannel-route-guard`` script (templates/flannel-route-guard.j2); the tests and
the benchmark import ``subprocess_runner`` from here.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess
import sys


def subprocess_runner(prefix=()):
    """A Runner (see module_utils/base/iproute.py) executing argv, prefixed (e.g. ['nsenter', '--net=...'])."""
    prefix = list(prefix)

    def run(argv, data=None):
        proc = subprocess.run(prefix + list(argv), input=data, capture_output=True,
                              text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    return run


def spawn(argv):
    """A process whose stdout the guard reads (``ip monitor``)."""
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def detach(argv, log_fd):
    """A process in a session of its own, its output to log_fd (``ensure`` starts ``serve`` so)."""
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                            close_fds=True, cwd='/', start_new_session=True)


def fork(log_fd):
    """This process forked: in the child (0), a session of its own, its output to log_fd and its
    input from /dev/null; in the parent, the child's pid (``serve --background``)."""
    pid = os.fork()
    if pid:
        return pid
    os.setsid()
    os.chdir('/')
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    return 0


def main():
    from ansible_collections.kubeasz.network.plugins.module_utils.routeguard import cli as routeguard_cli
    return routeguard_cli.main(routeguard_cli.Processes(subprocess_runner(), spawn, detach, fork))


if __name__ == '__main__':
    sys.exit(main())
