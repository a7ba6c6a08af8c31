"""The report opened in a real browser: headless Chromium driven by Playwright.

Checks: no console errors, no network request other than the file itself, every image
rendered with a non-zero size, the primary result sentence present; saves a screenshot
(``$PEERSTATS_SCREENSHOT_DIR`` or the test's temporary folder) to look at.

Needs the Python package ``playwright`` (dev extra) and Chromium at ``/usr/bin/chromium``
(Debian package ``chromium``; ``.ci/run`` installs it before ``make test``). Where either is
missing the test is *skipped with the reason*, never passed silently. Data: the bundled
SYNTHETIC example ``peer_recovery``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PEERSTATS_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[1]


def _chromium_or_skip() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        reason = f"Chromium not found at {CHROMIUM} (Debian: apt-get install -y chromium)"
        why = os.environ.get("PEERSTATS_BROWSER_UNAVAILABLE")
        if why:
            reason += f"; {why[:300]}"
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def chromium() -> tuple[object, str]:
    """(playwright.sync_api, Chromium path), or skip with the reason."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the Python package playwright is not installed (dev extra)"
    )
    return sync_api, _chromium_or_skip()


@pytest.fixture(scope="module")
def report(chromium, tmp_path_factory) -> Path:
    from peerstats.cli import main

    out = tmp_path_factory.mktemp("browser") / "peer_recovery"
    code = main(["run", str(ROOT / "analyses" / "peer_recovery.yaml"), "--out", str(out), "-q"])
    assert code == 0
    return out / "report.html"


def test_report_in_headless_chromium(chromium, report, tmp_path):
    sync_api, executable = chromium
    console: list[tuple[str, str]] = []
    page_errors: list[str] = []
    requests: list[str] = []
    shot_dir = Path(os.environ.get("PEERSTATS_SCREENSHOT_DIR", tmp_path))
    shot_dir.mkdir(parents=True, exist_ok=True)
    screenshot = shot_dir / "report_peer_recovery.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                """() => Array.from(document.images).map(img => ({
                    name: img.dataset.figure, complete: img.complete,
                    natural: img.naturalWidth, width: img.getBoundingClientRect().width,
                    height: img.getBoundingClientRect().height}))"""
            )
            sentence = page.inner_text("[data-primary-sentence]")
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert not [c for c in console if c[0] in ("error", "warning")], console
    assert not page_errors, page_errors
    external = [u for u in requests if not u.startswith(("data:", report.as_uri()))]
    assert not external, f"the report made network requests: {external}"
    assert len(images) >= 6
    for img in images:
        assert img["complete"] and img["natural"] > 0, img
        assert img["width"] > 50 and img["height"] > 50, img
    assert sentence.startswith("QPR-15 at post-treatment was ")
    assert "with peer support than with usual services" in sentence
    assert overflow <= 0, "the report scrolls sideways on a 1366 px wide screen"
    assert screenshot.stat().st_size > 10_000
