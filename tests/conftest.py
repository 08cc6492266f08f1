"""Shared pytest set-up: make `ansible_collections.kubeasz.network` importable from the work tree,
and the route guard's entry point (`flannel_route_guard`, a file of the role)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
GUARD_ENTRY = os.path.join(REPO, "roles", "flannel", "files")

if os.path.isdir(COLLECTIONS) and COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
if GUARD_ENTRY not in sys.path:
    sys.path.insert(0, GUARD_ENTRY)
