"""A first run as README tells it: its commands run as written after ``make run`` or ``make test``,
``make run`` installs only what serving needs, and the package builds without a warning."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT, TIMEOUT, Server, free_port

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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What pip prints while setuptools builds the package, in full (-v), for a wheel and for the
    editable install of `make run`, from a copy of the files a source distribution holds."""
    tmp_path = tmp_path_factory.mktemp("build")
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
    outputs = {}
    for name, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
        outputs[name] = output
    [wheel] = (tmp_path / "dist").glob("asgi_chat-*.whl")
    outputs["wheel_path"] = str(wheel)
    return outputs


def test_the_package_builds_and_installs_without_a_warning(built: dict[str, str]) -> None:
    """No deprecation (the license as a table once was one), no file left out of the packages
    configuration, no note about the editable install's finder."""
    for name in ("wheel", "editable"):
        warnings = [line for line in built[name].splitlines() if re.search(r"warning|deprecat", line, re.IGNORECASE)]
        assert warnings == [], f"{name}:\n" + "\n".join(warnings)
    listing = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", built["wheel_path"]],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for data in ("asgi_chat/web/static/chat.html", "asgi_chat/web/static/style.css", "asgi_chat/ops/logging.json"):
        assert data in listing
    # Every package of the checkout is in the wheel: `pip install .` once left one out.
    for init in sorted((ROOT / "asgi_chat").rglob("__init__.py")):
        assert init.relative_to(ROOT).as_posix() in listing, init


def test_the_installed_wheel_imports_and_serves_from_outside_the_checkout(
    built: dict[str, str], tmp_path: Path
) -> None:
    """`pip install .` as README says, then a start from elsewhere: every module imports, and the
    pages' static files come from the installed copy, not from this checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=30)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", built["wheel_path"]], check=True, timeout=120)
    # The dependencies (uvicorn, asgiref, ...) from this venv's site-packages, named by a .pth file:
    # a path line is added to sys.path as it is, so the checkout's editable finder there is not loaded.
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run(
        [str(python), "-c", IMPORT_EVERY_MODULE],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    port = free_port()
    command = [str(python), "-m", "asgi_chat", "--host", "127.0.0.1", "--port", str(port)]
    with Server(command, port, tmp_path / "server.log", env={"PYTHONPATH": ""}, cwd=outside) as server:
        for path, expected in (("/healthz", b'"status"'), ("/chat", b"<html"), ("/static/rooms.js", b"asgi-chat.v1")):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=TIMEOUT) as answer:
                assert answer.status == 200, path
                assert expected in answer.read(), path


# Imports every module of the installed package (a module a list by hand left out fails here)
# and prints where the package was found.
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, asgi_chat
for module in pkgutil.walk_packages(asgi_chat.__path__, "asgi_chat."):
    if not module.name.endswith("__main__"):  # that one starts the server
        importlib.import_module(module.name)
print(asgi_chat.__path__[0])
"""


def system_packages() -> dict[str, str]:
    """The Makefile's SYSTEM_PACKAGES, program -> Debian package."""
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    [value] = re.findall(r"^SYSTEM_PACKAGES := (.*)$", makefile, re.MULTILINE)
    return dict(pair.split(":") for pair in value.split())


def test_make_test_installs_every_program_the_suite_drives() -> None:
    """A fresh machine's `make test` has what the tests start: each program they run is in the
    Makefile's list, `make test` runs that step first, and CI runs nothing but `make test`."""
    sources = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("*.py"))
    driven = {"redis-server", "chromium", "nginx", "certutil", "envsubst", "openssl"}
    for program in driven:
        assert re.search(rf'"{program}"', sources), f"no test runs {program}: drop it from this list"
    assert driven <= set(system_packages())
    assert re.search(r"^test: system-packages ", (ROOT / "Makefile").read_text(), re.MULTILINE)
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "make test"
    assert not any("apt-get" in line for line in ci)


def test_without_root_make_test_names_the_command_to_run(tmp_path: Path) -> None:
    """Where it cannot install (not root), one line says which command installs what is missing."""
    shutil.copy(ROOT / "Makefile", tmp_path)
    make = ["make", "-s", "system-packages", "SYSTEM_PACKAGES=no-such-program:no-such-package sh:dash"]
    if os.getuid() == 0:  # as root it would install: run it as nobody instead
        make = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *make]
    tmp_path.chmod(0o755)
    run = subprocess.run(make, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert run.stderr.splitlines()[0] == (
        "make test needs system packages it cannot install as this user: sudo apt-get install -y no-such-package"
    )
