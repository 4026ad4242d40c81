"""The one place where every ``"auto"`` is resolved: :func:`select_solver`.

Each decision takes the option the user asked for (``"auto"`` or a name) and the facts it
depends on, and returns a :class:`Choice`: the name chosen, why, and the facts. Results
record their choices, so a user can always see what ``"auto"`` became.

========================  =====================================  ==========================================
decision                  names                                  ``"auto"`` rule
========================  =====================================  ==========================================
``"eigen"``               ``dense``, ``lanczos``                 dense when the matrix is in memory or
                                                                 n ≤ :data:`DENSE_MAX_PARAMS`
``"path"``                ``dense``, ``krylov``,                 dense as above, else krylov (never
                          ``multishift-cg``                      multishift-cg: it needs every parameter
                                                                 penalized and has no basis for λ = 0 on a
                                                                 singular H)
``"analysis"``            ``dense``, ``matrix-free``             as ``"eigen"``
``"hvp_form"``            ``reuse``, ``partial-reuse``,          reuse when the whole gradient graph fits
                          ``double-backward``, ``fwd-over-rev``, the memory budget; partial-reuse when one
                          ``r-op`` (``recompute`` asks for r-op  batch's does (and batches come in a fixed
                          where it applies, else double-backward) order); else the fastest recompute form
                                                                 that runs, timed on the first batch
``"schur_inner"``         ``dense``, ``cg``                      dense when #u ≤ 4096 (H_uu ≤ 128 MiB)
``"slq_reorth"``          ``full``, ``local``                    full unless m + 1 vectors pass 1 GiB
``"curvature"``           ``hessian``, ``ggn``                   hessian for a convex loss (G = H there) or a
                                                                 model without outputs; else the GGN when a
                                                                 short Lanczos run on H finds a negative Ritz
                                                                 value (a certificate: H is indefinite, so
                                                                 H + λD has no minimizer for small λ).
                                                                 ``ggn`` asked of a GLM with its canonical
                                                                 link (least squares, logistic) is hessian:
                                                                 G = H exactly, and the record says so
``"design"``              ``svd``, ``gram``                      gram (eigh of the centred Gram matrix ZᵀZ)
                                                                 when n > d, the intercept is free or absent
                                                                 and cond(Z) ≤ :data:`GRAM_MAX_COND`; else
                                                                 the backward-stable SVD of Z
========================  =====================================  ==========================================
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ridgelens.errors import IllConditionedWarning, RidgelensError

#: Up to this many parameters a dense Hessian (n HVPs, n² memory) is built and decomposed exactly.
DENSE_MAX_PARAMS = 2000
#: ``schur_inner="auto"`` forms and factors H_uu when #u is at most this.
DENSE_FREE_MAX = 4096
#: Above this many bytes for an SLQ basis (m + 1 vectors), ``slq_reorth="auto"`` keeps 3 vectors only.
SLQ_BASIS_BUDGET_BYTES = 1 << 30
#: ``design="auto"`` (least squares) factors the design through its Gram matrix up to this condition
#: number: the Gram matrix squares it, so the factors carry relative errors ≲ ε·cond² ≤ 2.2e-10.
GRAM_MAX_COND = 1e3

NAMES = {
    "eigen": ("dense", "lanczos"),
    "path": ("dense", "krylov", "multishift-cg"),
    "analysis": ("dense", "matrix-free"),
    "hvp_form": ("reuse", "partial-reuse", "double-backward", "fwd-over-rev", "r-op", "recompute"),
    "schur_inner": ("dense", "cg"),
    "slq_reorth": ("full", "local"),
    "curvature": ("hessian", "ggn"),
    "design": ("svd", "gram"),
}
#: Older spellings still accepted.
ALIASES = {("slq_reorth", "none"): "local"}


@dataclass(frozen=True)
class Choice:
    """What an ``"auto"`` (or an explicit name) resolved to, and why."""

    decision: str
    name: str
    reason: str
    facts: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.decision}={self.name} ({self.reason})"


#: The name of the option each decision is set by (for error messages).
OPTION = {"eigen": "method", "path": "method", "analysis": "method", "hvp_form": "form",
          "schur_inner": "inner", "slq_reorth": "reorth", "curvature": "curvature", "design": "decomposition"}


def check_option(decision: str, requested: str) -> str:
    """``requested`` with old spellings mapped, after checking it is ``"auto"`` or a name of ``decision``."""
    names = NAMES[decision]
    requested = ALIASES.get((decision, requested), requested) if isinstance(requested, str) else requested
    if requested != "auto" and (not isinstance(requested, str) or requested not in names):
        raise RidgelensError(f"{OPTION[decision]} must be one of {('auto', *names)}, got {requested!r}")
    return requested


def select_solver(decision: str, requested: str = "auto", **facts) -> Choice:
    """Resolve ``requested`` (``"auto"`` or a name) for ``decision``; see the module table.

    Examples
    --------
    >>> select_solver("eigen", n=50, is_dense=False).name
    'dense'
    >>> select_solver("path", n=10**6, is_dense=False).name
    'krylov'
    """
    if decision not in NAMES:
        raise RidgelensError(f"unknown decision {decision!r}; one of {tuple(NAMES)}")
    requested = check_option(decision, requested)
    if decision == "hvp_form":  # its facts shape what "asked for" becomes too
        return _hvp_form(requested, **facts)
    if decision == "curvature":  # its probe is measured only when needed
        return _curvature(**facts) if requested == "auto" else _curvature_asked(requested, **facts)
    if decision == "design":
        return _design(requested, **facts)
    if requested != "auto":
        return Choice(decision, requested, "asked for", facts)
    name, why = _RULES[decision](**facts)
    return Choice(decision, name, why, facts)


def _size_rule(decision):
    def rule(n, is_dense=False, **_):
        first, second = NAMES[decision][:2]
        if is_dense:
            return first, "the matrix is in memory"
        if n <= DENSE_MAX_PARAMS:
            return first, f"n = {n} ≤ {DENSE_MAX_PARAMS}"
        return second, f"n = {n} > {DENSE_MAX_PARAMS}: matrix-free"
    return rule


def _schur_rule(n_free, **_):
    if n_free <= DENSE_FREE_MAX:
        return "dense", f"#u = {n_free} ≤ {DENSE_FREE_MAX}: form and factor H_uu once"
    return "cg", f"#u = {n_free} > {DENSE_FREE_MAX}: CG on H_uu per product"


def _slq_rule(basis_bytes, **_):
    if basis_bytes <= SLQ_BASIS_BUDGET_BYTES:
        return "full", f"the basis takes {basis_bytes / 2**20:.0f} MiB ≤ 1 GiB"
    return "local", f"the basis would take {basis_bytes / 2**20:.0f} MiB > 1 GiB: 3 vectors"


_RULES = {"eigen": _size_rule("eigen"), "path": _size_rule("path"), "analysis": _size_rule("analysis"),
          "schur_inner": _schur_rule, "slq_reorth": _slq_rule}


def _hvp_form(requested, *, n_batches, batch_graph_bytes, memory_budget, fixed_order, fastest_recompute,
              r_op_applies=False) -> Choice:
    facts = {"n_batches": n_batches, "batch_graph_bytes": batch_graph_bytes, "memory_budget": memory_budget}
    held = "hand-written R-operator pass" if r_op_applies else "gradient graph"  # what a reuse form holds
    if requested == "recompute":  # no graph held, and no timing: the hand-written product where it applies
        name = "r-op" if r_op_applies else "double-backward"
        facts.update(fits=0, recompute_form=name)
        return Choice("hvp_form", name, "recompute asked for: " + (
            "the hand-written R-operator applies to this model" if r_op_applies
            else "double backward (the hand-written R-operator does not apply to this model)"), facts)
    # None: not measured (nothing will be reused), so no batch fits
    fits = 0 if batch_graph_bytes is None else min(n_batches, memory_budget // max(batch_graph_bytes, 1))
    if fits < n_batches and not fixed_order:
        # Reused graphs hold the first pass's batches 0 … fits − 1; with a shuffling loader the
        # recomputed batches of a later pass would overlap them and miss others: a wrong H.
        if requested == "partial-reuse":
            raise RidgelensError(
                "form='partial-reuse' needs the batches in the same order on every pass, but the "
                "DataLoader draws them in a random order (shuffle=True or a random sampler); use "
                "shuffle=False, or form='reuse' (the whole graph) or a recompute form")
        fits = 0
    facts["fits"] = fits
    if requested == "auto":
        if fits >= n_batches:
            return Choice("hvp_form", "reuse", f"the whole {held} fits the memory budget", facts)
        if fits >= 1:
            facts["recompute_form"] = fastest_recompute()
            return Choice("hvp_form", "partial-reuse", f"{fits} of {n_batches} batches' {held} fit the budget",
                          facts)
        facts["recompute_form"] = name = fastest_recompute()
        if name is None:
            raise RidgelensError("no HVP form runs on this model and loss (every recompute form failed on the "
                                 "first batch)")
        return Choice("hvp_form", name, f"no batch's {held} fits the budget (or batches are shuffled); "
                      "the faster recompute form on the first batch", facts)
    if requested == "partial-reuse":
        if fits >= n_batches:
            return Choice("hvp_form", "reuse", "partial-reuse asked for, but every batch fits: nothing to recompute",
                          facts)
        facts["recompute_form"] = fastest_recompute()
        if fits < 1:
            return Choice("hvp_form", facts["recompute_form"], "partial-reuse asked for, but no batch fits", facts)
        return Choice("hvp_form", "partial-reuse", "asked for", facts)
    if requested in ("double-backward", "fwd-over-rev", "r-op"):
        facts["recompute_form"] = requested
    elif requested == "reuse":
        facts["fits"] = n_batches
    return Choice("hvp_form", requested, "asked for", facts)


def _curvature_asked(requested: str, *, canonical_glm: bool = False, **facts) -> Choice:
    """An explicit ``curvature``: as asked, except the GGN of a canonical-link GLM, which is its Hessian."""
    if requested == "ggn" and canonical_glm:
        return Choice("curvature", "hessian", "ggn asked for, but this is a GLM with its canonical link (least "
                      "squares, logistic), whose Gauss-Newton matrix JᵀH_out J equals the Hessian H exactly: "
                      "the run used H", {**facts, "canonical_glm": True})
    return Choice("curvature", requested, "asked for", facts)


#: A Ritz value below −this × the largest |Ritz value| counts as negative curvature (rounding is far smaller).
NEGATIVE_RITZ_TOL = 1e-8


def _curvature(*, convex: bool, has_outputs: bool, ritz_range, **_) -> Choice:
    """``ritz_range()`` → (smallest, largest Ritz value of H, products spent): called only for a non-convex model."""
    facts = {"convex": convex, "has_outputs": has_outputs}
    if convex:
        return Choice("curvature", "hessian", "the loss is convex in θ: H ⪰ 0 (and G = H for a GLM)", facts)
    if not has_outputs:
        return Choice("curvature", "hessian", "the loss is not loss_fn(outputs) (the model returns only a loss, or "
                      "batch_loss is its own): no Gauss-Newton matrix", facts)
    lo, hi, spent = ritz_range()
    facts.update(smallest_ritz=lo, largest_ritz=hi, probe_products=spent)
    if lo < -NEGATIVE_RITZ_TOL * max(abs(hi), abs(lo)):
        return Choice("curvature", "ggn", f"H has a Ritz value {lo:.3g} < 0 ({spent} products): H is indefinite, so "
                      "H + λD has no minimizer for small λ; the Gauss-Newton matrix is positive semi-definite", facts)
    return Choice("curvature", "hessian", f"no negative Ritz value of H in {spent} products (smallest {lo:.3g})", facts)


def _design(requested, *, n, d, penalized_intercept, column_ratio, gram_cond) -> Choice:
    """Least squares: factor the (centred, weighted) n × d design Z by its SVD or through ZᵀZ.

    ``gram_cond()`` forms ZᵀZ, decomposes it and returns cond(Z) (inf when ZᵀZ is singular); it is
    called only when the Gram route is possible and not excluded by ``column_ratio`` (the largest
    over the smallest column norm of Z, a lower bound on cond(Z)). The Gram route's factors carry
    relative errors up to about ε·cond², recorded as ``facts["error_estimate"]``.
    """
    facts = {"n": n, "d": d}
    why_not = ("a penalized intercept: the penalty sees the whole design [X, 1], not the centred Z"
               if penalized_intercept else
               f"n = {n} ≤ d = {d}: the Gram matrix is singular" if n <= d else None)
    if requested == "svd":
        return Choice("design", "svd", "asked for", facts)
    if why_not is None and requested == "auto" and column_ratio > GRAM_MAX_COND:
        facts["column_ratio"] = column_ratio
        if not np.isfinite(column_ratio):
            return Choice("design", "svd", "a column of Z is zero (rank-deficient): the SVD decides the rank", facts)
        return Choice("design", "svd", f"the column norms of Z alone span {column_ratio:.3g} > "
                      f"{GRAM_MAX_COND:g} (cond(Z) is at least that): the backward-stable SVD", facts)
    if why_not is None:
        cond = float(gram_cond())
        facts["condition_number"], facts["error_estimate"] = cond, float(np.finfo(np.float64).eps * cond ** 2)
        if not np.isfinite(cond):
            why_not = "ZᵀZ is numerically singular"
        elif requested == "gram" and facts["error_estimate"] >= 1:
            why_not = f"cond(Z) = {cond:.3g}, so ZᵀZ is singular to working precision (ε·cond² ≥ 1)"
    if why_not is not None:
        if requested == "gram":
            raise RidgelensError(f"decomposition='gram' cannot be used here: {why_not}; use 'svd' or 'auto'")
        return Choice("design", "svd", why_not + ": the SVD", facts)
    err = f"relative errors ≲ ε·cond² = {facts['error_estimate']:.1e}"
    if requested == "gram":
        if cond > GRAM_MAX_COND:
            warnings.warn(f"decomposition='gram' on a design with cond(Z) = {cond:.3g} > {GRAM_MAX_COND:g}: θ̂, the "
                          f"path and the criteria carry {err}; 'auto' or 'svd' takes the backward-stable SVD",
                          IllConditionedWarning, stacklevel=2)
        return Choice("design", "gram", f"asked for; cond(Z) = {cond:.3g}, {err}", facts)
    if cond <= GRAM_MAX_COND:
        return Choice("design", "gram", f"cond(Z) = {cond:.3g} ≤ {GRAM_MAX_COND:g}: eigendecomposition of "
                      f"the Gram matrix ZᵀZ, {err}", facts)
    return Choice("design", "svd", f"cond(Z) = {cond:.3g} > {GRAM_MAX_COND:g}: the Gram matrix would give "
                  f"{err}; the backward-stable SVD", facts)
