"""The sample site in a real headless Chromium: listing, the form, the escaped echo, debug page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asyncnet.demos.web import sample_site
from asyncnet.web import web_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FILE_NAME = "<img src=x onerror=\"document.title='pwned'\"><b>bold.txt"  # no slash in a name
HOSTILE = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"


async def test_browse_submit_and_debug_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed (pip install playwright)"
    )
    root = sample_site(tmp_path)
    (root / "docs" / FILE_NAME).write_text("hostile name")
    async with web_server(root, port=0, cgi=True, debug=True) as server:
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
            )
            try:
                page = await browser.new_page()
                # the listing: the hostile file name is text, and its link works
                await page.goto(server.url + "docs/")
                names = await page.locator("li a").all_text_contents()
                listing_images = await page.locator("img, script, b").count()
                listing_title = await page.title()
                await page.get_by_text(FILE_NAME, exact=True).click()
                await page.wait_for_load_state()
                opened = await page.locator("body").inner_text()

                # the CGI form: type, submit, read the escaped echo
                for path, echo_selector in (("form.html", "body"), ("form", "#echo")):
                    await page.goto(server.url + path)
                    await page.fill("#subnum", "42")
                    await page.fill("#reviewer", HOSTILE)
                    await page.fill("#comments", "spam & eggs")
                    async with page.expect_navigation():
                        await page.click("#submit")
                    echoed = await page.locator(echo_selector).inner_text()
                    assert "subnum=42" in echoed, path
                    assert f"reviewer={HOSTILE}" in echoed, path
                    assert "comments=spam & eggs" in echoed, path
                    assert await page.locator("body img, body script").count() == 0, path
                    assert await page.title() == "Hello!", path

                # the debug page: the traceback, escaped, with the locals
                response = await page.goto(server.url + "debug/crash?q=" + "<b>bold</b>")
                assert response is not None
                debug_status = response.status
                heading = await page.locator("h1").inner_text()
                debug_text = await page.locator("body").inner_text()
                bold = await page.locator("b").count()
            finally:
                await browser.close()
    assert FILE_NAME in names
    assert listing_images == 0
    assert listing_title == "Directory listing for /docs/"
    assert opened.strip() == "hostile name"
    assert debug_status == 500
    assert heading == "ValueError: deliberate error for <b>bold</b>"
    assert "secret_token" in debug_text
    assert "s3cr3t" not in debug_text
    assert bold == 0


async def test_debug_is_off_without_the_flag(tmp_path: Path) -> None:
    async with web_server(sample_site(tmp_path), port=0) as server:
        from asyncnet.web import Client

        async with Client(timeout=10) as client, asyncio.timeout(10):
            response = await client.fetch(server.url + "debug/crash")
    assert response.status == 404
