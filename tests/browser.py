"""What the page tests share: Debian's Chromium driven by Playwright with the project's flags (never a browser
download), every console error and page error of a page collected, and the sign-in form.

A test module takes the fixtures by name, e.g. `browser_page = browser.browser_page` after
`from tests import browser` (pytest finds fixtures among a module's names).
"""
from __future__ import annotations

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


@contextmanager
def module_chromium() -> Iterator[Any]:
    """One browser for all the tests of a module whose tests all drive pages (a launch costs ~1.5 s of CPU):
    the module defines a module-scoped fixture from this, so that tests/scheduling.py runs it on one worker.
    Playwright's sync API keeps an event loop running in this thread while the browser is open, which an async
    test would trip on; the ORM, which checks for one, is told it may run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with chromium(AUTOPLAY) as browser:
            yield browser


@pytest.fixture
def browser(monkeypatch):
    # Sync Playwright keeps an event loop running in this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium(AUTOPLAY) as browser:
        yield browser


@pytest.fixture
def browser_page(monkeypatch):
    """A page and the list of its console and JavaScript errors. (Its own browser, not the `browser` fixture:
    a module may take this fixture alone.)"""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium(AUTOPLAY) as browser:
        yield open_page(browser)
