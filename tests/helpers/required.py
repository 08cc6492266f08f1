"""A part a test needs that the project's own set-up provides (a venv, a binary)."""
import os

import pytest


def missing(reason: str) -> None:
    """Skip when a developer's machine lacks the part; under CI (CI=true), where `make test` made
    it, a missing part is a failure, never a silent skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: `make test` should have provided it)")
    pytest.skip(reason)
