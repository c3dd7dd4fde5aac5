"""What the browser tests share: one Chromium per module, a fresh browser context per page, and a
room of each test's own.

Each browser test module has its own ``server`` fixture (with the settings the module needs);
the fixtures here build on whichever the requesting module has.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.e2e.browser_support import ContextFactory, browser_contexts, chromium
from tests.helpers import Server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def new_context(browser: Browser, server: Server) -> Iterator[ContextFactory]:
    with browser_contexts(browser, server) as make:
        yield make


@pytest.fixture
def room(request: pytest.FixtureRequest) -> str:
    """A room of the test's own (the module's server outlives each test): its name, shortened."""
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.removeprefix("test_").lower())[:64].strip("-")
