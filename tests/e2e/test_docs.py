"""The docs say what the code does: README.md, SECURITY.md and every page of docs/.

- docs/configuration.md is what ``python -m docs.generate_config`` writes from the settings now;
- every command of a ```sh block runs as written: its make target, program, module, script and
  options exist (``--help`` lists each option used), its ``$(...)`` parts run;
- every ``asgi_chat.x.y`` import path and ``from asgi_chat... import ...`` resolves, every
  ``ASGI_CHAT_*`` variable is a setting (or a renamed one's old name), every ``make`` target named
  exists, every path into the checkout exists (a test named as ``tests/...py::test_name`` included);
- every ```python block runs.

mkdocs checks the links between pages (``make docs-check``, part of ``make test``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from asgi_chat.ops.settings import PREFIX, RENAMED, Settings
from tests.helpers import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", *DOCS]
SHELL = {"export", "cd", "source", "."}  # builtins: no file on PATH
# Programs built from the checkout (git-ignored), and the source whose options they take.
BUILT = {"bench/build/wsload": ROOT / "bench" / "wsload.c"}
# Written by running things, never in the checkout: `make bench`'s outputs.
OUTPUTS = ("bench/build/", "bench/results/")


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL)


def commands(page: Path) -> Iterator[list[str]]:
    """Every simple command of the page's ```sh blocks, as words: no comments, redirections or
    VAR=value prefixes, and a line of several commands (``&&``, ``;``, ``|``) split into each."""
    for line in "".join(blocks(page, "sh")).splitlines():
        words: list[str] = []
        for word in [*shlex.split(line, comments=True), "&&"]:
            if word in {"&&", "||", ";", "|"}:
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    check_variable(words.pop(0).split("=")[0])
                if words:
                    yield words
                words = []
            elif not word.startswith(("<", ">")):
                words.append(word)


def check_variable(name: str) -> None:
    if name.startswith(PREFIX) and name not in RENAMED:  # an old name: still read, said to be deprecated
        assert name.removeprefix(PREFIX).lower() in SETTINGS, f"{name} is no setting"


SETTINGS = {spec.name for spec in dataclasses.fields(Settings)}


@cache
def help_text(*program: str) -> str:
    run = subprocess.run([*program, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    return run.stdout


def make_targets(makefile: Path) -> set[str]:
    return set(re.findall(r"^([\w-]+):", makefile.read_text(), re.MULTILINE))


def check_make(words: list[str]) -> None:
    makefile = ROOT / "Makefile"
    args = words[1:]
    if args[:1] == ["-C"]:
        makefile, args = ROOT / args[1] / "Makefile", args[2:]
    assert makefile.is_file(), words
    for target in args:
        assert target in make_targets(makefile), f"{shlex.join(words)}: no target {target}"


def check_venv_program(words: list[str]) -> None:
    assert os.access(ROOT / words[0], os.X_OK), words
    if words[0] == ".venv/bin/pip":
        # From the checkout, not a package index, with an extra that exists.
        assert words[1:3] == ["install", ".[redis]"], words
        assert "redis" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        return
    if words[1:2] == ["-m"]:
        program = words[:3]
        assert importlib.util.find_spec(words[2]) is not None, words
    else:
        # The program and its subcommand or script, up to the first option.
        program = list(words[: next((i for i, w in enumerate(words) if w.startswith("-")), len(words))])
        if program[0] == ".venv/bin/python" and len(program) > 1:
            assert (ROOT / program[1]).is_file(), words
            program = program[:2]
        elif program[0] == ".venv/bin/uvicorn":
            program = program[:1]  # its argument is the app, not a subcommand
    text = help_text(str(ROOT / program[0]), *program[1:])
    for option in (word.split("=")[0] for word in words if word.startswith("--")):
        assert option in text, f"{shlex.join(program)} has no {option}"
    if words[1:2] == ["-c"]:
        subprocess.run(words, cwd=ROOT, capture_output=True, timeout=30, check=True)


def check_command(words: list[str]) -> None:
    program = words[0]
    if program == "make":
        check_make(words)
    elif program.startswith(".venv/bin/"):
        check_venv_program(words)
    elif program in BUILT:
        source = BUILT[program].read_text()
        for option in (word.removeprefix("--") for word in words if word.startswith("--")):
            assert f'"{option}"' in source, f"{program} has no --{option}"
    else:
        # The venv's programs are not on PATH after `make run`: the docs must say .venv/bin/.
        assert not (ROOT / ".venv" / "bin" / program).exists(), f"{shlex.join(words)}: write .venv/bin/{program}"
        assert program in SHELL or shutil.which(program), words
    for word in words:
        for inner in re.findall(r"\$\((.*)\)", word):
            inner_words = shlex.split(inner)
            assert inner_words[0].startswith(".venv/bin/"), inner
            printed = subprocess.run(inner_words, cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
            assert Path(printed.stdout.strip()).exists(), inner  # the --log-config file


def test_the_docs_show_commands() -> None:
    """The checks below have something to check: the blocks are found."""
    assert len([words for page in PAGES for words in commands(page)]) >= 20
    assert "make docs" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_command_runs_as_written_from_the_checkout(page: Path) -> None:
    for words in commands(page):
        check_command(words)


def resolve(path: str) -> object:
    """The module or attribute a dotted path names: the longest importable prefix, then getattr."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ModuleNotFoundError(path)


def import_paths(text: str) -> set[str]:
    paths = set(re.findall(r"(?<![\w.])asgi_chat(?:\.[A-Za-z_]\w*)+", text))
    for module, names in re.findall(r"^\s*from (asgi_chat[\w.]*) import ([\w, ]+)$", text, re.MULTILINE):
        paths |= {f"{module}.{name.strip()}" for name in names.split(",")}
    return paths


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_import_path_resolves(page: Path) -> None:
    for path in sorted(import_paths(page.read_text())):
        try:
            resolve(path)
        except (ImportError, AttributeError) as error:
            pytest.fail(f"{page_id(page)} names {path}: {error!r}")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_setting_make_target_and_path_exists(page: Path) -> None:
    text = page.read_text()
    for name in re.findall(r"\b" + PREFIX + r"[A-Z][A-Z_]*[A-Z]\b", text):
        check_variable(name)
    targets = make_targets(ROOT / "Makefile")
    for target in re.findall(r"`make ([\w-]+)", text):
        assert target in targets, f"{page_id(page)}: no make target {target}"
    for path, test in re.findall(r"(?<![\w./-])((?:asgi_chat|tests|bench|docs)/[\w./-]*\w/?)(?:::(\w+\*?))?", text):
        if path.startswith(OUTPUTS):
            continue
        assert (ROOT / path).exists(), f"{page_id(page)} names {path}, which does not exist"
        if test:
            pattern = re.escape(test.rstrip("*")) + (r"\w*" if test.endswith("*") else "")
            assert re.search(rf"def {pattern}\(", (ROOT / path).read_text()), f"{page_id(page)}: no {path}::{test}"


@pytest.mark.parametrize("page", [page for page in PAGES if blocks(page, "python")], ids=page_id)
def test_every_python_block_runs(page: Path) -> None:
    for number, source in enumerate(blocks(page, "python"), 1):
        code = compile(source, f"{page_id(page)}, python block {number}", "exec")
        exec(code, {"__name__": f"docs_block_{number}"})


def test_the_architecture_page_names_every_module_and_folder() -> None:
    """docs/architecture.md's layout is the one description of the package: a new file or folder
    goes into it (by name, in its folder's lines)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    match = re.search(r"^```text\n(asgi_chat/\n.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert match is not None, "the layout block is gone"
    layout = match.group(1)
    package = ROOT / "asgi_chat"
    for module in package.rglob("*.py"):
        if module.name != "__init__.py" or module.parent == package:
            assert module.name in layout, f"{module.relative_to(ROOT)} is not in docs/architecture.md"
    for folder in package.rglob("*/"):
        if folder.is_dir() and folder.name != "__pycache__":
            assert f"{folder.name}/" in layout, f"{folder.relative_to(ROOT)}/ is not in docs/architecture.md"
