"""What the interactive page needs, from an :class:`Analysis`, a ``results.json`` or the seeds' demo."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ridgelens.data import DEMO_H, DEMO_LAMBDAS, DEMO_THETA
from ridgelens.errors import RidgelensError
from ridgelens.pipeline import CONVENTIONS
from ridgelens.report._loss import check_loss_plane, loss_plane_if_drawable
from ridgelens.report._plane import display_eigenvalues
from ridgelens.ridge import ridge_path
from ridgelens.ridge._path import SCALED_VIEW

#: Eigenvectors are carried into the page only up to this many penalized parameters.
MAX_EIGENVECTORS = 400


@dataclass(frozen=True)
class ExplorerData:
    """The eigen view of one ridge path, as the interactive page draws it.

    Attributes
    ----------
    title : str
    eigenvalues : ndarray of shape (r,)
        σⱼ of the curvature the penalized block sees (H, or its Schur complement).
    coords : ndarray of shape (r,)
        Qᵀθ̂_p, θ̂'s penalized block in that eigenbasis.
    eigenvectors : ndarray of shape (r, r) or None
        Q; when given, the page also shows θ̃_p = Q·diag(σ/(σ+λ))·Qᵀθ̂_p per parameter.
    penalized_names : list of str, length r
    lambdas : ndarray of shape (m,)
        The analysed λ (marked on the slider's grid and the paths).
    param_names : list of str, length n
    predicted, refit : ndarray of shape (m, n) or None
        θ̃(λ) and θ*(λ) at the analysed λ (NaN where invalid).
    gradient_coords : ndarray of shape (r,) or None
        Qᵀg̃, the first-order term when θ̂ is not stationary: the page then draws
        θ̃ = Q (σ∘Qᵀθ̂ − Qᵀg̃)/(σ+λ), whose loss ellipses are centred on the quadratic
        model's own minimizer Qᵀθ̂ − Qᵀg̃/σ instead of θ̂.
    notes : list of str
        Failed premises and caveats, shown on the page.
    conventions : dict
    rank_tol : float
        Eigenvalues with ``|σ| ≤ rank_tol`` are rounding noise; the page draws them as 0
        (see :func:`ridgelens.report._plane.display_eigenvalues`).
    loss_plane : dict or None
        The true loss ``R(θ) − R(θ̂)`` on a grid of the contour view
        (:func:`ridgelens.report.loss_plane`); the page then draws its contours against the
        quadratic model's ellipses.
    scaled_view : bool
        The eigen view is that of D^{-1/2}HD^{-1/2} in φ = D^{1/2}θ (a penalty matrix,
        :attr:`RidgePath.scaled_view`); the page's axes and a note say so.
    """

    title: str
    eigenvalues: np.ndarray
    coords: np.ndarray
    eigenvectors: np.ndarray | None
    penalized_names: list
    lambdas: np.ndarray
    param_names: list
    predicted: np.ndarray | None = None
    refit: np.ndarray | None = None
    gradient_coords: np.ndarray | None = None
    notes: list = field(default_factory=list)
    conventions: dict = field(default_factory=lambda: dict(CONVENTIONS))
    rank_tol: float = 0.0
    loss_plane: dict | None = None
    scaled_view: bool = False

    @classmethod
    def from_analysis(cls, analysis, *, title: str | None = None, objective=None) -> ExplorerData:
        """The page's data from :func:`ridgelens.analyze`'s result.

        The true-loss grid is the analysis' own ``loss_plane`` (``ridgelens analyze`` writes one
        into results.json); else, given the ``objective`` the analysis was made from, it is
        computed here (:func:`ridgelens.report.loss_plane`, 626 loss evaluations) where the page can draw
        it; where it cannot (a penalty matrix, too few eigenvectors) a note says so.
        """
        if not hasattr(analysis, "path"):
            raise RidgelensError(f"analysis must be ridgelens.analyze's result, got {type(analysis).__name__} "
                                 "(a results.json dict: ExplorerData.from_results)")
        path = analysis.path
        names = [analysis.param_names[j] for j in np.flatnonzero(path.penalized)]
        r, n_pen = path.eigenvalues.size, int(np.count_nonzero(path.penalized))
        square = path.eigenvectors is not None and path.eigenvectors.shape == (r, r) and r == n_pen
        Q = path.eigenvectors if square and r <= MAX_EIGENVECTORS else None
        gc = analysis.gradient_coords
        notes = _notes(path.gradient_used, analysis.gradient_norm, float(path.eigenvalues.min()), drawn=gc is not None)
        if r < n_pen:
            notes.append(_partial(r, n_pen))
        if path.scaled_view:
            notes.append(f"Penalty (λ/2)θᵀDθ with per-parameter factors: the {SCALED_VIEW} — σⱼ, qⱼ, the plane, "
                         "the shrinkage factors, df(λ) and the per-parameter columns are of φ, not H's or θ's; the paths θ̃ "
                         "and θ* are in θ.")
        _, zeroed, tol = display_eigenvalues(path.eigenvalues, path.rank_tol)
        if zeroed:
            notes.append(f"{zeroed} eigenvalue{'s' if zeroed > 1 else ''} with |σ| ≤ {tol:.2g} (rounding level) "
                         "drawn as 0.")
        lp = analysis.loss_plane
        if lp is None and objective is not None:
            lp = loss_plane_if_drawable(objective, analysis)
            if lp is None:
                notes.append("The true loss is not drawn: this analysis has a penalty matrix, or lacks the full "
                             "eigenvectors of two positive directions.")
        return cls(title=title or f"{analysis.objective}, n = {analysis.n_samples}, {analysis.n_params} parameters",
                   eigenvalues=path.eigenvalues, coords=path.coords, eigenvectors=Q, penalized_names=names,
                   lambdas=analysis.lambdas, param_names=list(analysis.param_names),
                   predicted=analysis.predicted, refit=analysis.refit, gradient_coords=gc,
                   notes=notes, conventions=dict(analysis.conventions), rank_tol=float(path.rank_tol),
                   loss_plane=check_loss_plane(lp, n_directions=r),
                   scaled_view=path.scaled_view)

    @classmethod
    def from_results(cls, d, *, source: str = "results.json") -> ExplorerData:
        """The page's data from the dict ``ridgelens analyze`` writes (``Analysis.to_dict``).

        The fields the page needs are validated here, at the boundary (a :class:`RidgelensError`
        names the field when one is missing or malformed); then the dict is read back as one
        :class:`~ridgelens.Analysis` (``Analysis.from_dict``) and the page is built from it,
        exactly as from a live analysis (:meth:`from_analysis`).
        """
        if not isinstance(d, dict):
            raise RidgelensError(f"{source}: expected a JSON object (from `ridgelens analyze`), got {type(d).__name__}")
        if "curvatures" in d and "penalized_eigenvalues" not in d:
            raise RidgelensError(f"{source} is a language model's analysis (--model lm or hf:DIR): it has no "
                                 "explorer page (only the top eigenvalues were computed); its page is report.html "
                                 "(analyze --report)")
        sigma = _array(d, "penalized_eigenvalues", source, ndim=1)
        z = _array(d, "coords", source, ndim=1)
        lam = _array(d, "lambdas", source, ndim=1)
        if z.shape != sigma.shape:
            raise RidgelensError(f"{source}: 'penalized_eigenvalues' and 'coords' must be two lists of the same "
                                 f"length, got {sigma.size} and {z.size}")
        if sigma.size < 2:
            raise RidgelensError(f"{source} has {sigma.size} penalized eigen-direction; the explorer page draws the "
                                 "loss in a plane of two (a model with at least 2 penalized parameters); its "
                                 "paths.png and shrinkage.png show this one")
        if not (np.all(np.isfinite(sigma)) and np.all(np.isfinite(z))):
            raise RidgelensError(f"{source}: 'penalized_eigenvalues' and 'coords' must be finite numbers")
        names = d.get("param_names")
        pen = d.get("penalized")
        if not isinstance(names, list) or not isinstance(pen, list) or len(names) != len(pen):
            raise RidgelensError(f"{source}: 'param_names' and 'penalized' must be lists of the same length")
        n = len(names)
        theta = _array(d, "theta_hat", source, ndim=1)
        if theta.shape != (n,) or not np.all(np.isfinite(theta)):
            bad = f"{theta.size} entries" if theta.shape != (n,) else \
                f"{theta[~np.isfinite(theta)][0]} at entry {int(np.flatnonzero(~np.isfinite(theta))[0])}"
            raise RidgelensError(f"{source}: 'theta_hat' must be {n} finite numbers, one per parameter; got {bad}")
        pen = np.array([bool(p) for p in pen])
        if int(pen.sum()) < sigma.size:  # a matrix-free analysis keeps only the top k
            raise RidgelensError(f"{source}: {int(pen.sum())} parameters are penalized but there are "
                                 f"{sigma.size} penalized eigenvalues")
        rows = {}
        for key in ("predicted", "refit"):
            if d.get(key) is None:
                rows[key] = None
                continue
            a = _array(d, key, source, ndim=2)
            if a.shape != (lam.size, n):
                raise RidgelensError(f"{source}: '{key}' must have shape ({lam.size}, {n}), got {a.shape}")
            rows[key] = a
        title = d.get("data") or d.get("objective") or source
        model = d.get("model")
        title = f"{title}{f', {model} model' if model else ''}, n = {d.get('n_samples', '?')}, {n} parameters"
        conv = d.get("conventions") if isinstance(d.get("conventions"), dict) else dict(CONVENTIONS)
        gnorm = d.get("gradient_norm")
        gc = None
        if d.get("gradient_coords") is not None:
            gc = _array(d, "gradient_coords", source, ndim=1)
            if gc.shape != sigma.shape or not np.all(np.isfinite(gc)):
                raise RidgelensError(f"{source}: 'gradient_coords' must be {sigma.size} finite numbers, "
                                     f"one per penalized eigenvalue")
        notes = _notes(bool(d.get("gradient_used")), gnorm if isinstance(gnorm, (int, float)) else None,
                       float(sigma.min()), drawn=gc is not None)
        if sigma.size < int(pen.sum()):
            notes.append(_partial(sigma.size, int(pen.sum())))
        Q = None
        if d.get("penalized_eigenvectors") is not None:
            Q = _array(d, "penalized_eigenvectors", source, ndim=2)
            if Q.shape != (sigma.size, sigma.size):
                raise RidgelensError(f"{source}: 'penalized_eigenvectors' must have shape "
                                     f"({sigma.size}, {sigma.size}), got {Q.shape}")
        check_loss_plane(d.get("loss_plane"), f"{source}: 'loss_plane'", sigma.size)
        del notes, Q, rows, conv  # validated above; the page is built from the one Analysis the file holds
        from ridgelens.pipeline import Analysis

        try:
            analysis = Analysis.from_dict(d)
        except RidgelensError as exc:
            raise RidgelensError(f"{source}: {exc}") from None
        return cls.from_analysis(analysis, title=title)


def demo_data() -> ExplorerData:
    """The seeds' 2-D quadratic ``½(θ−θ̂)ᵀH(θ−θ̂)``: σ = (2, 0.25) rotated by 30°, θ̂ = (2, 1.5)."""
    path = ridge_path(DEMO_H, DEMO_THETA, DEMO_LAMBDAS)
    return ExplorerData(
        title="a 2-D quadratic loss ½(θ−θ̂)ᵀH(θ−θ̂): σ = (2, 0.25), eigen-axes rotated by 30°, θ̂ = (2, 1.5)",
        eigenvalues=path.eigenvalues, coords=path.coords, eigenvectors=path.eigenvectors,
        penalized_names=["θ₁", "θ₂"], lambdas=path.lambdas, param_names=["θ₁", "θ₂"],
        predicted=path.thetas, refit=path.thetas.copy(),
        notes=["The loss is exactly quadratic here, so the refit θ* equals the prediction θ̃."])


def _array(d: dict, key: str, source: str, *, ndim: int) -> np.ndarray:
    if key not in d:
        raise RidgelensError(f"{source}: missing field '{key}' (is it a results.json written by `ridgelens analyze`?)")
    v = d[key]
    try:
        if ndim == 2:
            a = np.array([[np.nan if x is None else x for x in row] for row in v], dtype=np.float64)
        else:
            a = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
    except (TypeError, ValueError):
        raise RidgelensError(f"{source}: field '{key}' must be a {'list of lists' if ndim == 2 else 'list'} "
                             "of numbers") from None
    if a.ndim != ndim:
        raise RidgelensError(f"{source}: field '{key}' must be {ndim}-dimensional, got shape {a.shape}")
    return a


def _partial(k: int, n: int) -> str:
    return (f"Only the top {k} of {n} eigen-directions were computed (matrix-free): the bars, the table and df(λ) "
            "on this page cover those directions only.")


def _notes(gradient_used: bool, gradient_norm, min_sigma: float, drawn: bool = False) -> list:
    notes = []
    if gradient_used:
        g = f" (‖∇R(θ̂)‖ = {gradient_norm:.3g})" if gradient_norm is not None else ""
        if drawn:
            notes.append(f"θ̂ is not a stationary point{g}: θ̃ keeps the first-order term, "
                         "θ̃ = Q (σ∘Qᵀθ̂ − Qᵀg)/(σ+λ). The loss ellipses are centred on the quadratic model's own "
                         "minimizer (◆), not on θ̂ (★); the bars still show σ/(σ+λ).")
        else:
            notes.append(f"θ̂ is not a stationary point{g}: the analysis kept the first-order term, "
                         "but this page shows the pure shrinkage σ/(σ+λ)·Qᵀθ̂, without it (a matrix-free "
                         "analysis keeps only the top-k view).")
    if min_sigma < 0:
        notes.append(f"The curvature has negative eigenvalues (most negative σ = {min_sigma:.4g}): the quadratic "
                     f"model has a minimizer only for λ > {-min_sigma:.4g}, so the slider starts above that.")
    return notes
