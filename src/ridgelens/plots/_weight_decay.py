"""Penalty matrices and optimizers' weight decay: shrinkage per parameter group, predicted against retrained."""

from __future__ import annotations

import fnmatch

import numpy as np

from ridgelens.plots._common import get_ax


def _group_index(names, spec) -> np.ndarray:
    if isinstance(spec, str):
        idx = np.array([i for i, n in enumerate(names) if fnmatch.fnmatch(n, spec)], dtype=int)
        if idx.size == 0:
            raise ValueError(f"group pattern {spec!r} matches no parameter")
        return idx
    a = np.asarray(spec)
    return np.flatnonzero(a) if a.dtype == bool else a.astype(int)


def plot_group_shrinkage(analysis, groups, *, ax=None):
    """‖θ̃_g(λ)‖ / ‖θ̂_g‖ against λ for each group g of parameters (predicted lines, refit circles).

    ``groups`` maps a label to a name pattern over ``analysis.param_names`` (``"0.weight*"``), a
    boolean mask or indices. Returns ``{"lines": {label: Line2D}, "ratios": array (m, #groups)}``.
    """
    ax = get_ax(ax)
    lam = np.asarray(analysis.lambdas)
    pos = lam > 0
    lines, ratios = {}, []
    for k, (label, spec) in enumerate(groups.items()):
        idx = _group_index(analysis.param_names, spec)
        base = max(float(np.linalg.norm(analysis.theta_hat[idx])), np.finfo(float).tiny)
        r = np.linalg.norm(analysis.predicted[:, idx], axis=1) / base
        ratios.append(r)
        (lines[label],) = ax.plot(lam[pos], r[pos], color=f"C{k % 10}", label=label)
        if analysis.refit is not None:
            ax.scatter(lam[pos], np.linalg.norm(analysis.refit[pos][:, idx], axis=1) / base, color=f"C{k % 10}",
                       s=16, facecolor="none")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("λ  (penalty (λ/2)θᵀDθ, mean loss)")
    ax.set_ylabel("‖θ̃_group‖ / ‖θ̂_group‖")
    ax.set_title("Shrinkage per parameter group: predicted (lines), refit (circles)")
    ax.legend(fontsize=7)
    return {"lines": lines, "ratios": np.array(ratios).T}


def plot_optimizer_paths(runs, *, ax=None):
    """Predicted against retrained, per optimizer: ‖θ(λ) − θ̂‖ against λ.

    ``runs`` maps an optimizer's name to ``{"lambdas", "theta_hat", "predicted" (m, n),
    "retrained" (m, n)}`` (e.g. from ``bench_weight_decay.py``). Lines: the prediction; squares:
    where the optimizer settled. Returns ``{"lines": {name: Line2D}, "markers": {name: PathCollection}}``.
    """
    ax = get_ax(ax)
    lines, markers = {}, {}
    for k, (name, r) in enumerate(runs.items()):
        lam = np.asarray(r["lambdas"])
        hat = np.asarray(r["theta_hat"])
        (lines[name],) = ax.plot(lam, np.linalg.norm(np.asarray(r["predicted"]) - hat, axis=1), color=f"C{k % 10}",
                                 label=f"{name}: predicted")
        markers[name] = ax.scatter(lam, np.linalg.norm(np.asarray(r["retrained"]) - hat, axis=1), marker="s",
                                   color=f"C{k % 10}", label=f"{name}: retrained")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("weight_decay λ")
    ax.set_ylabel("‖θ(λ) − θ̂‖")
    ax.set_title("Predicted (lines) against the optimizer itself (squares)")
    ax.legend(fontsize=7)
    return {"lines": lines, "markers": markers}
