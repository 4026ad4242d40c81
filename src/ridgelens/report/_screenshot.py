"""Screenshots of the interactive page at chosen slider stops, in headless Chromium (gallery and tests).

Needs the ``playwright`` Python package and a Chromium binary (Debian's ``chromium``; never
``playwright install``). Imported only by :func:`page_screenshots`' callers.
"""

from __future__ import annotations

from pathlib import Path

#: Flags for a headless, offline, reproducible Chromium.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--font-render-hinting=none", "--force-device-scale-factor=1", "--hide-scrollbars"]
VIEWPORT = {"width": 1300, "height": 1400}


def set_step(page, i: int) -> None:
    """Move the slider to step ``i`` exactly as a click on that stop does (the step's own update)."""
    page.evaluate("""async (i) => { const g = document.getElementById('explorer');
        const s = g.layout.sliders[0].steps[i];
        await Plotly.update(g, s.args[0], Object.assign({}, s.args[1], {'sliders[0].active': i}), s.args[2]); }""", i)
    page.wait_for_timeout(100)


def page_screenshots(html: Path, steps, chromium: str, *, browser=None) -> list[bytes]:
    """PNG bytes of the page at each slider step in ``steps`` (viewport :data:`VIEWPORT`)."""
    def shoot(b):
        page = b.new_page(viewport=VIEWPORT, device_scale_factor=1)
        page.goto(Path(html).resolve().as_uri())
        page.wait_for_selector(".slider-rail-rect")
        shots = []
        for i in steps:
            set_step(page, int(i))
            shots.append(page.screenshot(full_page=False, animations="disabled"))
        page.close()
        return shots

    if browser is not None:
        return shoot(browser)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            return shoot(b)
        finally:
            b.close()
