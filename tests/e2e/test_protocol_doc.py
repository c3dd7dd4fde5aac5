"""The generated pages say what the code does now: docs/PROTOCOL.md from real runs of the app,
docs/configuration.md from the settings' own metadata."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.parametrize("generator", ["docs.generate_protocol", "docs.generate_config"])
def test_the_generated_page_is_up_to_date(generator: str) -> None:
    check = subprocess.run(
        [sys.executable, "-m", generator, "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
