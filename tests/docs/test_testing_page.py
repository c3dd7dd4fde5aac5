"""docs/testing.md's examples are tests: each ``python`` block runs on its own, and every
``test_*`` it defines runs here, so the page cannot drift from what passes.

Each block is compiled under the page's own file name, shifted to its place in it, so a failure's
traceback points at the line of docs/testing.md that failed. ``async def`` tests run with
``asyncio.run``, as the page's conftest hook runs them in a user's project.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from dataclasses import dataclass

import pytest
from _pytest.assertion.rewrite import rewrite_asserts

import asgi_chat.testing
from tests.helpers import ROOT

PAGE = ROOT / "docs" / "testing.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    line: int  # the page's line of the block's first line of code
    code: str

    def tests(self) -> list[str]:
        return [
            node.name
            for node in ast.parse(self.code).body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        ]

    def run(self) -> dict[str, object]:
        """Execute the block in a namespace of its own, as a module; that namespace.

        Its asserts are rewritten as pytest rewrites a test module's, so a failure shows the values.
        """
        source = "\n" * (self.line - 1) + self.code
        tree = ast.parse(source)
        rewrite_asserts(tree, source.encode(), str(PAGE))
        namespace: dict[str, object] = {"__name__": f"testing_md_line_{self.line}"}
        exec(compile(tree, str(PAGE), "exec"), namespace)
        return namespace


def blocks() -> list[Block]:
    text = PAGE.read_text(encoding="utf-8")
    return [Block(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in FENCE.finditer(text)]


EXAMPLES = [(block, name) for block in blocks() for name in block.tests()]


@pytest.mark.parametrize(("block", "name"), EXAMPLES, ids=[name for _, name in EXAMPLES])
def test_the_example_passes(block: Block, name: str) -> None:
    test = block.run()[name]
    assert callable(test)
    assert not inspect.signature(test).parameters, f"{name}: an example on the page takes no fixtures"
    result = test()
    if inspect.iscoroutine(result):
        asyncio.run(result)


def test_every_block_runs_and_the_examples_cover_each_endpoint() -> None:
    for block in blocks():
        block.run()  # a block without tests (the conftest hook) must still be valid code
    names = [name for _, name in EXAMPLES]
    assert len(names) == len(set(names)), "two examples of the same name: one would hide the other"
    text = PAGE.read_text(encoding="utf-8")
    for path in ('"/ws"', '"/ws/1"', '"/items/foo/ws', '"/chat/ws"', "LifespanCommunicator(app)"):
        assert path in "".join(block.code for block in blocks()), path
    assert "## The scope keys a test must give" in text


def test_the_conftest_hook_on_the_page_is_the_suites_own() -> None:
    def hook(source: str) -> str:
        tree = ast.parse(source)
        [node] = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "pytest_pyfunc_call"]
        return ast.dump(node)

    [shown] = [block for block in blocks() if "def pytest_pyfunc_call" in block.code]
    assert hook(shown.code) == hook((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))


def test_the_page_names_all_of_asgi_chat_testing() -> None:
    text = PAGE.read_text(encoding="utf-8")
    public = [
        name
        for name, value in vars(asgi_chat.testing).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == "asgi_chat.testing"
    ]
    assert public
    for name in public:
        assert f"`{name}" in text, f"docs/testing.md does not mention asgi_chat.testing.{name}"
