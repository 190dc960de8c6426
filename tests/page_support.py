"""Helpers for the operations-room page tests: Debian's Chromium through Playwright, signing
in as someone, and reading what the page shows."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, async_playwright

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SCREEN: ViewportSize = {"width": 1600, "height": 1000}
PAGE_MARKS = [
    pytest.mark.postgres,
    pytest.mark.mosquitto,
    # Skipped only on a developer machine without it; .ci/run installs it, and in CI
    # (CI=true) a missing browser fails the test instead of hiding it.
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK) and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (apt-get install chromium)",
    ),
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Watched:
    """A page and what went wrong in it: script errors and console errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: self.requests.append(r.url))


async def open_page(
    browser: Browser, url: str, username: str, *, lang: str = "vi", password: str | None = None
) -> Watched:
    """A fresh browser context (its own session) at the page, signed in as ``username``."""
    context = await browser.new_context(viewport=SCREEN)
    page = await context.new_page()
    watched = Watched(page)
    await page.goto(f"{url}/")
    await page.evaluate("lang => localStorage.setItem('ioc.lang', lang)", lang)
    await page.reload()
    await page.fill("#username", username)
    await page.fill("#password", password or "correct horse battery")
    await page.click("#login-form button[type=submit]")
    await page.locator("#room:not([hidden])").wait_for()
    return watched


async def incident_of(db: asyncpg.Connection, alert_id: str) -> str:
    """The incident the alerts engine put ``alert_id`` in (the page lists incidents)."""
    return str(await db.fetchval("SELECT incident_id FROM alerts WHERE id = $1", alert_id))


def row(page: Page, incident_id: str, extra: str = "") -> Locator:
    return page.locator(f'.incident-row[data-incident-id="{incident_id}"]{extra}')


# Every visible text of the page, option texts and titles included.
VISIBLE_TEXTS = """() => {
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    const text = node.textContent.trim();
    if (!text || !parent) continue;
    const option = parent.tagName === "OPTION";
    if (option ? parent.closest("[hidden]") : !parent.checkVisibility()) continue;
    texts.push(text);
  }
  for (const node of document.querySelectorAll("[title], [aria-label]")) {
    if (!node.checkVisibility()) continue;
    for (const value of [node.title, node.getAttribute("aria-label")]) {
      if (value) texts.push(value.trim());
    }
  }
  return texts;
}"""
