"""What the generated pages share: write a page, or check that the one in the tree is current."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


def write_or_check(doc: Path, text: str, *, check: bool, make_target: str) -> int:
    """Write ``text`` to ``doc``; with ``check``, compare instead and print a diff when it differs.

    Returns the exit status: 1 for a page that is out of date, else 0.
    """
    if not check:
        doc.write_text(text, encoding="utf-8")
        return 0
    current = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if current == text:
        return 0
    diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(doc), "generated")
    sys.stdout.writelines(diff)
    print(f"\n{doc} is out of date: run `make {make_target}` and commit the result.")
    return 1
