"""Headless Chromium for the console tests: Debian's ``chromium`` driven by Playwright (no browser download).

Tests that need it skip with one line when the binary is missing; ``SWITCHBOARD_CHROMIUM`` points at another
Chromium. Every page error or console error fails the test (``BrowserPage.errors``), and screenshots go to
``SWITCHBOARD_CONSOLE_ARTIFACTS`` (default ``tests/.artifacts/console``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("SWITCHBOARD_CONSOLE_ARTIFACTS", ROOT / "tests" / ".artifacts" / "console"))


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"needs headless Chromium at {CHROMIUM} (Debian: apt-get install chromium)")


@dataclass
class BrowserPage:
    page: Any
    errors: list[str] = field(default_factory=list)

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@asynccontextmanager
async def browser_page(width: int = 1400, height: int = 900) -> AsyncIterator[BrowserPage]:
    """A fresh page in a fresh headless Chromium; fails the test if the page threw or logged an error."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(15_000)
            result = BrowserPage(page)
            page.on("pageerror", lambda error: result.errors.append(f"page error: {error}"))
            page.on("console", lambda msg: result.errors.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error" else None)

            async def dialog(box: Any) -> None:  # an alert() means injected script ran; dismiss it so the page goes on
                result.errors.append(f"dialog: {box.message}")
                await box.dismiss()

            page.on("dialog", dialog)
            yield result
            assert result.errors == [], result.errors
        finally:
            await browser.close()
