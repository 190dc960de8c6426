"""Chromium plays an evidence clip as the operations-room page will: fetched from the API with
the operator's token and played from a blob URL; and a police link plays on its own."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest
from console_support import raise_alert, seed_registry
from playwright.async_api import async_playwright
from test_evidence_centre import agent_http, centre_console, manifest_for, mp4, upload

from console_api import Role
from store import StoreConfig

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
__all__ = ["mp4"]  # the clip fixture, shared with the centre's tests
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK) and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (apt-get install chromium)",
    ),
]
PLAY = """async ([url, token]) => {
    const answer = await fetch(url, {headers: token ? {Authorization: `Bearer ${token}`} : {}});
    if (!answer.ok) return {status: answer.status};
    const video = document.createElement("video");
    video.muted = true;
    document.body.append(video);
    const ready = new Promise((resolve, reject) => {
        video.addEventListener("loadeddata", resolve, {once: true});
        video.addEventListener("error", () => reject(String(video.error?.message)), {once: true});
    });
    video.src = URL.createObjectURL(await answer.blob());
    await ready;
    await video.play();
    return {status: answer.status, width: video.videoWidth, height: video.videoHeight,
            duration: video.duration};
}"""


async def test_chromium_plays_the_clip_for_an_operator(
    database: StoreConfig, db: asyncpg.Connection, tmp_path: Path, mp4: bytes
) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db)
    async with (
        centre_console(database, db, tmp_path) as (console, _centre),
        agent_http(console) as agent,
    ):
        assert (await upload(agent, manifest_for(mp4, alert_id), mp4)).status_code == 201
        token = await console.user(Role.OPERATOR)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{console.url}/healthz")  # the API's origin
                played = await page.evaluate(PLAY, ["/api/v1/evidence/clips/clip-1/file", token])
            finally:
                await browser.close()
    assert played["status"] == 200
    assert (played["width"], played["height"]) == (640, 360)
    assert played["duration"] == pytest.approx(10.0, abs=1.1)
