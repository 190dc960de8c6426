"""The operations-room page in headless Chromium (Debian's, driven by Playwright): log in,
see an alert arrive live, acknowledge it, switch language; everything from our origin."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from console_support import console, create_latest_state_tables, raise_alert, seed_registry
from playwright.async_api import async_playwright

from console_api import Role
from store import StoreConfig

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
pytestmark = [
    pytest.mark.postgres,
    # Skipped only on a developer machine without it; .ci/run installs it, and in CI
    # (CI=true) a missing browser fails the test instead of hiding it.
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK) and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (apt-get install chromium)",
    ),
]


async def test_log_in_see_an_alert_arrive_and_acknowledge_it(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await create_latest_state_tables(db)
    await db.execute(
        "INSERT INTO camera_status VALUES ('cam-a', 'online', 5, now(), now(), 0, NULL)"
    )
    async with console(database, db) as c, async_playwright() as playwright:
        await c.user(Role.OPERATOR)
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = await browser.new_page()
            requests: list[str] = []
            problems: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type == "error" else None,
            )
            await page.goto(f"{c.url}/")
            await page.fill("#username", "operator-1")
            await page.fill("#password", "correct horse battery")
            await page.click("#login-form button[type=submit]")
            await page.locator("#link[data-state=live]").wait_for()
            await page.locator('[data-camera-id="cam-a"] .status-online').wait_for()
            assert await page.locator("#alert-list tr").count() == 0

            alert_id, _ = await raise_alert(db)
            row = page.locator(f'#alert-list tr[data-alert-id="{alert_id}"]')
            await row.wait_for()
            assert "Xâm nhập khu vực cấm" in await row.inner_text()
            opened = await db.fetchval("SELECT opened_at FROM alerts WHERE id = $1", alert_id)
            local = opened.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%H:%M:%S")
            assert local in await row.inner_text()

            await row.locator("button.ack").click()
            await page.locator(
                f'#alert-list tr[data-alert-id="{alert_id}"][data-state="acknowledged"]'
            ).wait_for()
            stored = await db.fetchrow(
                "SELECT state, acknowledged_by FROM alerts WHERE id = $1", alert_id
            )
            assert tuple(stored or ()) == ("acknowledged", "operator-1")

            await page.click("#lang")
            assert await page.inner_text("h1") == "Operations centre"
            text = await row.inner_text()
            assert "Intrusion into a restricted zone" in text
            assert "Acknowledged" in text

            await row.locator("button.resolve").click()
            await row.wait_for(state="detached")
            assert problems == []
            local_origins = (c.url, f"ws://{c.host}")
            assert requests
            assert all(url.startswith(local_origins) for url in requests), requests
        finally:
            await browser.close()
