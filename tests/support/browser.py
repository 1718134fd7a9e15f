"""The review gallery in headless Chromium (the system one, driven by Playwright) and over HTTP.

The ``page`` fixture itself is in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI for the review gallery tests")
        pytest.skip("chromium is not installed")
    return found


def open_gallery(page: Any, gallery: Path, fragment: str = "") -> None:
    page.goto(gallery.as_uri() + fragment)
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator(".page-error").count() == 0


def post(url: str, body: bytes, **headers: str) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
