"""Shared fixtures: the Hub kept offline, one finished demo build and a headless browser page.

Helpers (paths, config factories, loopback servers, small runs) live in ``tests/support/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# huggingface_hub and datasets read these once, at import: set them before any test imports them
# (the per-test monkeypatch below comes too late for module-level constants).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from tests.support.browser import CHROMIUM_ARGS, chromium  # noqa: E402
from tests.support.cli import run_cli  # noqa: E402
from tests.support.paths import CONFIGS  # noqa: E402


@pytest.fixture(autouse=True)
def _no_hub_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the Hugging Face Hub; an accidental call fails fast instead."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped offline demo, built once for every test that only reads it."""
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    result = run_cli("build", "--config", CONFIGS / "demo.yaml", "--run-dir", run_dir,
                     "--no-progress")
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture()
def page() -> Iterator[Any]:
    """A fresh browser per test; any page error or dialog (an ``alert``) fails the test.

    Per test, not per module: Playwright's sync API keeps an event loop running while it is
    open, and a build (``asyncio.run``) cannot start inside it, so runs are made first.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                      accept_downloads=True)
        opened = context.new_page()
        errors: list[str] = []
        opened.on("pageerror", lambda error: errors.append(str(error)))
        opened.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"),
                                            dialog.dismiss()))
        yield opened
        browser.close()
    assert errors == []
