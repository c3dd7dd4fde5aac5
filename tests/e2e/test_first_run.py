"""A first run as README tells it: its commands run as written after ``make run`` or ``make test``,
``make run`` installs only what serving needs, and the package builds without a warning."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers import ROOT

README = ROOT / "README.md"
SHELL = {"export", "cd", "source", "."}  # builtins: no file on PATH


def readme_commands() -> list[list[str]]:
    """Every command of README's ```sh blocks, as words, without comments or VAR=value prefixes."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    commands = []
    for line in "".join(blocks).splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words.pop(0)
        if words:
            commands.append(words)
    return commands


def substitutions(words: list[str]) -> list[str]:
    """The ``$(...)`` commands inside a command's words."""
    return [inner for word in words for inner in re.findall(r"\$\((.*)\)", word)]


def help_text(program: list[str]) -> str:
    run = subprocess.run([*program, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    return run.stdout


def test_every_readme_command_runs_as_written_from_the_checkout() -> None:
    commands = readme_commands()
    assert len(commands) >= 6  # the blocks were found
    makefile = (ROOT / "Makefile").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    helps: dict[str, str] = {}
    for words in commands:
        program = words[0]
        if program == "make":
            assert re.search(rf"^{words[1]}:", makefile, re.MULTILINE), words
            continue
        if not program.startswith(".venv/bin/"):
            # The venv's programs are not on PATH after `make run`: README must say .venv/bin/.
            assert not (ROOT / ".venv" / "bin" / program).exists(), f"{shlex.join(words)}: write .venv/bin/{program}"
            assert program in SHELL or shutil.which(program), words  # mkdir, rm, git...
            continue
        assert os.access(ROOT / program, os.X_OK), words
        if program == ".venv/bin/pip":
            assert words[1:3] == ["install", ".[redis]"], words  # from the checkout, not a package index
            assert "redis" in extras
            continue
        # Every option it uses is one the program has.
        server = words[:3] if words[1:3] == ["-m", "asgi_chat"] else words[:1]
        key = " ".join(server)
        helps.setdefault(key, help_text([str(ROOT / server[0]), *server[1:]]))
        for option in (word.split("=")[0] for word in words if word.startswith("--")):
            assert option in helps[key], f"{key} has no {option}"
        for inner in substitutions(words):
            inner_words = shlex.split(inner)
            assert inner_words[0].startswith(".venv/bin/"), inner
            printed = subprocess.run(inner_words, cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
            assert Path(printed.stdout.strip()).is_file(), inner  # the --log-config file


def test_make_run_installs_what_serving_needs_and_no_test_tools() -> None:
    make = shutil.which("make")
    assert make is not None
    # -n -B: the commands a fresh clone's `make run` would run, without running them.
    planned = subprocess.run(
        [make, "-n", "-B", "run"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    installs = [line for line in planned.stdout.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [".venv/bin/pip install --quiet -e '.[redis]'"]


def test_the_package_builds_and_installs_without_a_warning(tmp_path: Path) -> None:
    """What pip prints while setuptools builds the package, in full (-v), for a wheel and for the
    editable install of `make run`: no deprecation (the license as a table once was one), no file
    left out of the packages configuration, no note about the editable install's finder."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "asgi_chat", source / "asgi_chat", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "venv"  # a bare venv for the editable install: pip runs from outside it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, timeout=30)
    pip = [sys.executable, "-m", "pip"]
    commands = {
        "wheel": [*pip, "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"), "."],
        "editable": [*pip, "--python", str(target / "bin" / "python"), "install", "--no-deps", "-v", "-e", "."],
    }
    # Without PYTHONDONTWRITEBYTECODE, which makes setuptools say it skips byte-compiling.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    # Both at once: each sets up its own build environment, most of the time taken.
    running = {
        name: subprocess.Popen(
            command, cwd=source, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        for name, command in commands.items()
    }
    for name, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
        warnings = [line for line in output.splitlines() if re.search(r"warning|deprecat", line, re.IGNORECASE)]
        assert warnings == [], f"{name}:\n" + "\n".join(warnings)
    [wheel] = (tmp_path / "dist").glob("asgi_chat-*.whl")
    listing = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for data in ("asgi_chat/web/static/chat.html", "asgi_chat/web/static/style.css", "asgi_chat/ops/logging.json"):
        assert data in listing
