"""``--report`` for a language model: the page from an LM results.json (:func:`~ridgelens.pipeline.analyze_lm`).

The same self-contained page as :func:`~ridgelens.report.results_report` (figures inline,
every number with its exact value and its results.json key), laid out for what an LM
analysis reports: per curvature the premises, the λ that have a prediction, the error and
cosine against retraining, and validation perplexities.
"""

from __future__ import annotations

from ridgelens.report._results import _cell, _esc, _figures, _selection, conventions_table, page

_NAMES = {"hessian": "Hessian", "ggn": "Gauss-Newton"}
#: Per-λ columns of each curvature: (key under curvature.KIND, header).
_PER_CURVATURE = (("rel_error", "‖θ̃−θ*‖/‖θ*‖"), ("cosine", "cos(θ̃−θ̂, θ*−θ̂)"), ("val_perplexity", "ppl θ̃"))


def _premises(d: dict) -> str:
    items = [("train_loss_hat", "training loss at θ̂ (nats per token)"),
             ("gradient_norm", "‖∇R(θ̂)‖ (not 0 for a trained LM)"),
             ("typical_gradient_norm", "typical single-window gradient norm"),
             ("gradient_ratio", "‖∇R(θ̂)‖ / typical"),
             ("val_perplexity_hat", "validation perplexity of θ̂")]
    rows = [f"<tr><th>{_esc(label)}</th>{_cell(d.get(k), k)}</tr>" for k, label in items]
    for kind, c in d["curvature"].items():
        for i, (v, r) in enumerate(zip(c["most_negative_eigenvalues"], c["most_negative_residuals"], strict=True)):
            key = f"curvature.{kind}"
            rows.append(f"<tr><th>{_NAMES[kind]}: most negative eigenvalue {i + 1} (residual)</th>"
                        f"{_cell(v, key + '.most_negative_eigenvalues', i)}"
                        f"{_cell(r, key + '.most_negative_residuals', i)}</tr>")
        rows.append(f"<tr><th>{_NAMES[kind]}: a prediction exists</th><td>{_esc(c['prediction_exists'])}</td></tr>")
    return f'<table id="premises">{"".join(rows)}</table>'


def _per_lambda(d: dict) -> str:
    kinds = list(d["curvature"])
    head = "<th>λ</th>" + "".join(f"<th>{_esc(h)} ({_NAMES[k]})</th>" for k in kinds for _, h in _PER_CURVATURE)
    head += "<th>ppl θ* (retrained)</th><th>θ* converged</th>"
    retrain = d["retraining"]
    rows = []
    for i, lam in enumerate(d["lambdas"]):
        cells = _cell(lam, "lambdas", i)
        for k in kinds:
            cells += "".join(_cell(d["curvature"][k][key][i], f"curvature.{k}.{key}", i) for key, _ in _PER_CURVATURE)
        cells += _cell(retrain["val_perplexity"][i], "retraining.val_perplexity", i)
        cells += f"<td>{'yes' if retrain['converged'][i] else 'NO'}</td>"
        rows.append(f"<tr>{cells}</tr>")
    holds = "".join(f"<li>{_esc(c['holds'])}</li>" for c in d["curvature"].values())
    return f'<table id="per-lambda"><tr>{head}</tr>{"".join(rows)}</table><ul id="holds">{holds}</ul>'


def _spectra(d: dict) -> str:
    rows = []
    for kind, c in d["curvature"].items():
        cells = "".join(_cell(v, f"curvature.{kind}.top_eigenvalues", i) for i, v in enumerate(c["top_eigenvalues"]))
        rows.append(f"<tr><th>{_NAMES[kind]}</th>{cells}</tr>")
    noise = d.get("sampling_noise")
    if noise:
        for kind in d["curvature"]:
            for stat, what in (("mean", "mean"), ("std", "standard deviation")):
                cells = "".join(_cell(v, f"sampling_noise.{kind}.{stat}", i) for i, v in enumerate(noise[kind][stat]))
                rows.append(f"<tr><th>{_NAMES[kind]}: {what} over {noise['subsamples']} disjoint subsamples</th>"
                            f"{cells}</tr>")
    return f'<table id="spectra">{"".join(rows)}</table>'


def lm_report(d: dict, figures: dict, warnings: list[str]) -> str:
    """The page for a language model, as a string (arguments as for :func:`results_report`)."""
    model = d.get("model") or {}
    title = f"ridgelens report: {model.get('kind', 'language model')} on {d.get('text', '?')}"
    kinds = ", ".join(_NAMES[k] for k in d["curvature"])
    head = (f"<p>{_esc(d['n_params'])} parameters, {_esc(d['n_tokens'])} training tokens, "
            f"{_esc(d['n_val_tokens'])} validation tokens; curvature: {_esc(kinds)}.</p>")
    conv = {"penalty": d.get("penalty"), "loss": d.get("loss"), "typical gradient": d.get("typical_gradient"),
            "residual": next(iter(d["curvature"].values()))["residual"],
            "retraining": f"{d['retraining']['method']}, tol {d['retraining']['tol']}, "
                          f"at most {d['retraining']['max_iter']} iterations"}
    return page(title, head, [
        ("Choice of λ", _selection(d.get("selection"))), ("Premise checks at θ̂", _premises(d)),
        ("Per λ: prediction against retraining, validation perplexity", _per_lambda(d)),
        ("Top eigenvalues", _spectra(d)), ("Figures", _figures(figures)),
        ("Conventions", conventions_table(conv))], warnings)
