"""Headless Chromium for the page tests (../shared/CLIENTS.md): Debian's /usr/bin/chromium
driven by playwright, a fresh profile per use, WebGL through SwiftShader."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def wait_until(page, expression: str, seconds: float = 30) -> None:
    """Poll ``expression`` with page.evaluate (wait_for_function compiles its predicate
    with eval, which the platform's Content-Security-Policy rightly forbids)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(100)


@contextmanager
def chromium(viewport: tuple[int, int] | None = (1024, 768), **options) -> Iterator:
    """A browser context of its own (a fresh profile, removed afterwards)."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    if viewport is not None:
        options["viewport"] = {"width": viewport[0], "height": viewport[1]}
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True, **options)
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def chromium_page(viewport: tuple[int, int] | None = (1024, 768), **options) -> Iterator[tuple]:
    """``(page, errors, requests)``: console errors, page errors and 4xx/5xx responses are
    collected in ``errors``, every requested URL in ``requests``."""
    with chromium(viewport, **options) as ctx:
        page = ctx.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        yield page, errors, requests
