"""Headless Chromium for the browser tests (tests/test_site.py, tests/figures/test_browser_lab.py).

The browser is Debian's ``chromium`` package (override with ``CHROMIUM=/path``), driven by
Playwright's Python package; Playwright's own browser downloads are not used. Without either
the tests skip and say which is missing (`.ci/run` installs both).
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-default-apps", "--disable-extensions"]
LOCAL_SCHEMES = ("file", "data", "blob", "about")


def is_local(url: str) -> bool:
    """True for URLs that stay on this machine: files, inline data, the loopback servers."""
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or parsed.hostname in ("127.0.0.1", "localhost", "::1")


def require_chromium():
    """Playwright's sync API; skips the calling test when it or the Chromium binary is missing."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright's Python package is not installed "
                                          "(pip install -r requirements-site.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium; "
                    "or set CHROMIUM=/path/to/chromium)")
    return sync_api


@contextmanager
def chromium_page(viewport=(1280, 860)):
    """(page, problems): a fresh page whose off-machine requests are blocked and recorded.

    ``problems`` collects "console error: ...", "page error: ...", "network: URL" (every
    request that would leave the machine, aborted) and "failed: URL" (local loads that failed).
    """
    sync_api = require_chromium()
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})

        def route(r):
            if is_local(r.request.url):
                r.continue_()
            else:
                problems.append(f"network: {r.request.url}")
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(
            f"console error: {m.text} ({m.location.get('url', '')})"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: is_local(r.url) and problems.append(
            f"failed: {r.url} ({r.failure})"))
        try:
            yield page, problems
        finally:
            browser.close()
