# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: netns
short_description: Run tasks inside a kubeasz.network lab node (Linux namespaces)
description:
  - Runs commands and moves files inside a node of the namespace lab built by C(ezctl lab up).
  - A lab node is a set of network, mount and UTS namespaces bound to files
    C(<lab_dir>/<node>.net), C(<lab_dir>/<node>.mnt) and C(<lab_dir>/<node>.uts);
    every command is run with C(nsenter) into those three namespaces, so private mounts of
    the node such as C(/run/flannel) and C(/etc/cni/net.d) are what the task sees.
  - Files are streamed through C(nsenter) and C(dd), so they land in the node's mount namespace.
  - Needs root on the controller; the controller and the nodes share one filesystem and one
    Python.
author:
  - kubeasz.network developers (@kubeasz)
version_added: 0.1.0
options:
  remote_addr:
    description:
      - Name of the lab node (for example C(node1)).
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: kubeasz_lab_node
  lab_dir:
    description:
      - Directory of the lab that holds the node's namespace files (C(/run/kubeasz-lab/<cluster>)).
      - When not set, the plugin looks for the node in every lab under C(/run/kubeasz-lab) and
        uses the only one that has it; it fails when none or several labs have that node.
    type: str
    vars:
      - name: kubeasz_lab_dir
    env:
      - name: KUBEASZ_LAB_DIR
  nsenter_path:
    description:
      - Path of the C(nsenter) program on the controller.
    type: str
    default: nsenter
    vars:
      - name: kubeasz_nsenter_path
    env:
      - name: KUBEASZ_NSENTER_PATH
  pipelining:
    description:
      - Run modules by streaming them to the node's Python on stdin, without a temporary
        directory, a file transfer and a C(chmod) per task.
      - On by default here, unlike SSH, since a lab node has no C(requiretty) to trip over and
        become is ignored. Set C(ANSIBLE_PIPELINING=False) to compare.
    type: boolean
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
notes:
  - Build the lab first with C(ezctl lab up <cluster>); it writes an inventory that sets
    C(ansible_connection=kubeasz.network.netns) and C(kubeasz_lab_dir) for every node.
  - The remote user and become are ignored; commands run as the controller's user (root).
  - Meant for namespace labs and tests on one machine (the lab's nodes share the controller's kernel);
    real nodes are reached with P(ansible.builtin.ssh#connection) or any other remote connection.
"""

EXAMPLES = r"""
# clusters/lab/hosts (as written by `ezctl lab up lab`)
# [kube_node]
# node1 ansible_connection=kubeasz.network.netns kubeasz_lab_dir=/run/kubeasz-lab/lab

# ansible -i clusters/lab/hosts kube_node -m ansible.builtin.command -a hostname
"""

import os
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

LAB_ROOT = "/run/kubeasz-lab"
NS_KINDS = ("net", "mnt", "uts")
BUFSIZE = 65536


class Connection(ConnectionBase):
    """Enter a lab node's network, mount and UTS namespaces with nsenter."""

    transport = "kubeasz.network.netns"
    has_pipelining = True
    has_tty = False

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._node = None
        self._lab_dir = None
        self._nsenter = None

    # ------------------------------------------------------------------ helpers
    def _find_lab_dir(self, node):
        lab_dir = self.get_option("lab_dir")
        if lab_dir:
            return lab_dir
        try:
            labs = sorted(os.listdir(LAB_ROOT))
        except OSError:
            labs = []
        found = [os.path.join(LAB_ROOT, lab) for lab in labs
                 if os.path.exists(os.path.join(LAB_ROOT, lab, node + ".net"))]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AnsibleConnectionFailure(
                "lab node %s exists in several labs (%s): set kubeasz_lab_dir"
                % (node, ", ".join(found)))
        return os.path.join(LAB_ROOT, "<cluster>")

    def _nsenter_argv(self):
        return [self._nsenter] + [
            "--%s=%s" % ("mount" if kind == "mnt" else kind,
                         os.path.join(self._lab_dir, "%s.%s" % (self._node, kind)))
            for kind in NS_KINDS
        ] + ["--"]

    def _connect(self):
        if self._connected:
            return self
        node = self.get_option("remote_addr") or self._play_context.remote_addr
        if not node or "/" in node or node.startswith("."):
            raise AnsibleConnectionFailure("invalid lab node name %r" % (node,))
        lab_dir = self._find_lab_dir(node)
        missing = [kind for kind in NS_KINDS
                   if not os.path.exists(os.path.join(lab_dir, "%s.%s" % (node, kind)))]
        if missing:
            raise AnsibleConnectionFailure(
                "lab node %s not found under %s: run ezctl lab up" % (node, lab_dir))
        nsenter = self.get_option("nsenter_path") or "nsenter"
        resolved = nsenter if os.path.isabs(nsenter) else shutil.which(nsenter)
        if not resolved or not os.access(resolved, os.X_OK):
            raise AnsibleConnectionFailure("nsenter not found (%s): install util-linux" % nsenter)
        self._node, self._lab_dir, self._nsenter = node, lab_dir, resolved
        display.vvv("ESTABLISH NETNS CONNECTION TO %s IN %s" % (node, lab_dir), host=node)
        self._connected = True
        return self

    def _popen(self, argv, stdin, stdout):
        display.vvvv("NETNS EXEC %s" % argv, host=self._node)
        return subprocess.Popen([to_bytes(a, errors="surrogate_or_strict") for a in argv],
                                stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)

    # ------------------------------------------------------------------ API
    def exec_command(self, cmd, in_data=None, sudoable=True):
        """Run ``/bin/sh -c cmd`` inside the node."""
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._connect()
        argv = self._nsenter_argv() + ["/bin/sh", "-c", cmd]
        display.vvv("EXEC %s" % to_text(cmd), host=self._node)
        proc = self._popen(argv, subprocess.PIPE if in_data is not None else subprocess.DEVNULL,
                           subprocess.PIPE)
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        """Copy a controller file to ``out_path`` in the node's mount namespace."""
        super(Connection, self).put_file(in_path, out_path)
        self._connect()
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._node)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % to_native(in_path))
        argv = self._nsenter_argv() + ["dd", "of=%s" % out_path, "bs=%d" % BUFSIZE,
                                       "status=none"]
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as src:
            proc = self._popen(argv, src, subprocess.DEVNULL)
            dummy, stderr = proc.communicate()
        if proc.returncode != 0:
            raise AnsibleError("failed to transfer %s to %s on %s: %s"
                               % (in_path, out_path, self._node, to_native(stderr).strip()))

    def fetch_file(self, in_path, out_path):
        """Copy ``in_path`` from the node's mount namespace to the controller."""
        super(Connection, self).fetch_file(in_path, out_path)
        self._connect()
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._node)
        argv = self._nsenter_argv() + ["dd", "if=%s" % in_path, "bs=%d" % BUFSIZE,
                                       "status=none"]
        tmp = to_bytes(out_path, errors="surrogate_or_strict") + b".netns-part"
        try:
            with open(tmp, "wb") as dst:
                proc = self._popen(argv, subprocess.DEVNULL, dst)
                dummy, stderr = proc.communicate()
            if proc.returncode != 0:
                raise AnsibleError("failed to fetch %s from %s: %s"
                                   % (in_path, self._node, to_native(stderr).strip()))
            os.rename(tmp, to_bytes(out_path, errors="surrogate_or_strict"))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def close(self):
        self._connected = False
