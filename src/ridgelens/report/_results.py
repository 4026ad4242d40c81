"""``--report``: one self-contained HTML page from a results.json, its figures and its warnings.

Everything is inline (figures as base64 PNG, no script, no network). Every number printed
carries its exact value in a ``data-value`` attribute, and its place in results.json in
``data-key`` (and ``data-index`` for per-λ arrays), so a reader (or a test) can check the
page against the file it came from.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np

#: Significant digits printed.
DIGITS = 6
#: Per-λ columns of the main table: (results.json key, header).
COLUMNS = (
    ("lambdas", "λ"),
    ("effective_df", "df(λ)"),
    ("rel_error", "‖θ̃−θ*‖/‖θ*‖"),
    ("rel_error_coord", "max_j |θ̃_j−θ*_j|/|θ*_j|"),
    ("error_bound", "bound on ‖θ̃−θ*‖ (no refit)"),
    ("error_bound_penalized", "bound, penalized block"),
)


def number(x) -> str:
    """How the page prints a number."""
    if x is None:
        return "—"
    x = float(x)
    return "—" if not np.isfinite(x) else f"{x:.{DIGITS}g}"


def _cell(value, key: str, index: int | None = None) -> str:
    attrs = f' data-key="{key}"' + (f' data-index="{index}"' if index is not None else "")
    if value is not None and np.isfinite(float(value)):
        attrs += f' data-value="{float(value)!r}"'
    return f"<td class=num{attrs}>{number(value)}</td>"


def _esc(x) -> str:
    return html.escape(str(x))


def _per_lambda_table(d: dict) -> str:
    cols = [(k, h) for k, h in COLUMNS if d.get(k) is not None]
    head = "".join(f"<th>{_esc(h)}</th>" for _, h in cols) + "<th>refit converged</th>"
    rows = []
    conv, gnorm = d.get("refit_converged"), d.get("refit_gradient_norm")
    for i in range(len(d["lambdas"])):
        cells = "".join(_cell(d[k][i], k, i) for k, _ in cols)
        # A default grid's λ other than the chosen one have no refit (NaN, or null read back from JSON).
        refitted = conv is not None and (gnorm is None or (gnorm[i] is not None and math.isfinite(gnorm[i])))
        cells += f"<td>{('yes' if conv[i] else 'NO') if refitted else '—'}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return f'<table id="per-lambda"><tr>{head}</tr>{"".join(rows)}</table>'


def _premises(d: dict) -> str:
    items = [
        ("gradient_norm", "‖∇R(θ̂)‖ (should be ≈ 0)", d.get("gradient_norm")),
        ("grad_tol", "tolerance it is held to", d.get("grad_tol")),
        ("min_eigenvalue", "smallest curvature eigenvalue (should be ≥ 0)", d.get("min_eigenvalue")),
    ]
    rows = "".join(f"<tr><th>{_esc(label)}</th>{_cell(v, k)}</tr>" for k, label, v in items)
    ok = "yes" if d.get("theta_hat_converged", True) else "NO"
    rows += f"<tr><th>θ̂ converged</th><td>{ok}</td></tr>"
    rows += f"<tr><th>error-bound kind</th><td>{_esc(d.get('error_bound_kind') or '—')}</td></tr>"
    return f'<table id="premises">{rows}</table>'


def _selection(sel: dict | None) -> str:
    if not sel:
        return "<p>No λ was chosen (run with <code>--select</code>).</p>"
    rows = [f"<tr><th>method</th><td>{_esc(sel['method'])}</td></tr>",
            f"<tr><th>chosen λ</th>{_cell(sel['lambda'], 'selection.lambda')}</tr>"]
    for name in ("alpha", "C"):  # Ridge(alpha) for least squares, LogisticRegression(C) for a logistic model
        if f"sklearn_{name}" in sel:
            rows.append(f"<tr><th>scikit-learn {name}</th>{_cell(sel[f'sklearn_{name}'], f'selection.sklearn_{name}')}"
                        "</tr>")
    if "curvature" in sel:  # a language model: whose prediction chose λ
        rows.append(f"<tr><th>curvature</th><td>{_esc(sel['curvature'])} ({_esc(sel.get('why'))})</td></tr>")
    rows.append(f"<tr><th>grid</th><td>{_esc(sel.get('grid'))}</td></tr>")
    if sel.get("treatment"):  # evidence: how the log-determinant was taken
        rows.append(f"<tr><th>log-determinant</th><td>{_esc(sel['treatment'])}</td></tr>")
    if sel.get("at_grid_edge"):
        rows.append("<tr><th>note</th><td>the minimum is at the edge of the grid: widen it</td></tr>")
    for key, label in (("noise_variance", "noise variance (evidence)"), ("gamma", "γ = df at the choice")):
        if sel.get(key) is not None:
            rows.append(f"<tr><th>{label}</th>{_cell(sel[key], 'selection.' + key)}</tr>")
    c = sel.get("confirm")
    if c:
        for key in ("predicted_loss", "refit_loss", "loss_gap", "rel_error"):
            rows.append(f"<tr><th>one refit: {key.replace('_', ' ')}</th>{_cell(c[key], 'selection.confirm.' + key)}</tr>")
    return f'<table id="selection">{"".join(rows)}</table>'


def _figures(figures: dict) -> str:
    out = []
    for name, data in figures.items():
        b64 = base64.b64encode(data).decode("ascii")
        out.append(f'<figure><img alt="{_esc(name)}" src="data:image/png;base64,{b64}">'
                   f"<figcaption>{_esc(name)}</figcaption></figure>")
    return "".join(out)


def conventions_table(conventions: dict) -> str:
    """``{name: text}`` as the page's conventions table."""
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in conventions.items())
    return f'<table id="conventions">{rows}</table>'


def page(title: str, head: str, sections: list, warnings: list[str]) -> str:
    """The self-contained page: a title, a lead paragraph, then ``(heading, html)`` sections (warnings third)."""
    warn = ("".join(f"<li class=warning>{_esc(w)}</li>" for w in warnings)
            if warnings else "<li>none</li>")
    sections = [*sections[:2], ("Warnings", f'<ul id="warnings">{warn}</ul>'), *sections[2:]]
    css = ("body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em}table{border-collapse:collapse;"
           "margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}td.num{text-align:right;"
           "font-family:monospace}img{max-width:100%}figure{display:inline-block;width:48%;margin:.5%}"
           "li.warning{color:#a40}")
    body = "".join(f"<h2>{_esc(h)}</h2>{html_}" for h, html_ in sections)
    return (f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{_esc(title)}</title><style>{css}</style>"
            f"</head><body><h1>{_esc(title)}</h1>{head}{body}</body></html>")


def results_report(d: dict, figures: dict, warnings: list[str]) -> str:
    """The page, as a string: ``d`` a results.json dict, ``figures`` ``{name: PNG bytes}``, ``warnings`` lines."""
    title = f"ridgelens report: {d.get('data', '?')}, {d.get('model', d.get('objective', '?'))} model"
    head = (f"<p>n = {_esc(d.get('n_samples'))} samples, {_esc(d.get('n_params'))} parameters"
            f"{' (standardized)' if d.get('standardized') else ''}; curvature {_esc(d.get('curvature_kind'))}, "
            f"{_esc(d.get('method'))} analysis.</p>")
    return page(title, head, [("Choice of λ", _selection(d.get("selection"))), ("Premise checks", _premises(d)),
                              ("Per λ: prediction, refit and error bound", _per_lambda_table(d)),
                              ("Figures", _figures(figures)),
                              ("Conventions", conventions_table(d.get("conventions") or {}))], warnings)


def read_figures(folder) -> dict:
    """``{name: bytes}`` of the PNG files in ``folder``, sorted by name."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob("*.png"))}
