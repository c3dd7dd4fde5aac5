"""docs/PROTOCOL.md is generated from real runs; this fails when it no longer says what the code does."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_protocol_md_is_up_to_date() -> None:
    check = subprocess.run(
        [sys.executable, "-m", "docs.generate_protocol", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
