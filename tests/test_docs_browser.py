"""Swagger UI and ReDoc in headless Chromium, against the local run, with every other host blocked.

Needs Debian's Chromium at /usr/bin/chromium (or the path in CHROMIUM); `make test` installs it
through scripts/ensure_chromium.sh. Playwright drives it and downloads no browser of its own.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, sync_playwright

from tests.test_local_run import free_port, wait_until_up

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Keeps Chromium from contacting Google's services on its own, and from using QUIC or a GPU.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
API_KEY = "docs-browser-test-key"
LIST_OPERATION = "#operations-images-read_images_ux_nccm_os_image__get"


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `python -m app run` (in memory) and return its base URL."""
    directory = tmp_path_factory.mktemp("docs-run")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("MONGODB_URL", "REDIS_URL")}
    env.update(PORT=str(port), API_KEY=API_KEY, STORAGE_DIR=str(directory / "store"))
    with (directory / "run.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url + "/healthz", process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} not found: run scripts/ensure_chromium.sh (make test does)"
    with sync_playwright() as playwright:
        # Playwright starts Chromium with a fresh temporary profile and ends it on close().
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


class OfflineContext:
    """A browser context that serves only the service's own URLs and records anything else."""

    def __init__(self, browser: Browser, service_url: str) -> None:
        self.service_url = service_url
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.context: BrowserContext = browser.new_context()
        self.context.route("**/*", self._route)
        self.context.on("console", self._record_console)

    def _record_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def unexpected_console_errors(self) -> list[str]:
        """Console errors other than the page's Content-Security-Policy blocking another host."""
        return [
            text for text in self.console_errors
            if not (
                "violates the following Content Security Policy" in text
                and "'https://" in text and self.service_url not in text
            )
        ]

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith((self.service_url + "/", "data:", "blob:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


@pytest.fixture
def offline(browser: Browser, service_url: str) -> Iterator[OfflineContext]:
    context = OfflineContext(browser, service_url)
    try:
        yield context
    finally:
        context.context.close()


def open_page(offline: OfflineContext, path: str) -> Page:
    page = offline.context.new_page()
    page.goto(offline.service_url + path)
    return page


def test_swagger_ui_lists_endpoints(offline: OfflineContext) -> None:
    page = open_page(offline, "/docs")
    page.locator(LIST_OPERATION).wait_for()

    paths = page.locator(".opblock-summary-path").all_inner_texts()
    for expected in (
        "/ux/nccm/os-image/", "/ux/nccm/os-image/{id}/", "/ux/nccm/os-image/trigger-osdownload/",
        "/ux/nccm/os-image/os-images-status/", "/healthz", "/readyz", "/metrics",
    ):
        assert expected in [path.replace("\u200b", "") for path in paths], expected
    assert "OS image service" in page.locator(".info .title").inner_text()
    assert page.locator(".auth-wrapper .authorize").is_visible()
    assert offline.blocked == []
    assert offline.unexpected_console_errors() == []


def execute_list_request(page: Page) -> tuple[str, str]:
    """Press Execute on GET /ux/nccm/os-image/ and return the status and body Swagger UI shows."""
    operation = page.locator(LIST_OPERATION)
    operation.locator("button.execute").click()
    response = operation.locator(".live-responses-table .response").first
    response.wait_for()
    # The status cell contains the code and, below it, the response's description.
    status = response.locator(".response-col_status").inner_text().split()[0]
    body = response.locator(".response-col_description").inner_text()
    operation.locator("button.btn-clear").click()
    return status, body


def test_swagger_try_it_out_with_api_key(offline: OfflineContext) -> None:
    created = httpx.post(
        offline.service_url + "/ux/nccm/os-image/", headers={"Authorization": API_KEY},
        json={"img_id": "eos-browser", "organization": "default", "file_name": "EOS.swi"},
    )
    assert created.status_code in (201, 409), created.text
    page = open_page(offline, "/docs")
    operation = page.locator(LIST_OPERATION)
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()

    status, _ = execute_list_request(page)
    assert status == "401"
    # Chromium reports the refused request on the console; that one is expected.
    assert offline.console_errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    offline.console_errors.clear()

    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input[type=text]").fill(API_KEY)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()

    status, body = execute_list_request(page)
    assert status == "200"
    assert "eos-browser" in body
    assert offline.blocked == []
    assert offline.unexpected_console_errors() == []


def test_redoc_renders_operations(offline: OfflineContext) -> None:
    page = open_page(offline, "/redoc")
    page.locator("h2", has_text="Trigger Download").wait_for()

    assert "OS image service" in page.locator("h1").first.inner_text()
    assert page.locator("h2", has_text="Read Readiness").count() == 1
    assert page.get_by_text("APIKeyHeader").count() >= 1
    assert offline.blocked == []
    assert offline.unexpected_console_errors() == []
