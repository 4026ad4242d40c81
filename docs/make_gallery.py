"""Regenerate the README's gallery in docs/gallery/: `make gallery` (or run this file).

Writes the `ridgelens demo` figures, the new eigen-view figures, and, when Debian's
chromium is installed, a screenshot of the interactive page (`ridgelens explore --demo`).
"""

from __future__ import annotations

import io
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ridgelens import Logistic, RidgelensWarning, analyze, ridge_path
from ridgelens._io import atomic_write_bytes
from ridgelens.cli import main
from ridgelens.data import load_dataset
from ridgelens.plots import (
    plot_effective_df,
    plot_model_contours,
    plot_ridge_steps,
    plot_shrinkage,
    plot_spectral_density,
)
from ridgelens.report._data import DEMO_H

OUT = Path(__file__).resolve().parent / "gallery"
CHROMIUM = "/usr/bin/chromium"


def save(fig: Figure, name: str) -> None:
    """Render ``fig`` to PNG and write it atomically into the gallery."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(OUT / name, buf.getvalue())
    print(f"wrote {OUT / name}")


def main_gallery() -> int:
    """Write every gallery figure; returns the exit status."""
    # The demo writes a folder of its own (and refuses a non-empty one); its figures are copied in.
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        if main(["demo", "--out", str(Path(tmp) / "demo")]) != 0:  # contour, diabetes_paths, breast_cancer_error
            return 1
        for f in sorted((Path(tmp) / "demo").iterdir()):
            shutil.copy2(f, OUT / f.name)
    # The three steps, on the seeds' H with a θ̂ whose flat coordinate is visible.
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    plot_ridge_steps(ridge_path(DEMO_H, [1.0, 2.0], [0.5]), 0, axes=fig.subplots(1, 4))
    save(fig, "steps.png")
    # A real model: logistic regression on the breast-cancer data (ten "mean" features).
    ds = load_dataset("breast_cancer", standardize=True)
    obj = Logistic(ds.X[:, :10], ds.y, feature_names=ds.feature_names[:10])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RidgelensWarning)
        res = analyze(obj, [1e-3, 1e-2, 1e-1])
    fig = Figure(figsize=(7, 6), layout="constrained")
    plot_model_contours(obj, res, ax=fig.add_subplot())
    save(fig, "model_contours.png")
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    a1, a2, a3 = fig.subplots(1, 3)
    plot_shrinkage(res.path, 1, ax=a1)
    plot_effective_df(res.path, ax=a2)
    plot_spectral_density(res.spectrum, ax=a3)
    save(fig, "eigen_view.png")
    _screenshot()
    return 0


def _screenshot() -> None:
    if not Path(CHROMIUM).is_file():
        print(f"skipped explorer.png: {CHROMIUM} is missing (make browser installs it)")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "explore.html"
        main(["explore", "--demo", "--out", str(page_file)])
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = b.new_page(viewport={"width": 1300, "height": 1100})
            page.goto(page_file.as_uri())
            page.wait_for_selector(".slider-rail-rect")
            box = page.locator(".slider-rail-rect").bounding_box()
            page.mouse.click(box["x"] + 0.62 * box["width"], box["y"] + box["height"] / 2)
            page.wait_for_timeout(300)
            png = page.screenshot(full_page=False)
            b.close()
    atomic_write_bytes(OUT / "explorer.png", png)
    print(f"wrote {OUT / 'explorer.png'}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main_gallery())
