"""How an :class:`~ridgelens.pipeline.Analysis` shows itself: a text summary, an HTML table, a DataFrame."""

from __future__ import annotations

import html

import numpy as np

from ridgelens._table import table

COLUMNS = ("lambda", "effective_df", "rel_error", "refit_converged", "refit_gradient_norm", "valid")


def headline(res) -> list[str]:
    """The lines above the table: model, sizes, curvature, θ̂ and the premises."""
    penalized = int(np.asarray(res.path.penalized).sum())
    kind = "Gauss-Newton" if res.curvature_kind == "ggn" else "Hessian"
    lines = [f"{res.objective}: n = {res.n_samples} samples, {res.n_params} parameters ({penalized} penalized); "
             f"{res.method} {kind} curvature, {res.n_matvecs} curvature-vector products"]
    theta = f"θ̂: {res.choices['theta_hat']}" if "theta_hat" in res.choices else "θ̂"
    lines.append(f"{theta}; ‖∇R(θ̂)‖ = {res.gradient_norm:.3g}, smallest eigenvalue {res.min_eigenvalue:.4g}"
                 + (" (Ritz estimate)" if res.method == "matrix-free" else ""))
    p = res.polish
    if p:
        lines.append(f"polished: θ̂ moved {p['moved']:.3g} ({p['moved_relative']:.3g} relative), loss "
                     f"{p['loss_before']:.6g} → {p['loss_after']:.6g}")
    top = res.spectrum.eigenvalues[:5]
    lines.append("largest eigenvalues: " + ", ".join(f"{v:.4g}" for v in top)
                 + (" …" if res.spectrum.eigenvalues.size > 5 else ""))
    return lines


def refit_cell(res, i: int) -> str:
    """Whether λ number i's refit converged: "yes", "NO", "not refit" (only some λ were), "-" (none was)."""
    if res.refit_converged is None:
        return "-"
    if res.refit is not None and not np.isfinite(res.refit[i]).all():
        return "not refit"
    return "yes" if res.refit_converged[i] else "NO"


def rows(res) -> list[list]:
    """One row per λ: λ, df(λ), ‖θ̃−θ*‖/‖θ*‖ and whether the refit converged ("-" where there is none)."""
    out = []
    for i, lam in enumerate(res.lambdas):
        valid = bool(res.path.valid[i])
        err = "-" if res.rel_error is None else (res.rel_error[i] if valid and np.isfinite(res.rel_error[i]) else "—")
        conv = refit_cell(res, i)
        out.append([lam, res.effective_df[i] if valid else "no prediction", err, conv])
    return out


HEADERS = ["λ", "df(λ)", "‖θ̃−θ*‖/‖θ*‖", "refit converged"]


def summary(res) -> str:
    """The text summary of :meth:`Analysis.summary`."""
    return "\n".join([*headline(res), table(HEADERS, rows(res))])


def to_html(res) -> str:
    """A small HTML table for notebooks (the same content as the summary)."""
    head = "".join(f"<p style='margin:0'>{html.escape(line)}</p>" for line in headline(res))
    cell = lambda v: html.escape(v if isinstance(v, str) else f"{v:.4g}")  # noqa: E731
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows(res))
    cols = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    return (f"<div class='ridgelens-analysis'>{head}<table><thead><tr>{cols}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def to_pandas(res):
    """One row per λ (see :data:`COLUMNS`); needs pandas."""
    try:
        import pandas as pd
    except ImportError:
        raise ModuleNotFoundError("Analysis.to_pandas() needs pandas, which is not installed: "
                                  "pip install pandas") from None
    m = res.lambdas.size
    missing = np.full(m, np.nan)
    return pd.DataFrame({
        "lambda": res.lambdas, "effective_df": res.effective_df,
        "rel_error": missing if res.rel_error is None else res.rel_error,
        "refit_converged": (np.full(m, None) if res.refit_converged is None else res.refit_converged),
        "refit_gradient_norm": missing if res.refit_gradient_norm is None else res.refit_gradient_norm,
        "valid": np.asarray(res.path.valid, dtype=bool),
    }, columns=list(COLUMNS))
