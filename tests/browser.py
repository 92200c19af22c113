"""What the page tests share: Debian's Chromium driven by Playwright with the project's flags (never a browser
download), every console error and page error of a page collected, and the sign-in form.

A plugin of the test run (tests/conftest.py): any test may take the fixtures `browser` and `browser_page`.
"""
from __future__ import annotations

import asyncio
import os
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"
FAKE_MICROPHONE = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


@contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """A Chromium browser with the project's flags and `extra_args`, closed on the way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def watch(page: Any, problems: list[str] | None = None, *, failed_requests: bool = False) -> list[str]:
    """Collect the page's console errors and JavaScript errors (and, if asked, answers of 400 and up) in
    `problems`, which is returned: a page test ends by asserting it is empty."""
    problems = [] if problems is None else problems
    page.on("console", lambda message: problems.append(f"{message.text} {message.location}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    if failed_requests:
        page.on("response", lambda response: problems.append(f"{response.status} {response.url}")
                if response.status >= 400 else None)
    return problems


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    """Open `url` (a login page, or one that sends to it) and submit the login form."""
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def open_page(browser: Any, **options: Any) -> tuple[Any, list[str]]:
    """A page in a context of its own (cookies and storage not shared with other tests) and the list of its
    console and JavaScript errors."""
    page = browser.new_page(**options)
    # The site has no favicon (not a page's concern); without this, Chromium logs its 404 as an error.
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    return page, watch(page)


@pytest.fixture(scope="session")
def _shared_chromium() -> Iterator[tuple[Any, asyncio.AbstractEventLoop]]:
    """One Chromium per test process for the page tests that need no flags of their own: a launch costs ~2 s of
    CPU (Chromium and Playwright's driver).

    Playwright's sync API marks its event loop as running in this thread after each call, and the loop stays in
    the middle of a run for as long as the browser is open. Between page tests the mark is lifted, so that the
    async tests that follow in this process can run loops of their own; `lent_browser` puts it back."""
    with chromium(AUTOPLAY) as browser:
        loop = asyncio.get_running_loop()
        asyncio._set_running_loop(None)
        try:
            yield browser, loop
        finally:
            asyncio._set_running_loop(loop)  # as Playwright left it, for chromium() to close the browser


@contextmanager
def lent_browser(shared: tuple[Any, asyncio.AbstractEventLoop]) -> Iterator[Any]:
    """The shared browser for one test, which gets it with no pages open and leaves it so."""
    browser, loop = shared
    with pytest.MonkeyPatch.context() as patch:
        # The loop marked as running makes Django refuse the test's own (sync) ORM calls.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        asyncio._set_running_loop(loop)
        try:
            yield browser
        finally:
            for context in browser.contexts:
                context.close()
            asyncio._set_running_loop(None)


@pytest.fixture
def browser(_shared_chromium):
    """Chromium with the project's flags and AUTOPLAY, shared by the tests of this process; a page opened with
    `open_page` has a context of its own."""
    with lent_browser(_shared_chromium) as browser:
        yield browser


@pytest.fixture
def browser_page(browser):
    """A page and the list of its console and JavaScript errors."""
    return open_page(browser)
