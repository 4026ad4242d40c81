"""``ridgelens demo``: the seeds' picture, then two real data sets, with no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ridgelens._io import atomic_write_json
from ridgelens.cli._output import new_figure, save_figure, staged_folder, table
from ridgelens.data import DEMO_H as H2
from ridgelens.data import DEMO_LAMBDAS as LAMBDAS2
from ridgelens.data import DEMO_SIGMA as SIGMA2
from ridgelens.data import DEMO_THETA as THETA2
from ridgelens.data import load_dataset
from ridgelens.objectives import LeastSquares, Logistic
from ridgelens.pipeline import CONVENTIONS, analyze
from ridgelens.plots import plot_coefficient_paths, plot_quadratic_contours, plot_rel_error
from ridgelens.ridge import ridge_path

DIABETES_LAMBDAS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
CANCER_LAMBDAS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
CANCER_FEATURES = 10  # the ten "mean ..." columns; all 30 separate the classes (no θ̂ exists)


def run_demo(out, *, overwrite: bool = False) -> dict:
    """Run the three parts, print their tables, write figures and ``demo.json`` into ``out``.

    The files are built in a staging folder and moved into place as ``out`` in one step at the
    end (see :func:`ridgelens.cli._output.staged_folder`); ``out`` must be new or empty unless
    ``overwrite``.
    """
    with staged_folder(out, overwrite=overwrite) as stage:
        summary = {"conventions": CONVENTIONS}
        summary["quadratic_2d"] = _part_a(stage)
        summary["diabetes"] = _part_b(stage)
        summary["breast_cancer"] = _part_c(stage)
        atomic_write_json(stage / "demo.json", summary)
    print(f"\nwrote {out}/: contour.png, diabetes_paths.png, breast_cancer_error.png, demo.json")
    return summary


def _part_a(out: Path) -> dict:
    print("(a) The seeds' 2-D quadratic: R(θ) = ½(θ − θ̂)ᵀH(θ − θ̂), θ̂ = "
          f"({THETA2[0]:g}, {THETA2[1]:g}), eigenvalues σ = {SIGMA2[0]:g}, {SIGMA2[1]:g}")
    print("    θ̃(λ) = Q diag(σ/(σ+λ)) Qᵀ θ̂: rotate into the eigenbasis, scale, rotate back.\n")
    path = ridge_path(H2, THETA2, LAMBDAS2)
    steps = []
    for i, lam in enumerate(path.lambdas):
        s = path.steps(i)
        rows = [[f"q{j + 1}", path.eigenvalues[j], s["rotated"][j], s["factors"][j], s["scaled"][j]]
                for j in range(2)]
        print(f"  λ = {lam:g}")
        print("  " + table(["axis", "σⱼ", "(Qᵀθ̂)ⱼ", "σⱼ/(σⱼ+λ)", "scaled"], rows).replace("\n", "\n  "))
        print(f"  rotated back: θ̃ = Q·scaled = ({s['rotated_back'][0]:.4f}, {s['rotated_back'][1]:.4f})"
              f"   [‖θ̃‖ = {np.linalg.norm(s['rotated_back']):.4f}, ‖θ̂‖ = {np.linalg.norm(THETA2):.4f}]\n")
        steps.append({k: v for k, v in s.items()})
    fig = new_figure(6.4, 6.0)
    plot_quadratic_contours(H2, THETA2, LAMBDAS2, ax=fig.add_subplot())
    save_figure(fig, out / "contour.png")
    return {"H": H2, "theta_hat": THETA2, "eigenvalues": path.eigenvalues, "steps": steps}


def _part_b(out: Path) -> dict:
    from sklearn.linear_model import Ridge

    ds = load_dataset("diabetes")
    obj = LeastSquares(ds.X, ds.y, feature_names=ds.feature_names)
    res = analyze(obj, DIABETES_LAMBDAS)
    n = res.n_samples
    print(f"(b) diabetes (scikit-learn), least squares R = (1/2n)‖Xw + b − y‖², n = {n}, "
          f"{res.n_params} parameters; intercept not penalized")
    rows, sk_diff = [], []
    for i, lam in enumerate(res.lambdas):
        sk = Ridge(alpha=n * lam, solver="cholesky").fit(ds.X, ds.y)
        theta_sk = np.r_[sk.coef_, sk.intercept_]
        d_sk = np.abs(res.predicted[i] - theta_sk).max() / np.abs(theta_sk).max()
        sk_diff.append(d_sk)
        rows.append([lam, n * lam, res.effective_df[i], res.predicted[i][2], res.refit[i][2], theta_sk[2],
                     res.rel_error[i], d_sk])
    print(table(["λ", "alpha=nλ", "df(λ)", "θ̃[bmi]", "θ*[bmi]", "sklearn[bmi]", "‖θ̃−θ*‖/‖θ*‖",
                 "max|θ̃−sk|/max|sk|"], rows))
    print("    The loss is quadratic, so predicted = refit = scikit-learn, to rounding.\n")
    fig = new_figure()
    plot_coefficient_paths(res, ax=fig.add_subplot())
    save_figure(fig, out / "diabetes_paths.png")
    return {"lambdas": res.lambdas, "rel_error": res.rel_error, "sklearn_rel_diff": sk_diff,
            "effective_df": res.effective_df}


def _part_c(out: Path) -> dict:
    ds = load_dataset("breast_cancer", standardize=True)
    all30 = Logistic(ds.X, ds.y)
    separable = all30.is_separable()
    X = ds.X[:, :CANCER_FEATURES]
    obj = Logistic(X, ds.y, feature_names=ds.feature_names[:CANCER_FEATURES])
    res = analyze(obj, CANCER_LAMBDAS)
    print(f"(c) breast cancer (scikit-learn), standardized, logistic (mean log-loss), n = {res.n_samples}")
    if separable:
        print("    All 30 features separate the classes linearly, so the unpenalized loss has no minimizer θ̂;")
        print(f"    the demo uses the first {CANCER_FEATURES} ('mean ...') features, where θ̂ exists.")
    print(f"    premises at θ̂: ‖∇R(θ̂)‖ = {res.gradient_norm:.2g}, smallest eigenvalue of H = "
          f"{res.min_eigenvalue:.3g}")
    rows = [[lam, 1 / (res.n_samples * lam), res.effective_df[i], res.rel_error[i]]
            for i, lam in enumerate(res.lambdas)]
    print(table(["λ", "sklearn C=1/(nλ)", "df(λ)", "‖θ̃−θ*‖/‖θ*‖"], rows))
    print("    The seeds' 'approximately!': exact as λ → 0, off by tens of percent once λ is comparable to H's eigenvalues.")
    fig = new_figure()
    plot_rel_error(res, ax=fig.add_subplot())
    save_figure(fig, out / "breast_cancer_error.png")
    return {"lambdas": res.lambdas, "rel_error": res.rel_error, "effective_df": res.effective_df,
            "all_30_features_separable": separable, "features_used": CANCER_FEATURES}
