"""Regenerate the README's gallery in docs/gallery/: `make gallery` (or run this file).

Writes, from real runs of the command line and the plot functions:

- the `ridgelens demo` figures (contour.png, diabetes_paths.png, breast_cancer_error.png);
- steps.png (rotate, shrink, rotate back), model_contours.png (least squares on diabetes, the
  plane of two penalized eigen-directions), eigen_view.png (logistic on breast cancer);
- a real neural network: `ridgelens analyze` of a torch MLP (diabetes with its target
  standardized, 3 tanh units, 37 parameters, exact Hessian), its figures as mlp_*.png;
- the language model: `ridgelens demo --lm` (the built-in byte transformer, 276k parameters,
  trained on 512 bytes of the standard library), its figures as lm_*.png;
- when Debian's chromium is installed, screenshots of the interactive page: the 2-D demo at
  three λ (explorer_*.png) and the MLP's results (explorer_mlp.png).

`python docs/make_gallery.py [--mlp RESULTS.json] [--lm DIR]` redraws from earlier runs instead
of training again: the MLP's results.json, or a finished `ridgelens demo --lm` folder (its figures
are copied; the spectral densities are not in its results.json).
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ridgelens import LeastSquares, Logistic, RidgelensWarning, analyze, ridge_path
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
from ridgelens.report import demo_data, lambda_grid
from ridgelens.report._data import DEMO_H

OUT = Path(__file__).resolve().parent / "gallery"
CHROMIUM = "/usr/bin/chromium"
#: The MLP of the gallery: small enough for the dense path (every eigenvalue), real data. Diabetes
#: is read from a CSV whose target is standardized (:func:`diabetes_csv`): on the raw target (mean 152,
#: sd 77) every setting tried trained tanh units into saturation, whose flat directions the quadratic
#: model drops. 60 L-BFGS iterations, then --polish (trust-ncg, --refit-tol 1e-9) to ‖∇R‖ ≈ 5e-11:
#: a minimum with H positive definite. The λ span where the prediction holds and where it stops holding.
MLP_ARGS = ["analyze", "--standardize", "--model", "mlp", "--hidden", "3", "--train-iters", "60", "--polish",
            "--refit-tol", "1e-9", "--curvature", "hessian", "--lambdas", "1e-6,1e-5,1e-4,1e-3,1e-2,0.1"]
#: The λ of the MLP's page screenshot: one where θ̃ and the refit θ* agree.
MLP_PAGE_LAMBDA = 1e-5


def save(fig: Figure, name: str) -> None:
    """Render ``fig`` to PNG and write it atomically into the gallery."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(OUT / name, buf.getvalue())
    print(f"wrote {OUT / name}")


def main_gallery(mlp_results: str | None = None, lm_dir: str | None = None) -> int:
    """Write every gallery figure; returns the exit status.

    ``mlp_results``: a results.json of an earlier run of :data:`MLP_ARGS` to draw from
    instead of training the MLP again (minutes on a busy machine). ``lm_dir``: the folder of
    an earlier `ridgelens demo --lm` to copy the LM's figures from (it takes about 5 minutes).
    """
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The demo writes a folder of its own (and refuses a non-empty one); its figures are copied in.
        if main(["demo", "--out", str(tmp / "demo")]) != 0:
            return 1
        for f in sorted((tmp / "demo").iterdir()):
            shutil.copy2(f, OUT / f.name)
        _library_figures()
        if mlp_results is not None:
            _redraw(Path(mlp_results), tmp / "mlp")
        elif main([*MLP_ARGS, "--data", f"csv:{diabetes_csv(tmp)}", "--out", str(tmp / "mlp")]) != 0:
            return 1
        lm = Path(lm_dir) if lm_dir is not None else tmp / "lm"
        if lm_dir is None and main(["demo", "--lm", "--quiet", "--out", str(lm)]) != 0:
            return 1
        for prefix, folder in (("mlp", tmp / "mlp"), ("lm", lm)):
            for f in sorted(folder.glob("*.png")):
                shutil.copy2(f, OUT / f"{prefix}_{f.name}")
                print(f"wrote {OUT / f'{prefix}_{f.name}'}")
        _screenshots(tmp, tmp / "mlp" / "results.json")
    return 0


def diabetes_csv(folder: Path) -> Path:
    """scikit-learn's diabetes as a CSV, its target standardized (mean 0, sd 1); returns the path."""
    ds = load_dataset("diabetes")
    path = folder / "diabetes_y_standardized.csv"
    y = (ds.y - ds.y.mean()) / ds.y.std()
    np.savetxt(path, np.column_stack([ds.X, y]), delimiter=",", fmt="%.17g", comments="",
               header=",".join([*ds.feature_names, "progression"]))
    return path


def _redraw(results: Path, out: Path) -> None:
    """The figures `ridgelens analyze` writes, drawn again from its results.json."""
    import json

    from ridgelens.cli._analyze import _figures
    from ridgelens.pipeline import Analysis

    out.mkdir()
    shutil.copy2(results, out / "results.json")
    res = Analysis.from_dict(json.loads(results.read_text()))
    _figures(res, None, res.lambdas, out)


def _library_figures() -> None:
    # The three steps, on the seeds' H with a θ̂ whose flat coordinate is visible.
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    plot_ridge_steps(ridge_path(DEMO_H, [1.0, 2.0], [0.5]), 0, axes=fig.subplots(1, 4))
    save(fig, "steps.png")
    # Least squares on diabetes: the plane of two penalized directions (the intercept follows).
    ds = load_dataset("diabetes")
    lin = LeastSquares(ds.X, ds.y, feature_names=ds.feature_names)
    res = analyze(lin, [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    fig = Figure(figsize=(8, 6), layout="constrained")
    plot_model_contours(lin, res, ax=fig.add_subplot())
    save(fig, "model_contours.png")
    # Logistic regression on breast cancer (ten "mean" features): the eigen view.
    ds = load_dataset("breast_cancer", standardize=True)
    obj = Logistic(ds.X[:, :10], ds.y, feature_names=ds.feature_names[:10])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RidgelensWarning)
        res = analyze(obj, [1e-3, 1e-2, 1e-1])
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    a1, a2, a3 = fig.subplots(1, 3)
    plot_shrinkage(res.path, 1, ax=a1)
    plot_effective_df(res.path, ax=a2)
    plot_spectral_density(res.spectrum, ax=a3)
    save(fig, "eigen_view.png")


def _screenshots(tmp: Path, mlp_results: Path) -> None:
    if not Path(CHROMIUM).is_file():
        print(f"skipped the page's screenshots: {CHROMIUM} is missing (make browser installs it)")
        return
    from ridgelens.report._screenshot import page_screenshots

    demo = tmp / "explore.html"
    main(["explore", "--demo", "--out", str(demo)])
    grid = lambda_grid(demo_data())
    lams = (0.1, 0.5, 2.0)  # the demo's analysed λ, the same stops as the tests' baselines
    for lam, png in zip(lams, page_screenshots(demo, [int(np.flatnonzero(grid == v)[0]) for v in lams], CHROMIUM),
                        strict=True):
        atomic_write_bytes(OUT / f"explorer_{lam:g}.png", png)
        print(f"wrote {OUT / f'explorer_{lam:g}.png'}")
    page = tmp / "mlp.html"
    main(["explore", str(mlp_results), "--out", str(page)])
    import json

    from ridgelens.report import ExplorerData

    g = lambda_grid(ExplorerData.from_results(json.loads(mlp_results.read_text())))
    step = int(np.argmin(np.abs(np.log(g[g > 0]) - np.log(MLP_PAGE_LAMBDA)))) + int(g[0] == 0)
    (png,) = page_screenshots(page, [step], CHROMIUM)
    atomic_write_bytes(OUT / "explorer_mlp.png", png)
    print(f"wrote {OUT / 'explorer_mlp.png'}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    import argparse

    p = argparse.ArgumentParser(description="Regenerate docs/gallery/ (the README's gallery).")
    p.add_argument("--mlp", metavar="RESULTS.json", help="draw the MLP's figures from this results.json")
    p.add_argument("--lm", metavar="DIR", help="copy the LM's figures from this `ridgelens demo --lm` folder")
    a = p.parse_args()
    sys.exit(main_gallery(a.mlp, a.lm))
