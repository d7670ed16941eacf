"""Open a report page in headless Chromium (selenium + chromedriver, both found on PATH) to check it as a reader
sees it and to take screenshots. Needs the ``chromium`` and ``chromium-driver`` system packages (Debian) and
``selenium`` (the ``dev`` extra); nothing is downloaded."""

from __future__ import annotations

import base64
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) executables on PATH, or None when either is missing."""
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


class Page:
    """A loaded page: its console errors, images, element ids, and screenshots."""

    def __init__(self, driver, width: int, height: int):
        self.driver, self.width, self.height = driver, width, height

    @property
    def errors(self) -> list[str]:
        """SEVERE console entries (script errors, failed loads) since the page was opened."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def images(self) -> list[dict]:
        """Every ``<img>``: its alt text, whether it finished loading and its decoded width (0: broken)."""
        return self.driver.execute_script(
            "return [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}))"
        )

    def ids(self) -> set[str]:
        return set(self.driver.execute_script("return [...document.querySelectorAll('[id]')].map(e => e.id)"))

    def text(self, element_id: str) -> str:
        """Visible text of one element."""
        return self.driver.execute_script(f"return document.getElementById({element_id!r}).innerText")

    def top(self, element_id: str) -> float:
        """Distance in px of an element from the top of the page."""
        return self.driver.execute_script(
            f"return document.getElementById({element_id!r}).getBoundingClientRect().top + window.scrollY"
        )

    def viewport(self, height: int) -> None:
        """Lay the page out in a ``width`` x ``height`` CSS-pixel viewport (scale 1), whatever the window."""
        metrics = {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)

    def screenshot(self, path: Path, full: bool = False) -> Path:
        """PNG of the first ``width`` x ``height`` pixels (or, with ``full``, the whole page)."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight") if full else self.height
        self.viewport(height)
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        self.viewport(self.height)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.contextmanager
def open_report(html: Path, width: int = 1280, height: int = 1000) -> Iterator[Page]:
    """Load ``html`` (a file) in headless Chromium; the browser quits on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium()
    if found is None:
        raise RuntimeError("headless Chromium needs chromium and chromedriver on PATH (Debian: chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=found[1]))
    try:
        page = Page(driver, width, height)
        page.viewport(height)
        driver.get(Path(html).resolve().as_uri())
        yield page
    finally:
        driver.quit()
