"""The objective seam: value, gradient and Hessian-vector products on flat vectors."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ridgelens._penalty import PenaltyMatrix, from_patterns, from_vector
from ridgelens._validation import check_lambda, check_vector
from ridgelens.errors import RidgelensError


@dataclass(frozen=True)
class GaussianLoss:
    r"""What an objective declares when its loss is Gaussian: ``R(θ) = scale · Σₖ rₖ(θ)²`` over ``n_obs`` residuals.

    The loss is then the negative log-likelihood of the residuals under noise N(0, 1/β) up to
    the unknown precision β, which the evidence profiles out (``ridgelens.select._evidence``).
    """

    n_obs: int
    scale: float


@dataclass(frozen=True)
class MinimizeResult:
    """Outcome of :meth:`Objective.minimize`.

    Attributes
    ----------
    theta : ndarray of shape (n_params,)
        The minimizer found.
    l2 : float
        The penalty λ of ``R(θ) + (λ/2)‖θ_p‖²`` that was minimized.
    converged : bool
        Whether ``gradient_norm <= tol``.
    gradient_norm : float
        ‖∇(R + (λ/2)‖θ_p‖²)‖ at ``theta``.
    tol : float
        The gradient-norm tolerance asked for.
    n_iter : int
        Iterations of the method.
    method : str
        ``"closed-form"``, ``"newton"``, ``"trust-ncg"``, ``"lbfgs"`` or ``"gd"``.
    message : str
        Why the method stopped.
    n_matvecs : int
        Curvature-vector products the method spent (trust-ncg's Hessian-vector products, as
        ``n_matvecs`` counts them everywhere); 0 for a method that forms none (closed form,
        Newton on the formed Hessian, L-BFGS, gradient descent).
    """

    theta: np.ndarray
    l2: float
    converged: bool
    gradient_norm: float
    tol: float
    n_iter: int
    method: str
    message: str = ""
    n_matvecs: int = 0


def with_intercept_factor(obj, penalty):
    """``penalty``, a vector of one factor per feature completed with the intercept's own factor.

    That is glmnet's ``penalty.factor`` on a model with an intercept (whose factor stays 0 unless
    penalized); any other penalty is returned as given.
    """
    if (getattr(obj, "fit_intercept", False) and not hasattr(penalty, "keys") and not hasattr(penalty, "factors")
            and np.ndim(penalty) == 1 and len(penalty) == obj.n_params - 1):
        return np.append(np.asarray(penalty, dtype=np.float64), obj.penalty_factors[-1])
    return penalty


class Objective(abc.ABC):
    """A mean loss ``R(θ) = (1/n) Σᵢ ℓ(θ; xᵢ, yᵢ)`` on a flat parameter vector θ.

    Subclasses give the value, the gradient and Hessian-vector products at any θ,
    and the mask of parameters that the penalty ``(λ/2)‖θ_p‖²`` acts on.
    Vectors are NumPy float64 arrays of shape ``(n_params,)``.
    """

    #: Boolean mask of shape (n_params,): True where the L2 penalty applies.
    penalized: np.ndarray
    #: Names of the parameters, in the order of the flat vector.
    param_names: list[str]
    #: :class:`GaussianLoss` when R is a (weighted) mean of squared residuals; None when the loss is
    #: to be taken as the per-sample negative log-likelihood as it stands.
    gaussian_loss: GaussianLoss | None = None

    @property
    @abc.abstractmethod
    def n_params(self) -> int:
        """Number of parameters (length of θ)."""

    @property
    @abc.abstractmethod
    def n_samples(self) -> int:
        """Number of samples the mean is taken over."""

    @abc.abstractmethod
    def value(self, theta: np.ndarray) -> float:
        """Mean loss R(θ)."""

    @abc.abstractmethod
    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """∇R(θ), shape (n_params,)."""

    @abc.abstractmethod
    def hvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hessian-vector product ∇²R(θ) v, shape (n_params,)."""

    def hessian_dense(self, theta: np.ndarray) -> np.ndarray | None:
        """The dense Hessian in closed form, or None when only HVPs are available."""
        return None

    #: Gradient-norm tolerance used when ``minimize`` is given none.
    default_tol: float = 1e-8

    @abc.abstractmethod
    def _minimize(self, l2: float, x0: np.ndarray | None, tol: float, max_iter: int,
                  **options) -> MinimizeResult:
        """Minimize ``R(θ) + (l2/2)‖θ_p‖²``; ``l2`` is validated."""

    def minimize(self, l2: float = 0.0, *, x0=None, tol: float | None = None, max_iter: int = 1000,
                 **options) -> MinimizeResult:
        """Minimize ``R(θ) + (l2/2)‖θ_p‖²`` (``θ_p``: the penalized parameters).

        Parameters
        ----------
        l2 : float, default 0
            The penalty λ ≥ 0; 0 gives the unregularized minimizer θ̂.
        x0 : array of shape (n_params,), optional
            Starting point (ignored by closed forms).
        tol : float, optional
            Stop once the gradient norm of the penalized objective is at most ``tol``
            (default: ``self.default_tol``).
        max_iter : int, default 1000
            Iteration cap; the result says whether it converged.
        **options
            Method options of the objective (e.g. ``method=``, ``lr=`` for torch models).
        """
        lam = check_lambda(l2, "l2")
        x0 = None if x0 is None else check_vector(x0, self.n_params, "x0")
        tol = self.default_tol if tol is None else float(tol)
        if not tol > 0:
            raise RidgelensError(f"tol must be > 0, got {tol}")
        return self._minimize(lam, x0, tol, int(max_iter), **options)

    def penalized_gradient(self, theta: np.ndarray, l2: float) -> np.ndarray:
        """∇(R(θ) + (λ/2)θᵀDθ) (D = the 0/1 mask ``penalized`` unless :meth:`set_penalty` set factors)."""
        return self.gradient(theta) + l2 * self.penalty_factors * theta

    # ------------------------------------------------------------ penalty matrix
    #: The penalty matrix D of ``(λ/2)θᵀDθ`` set by :meth:`set_penalty`; None: D = diag(``penalized``).
    penalty: PenaltyMatrix | None = None

    @property
    def penalty_factors(self) -> np.ndarray:
        """The diagonal of D, shape (n_params,): the set factors, or the 0/1 mask ``penalized``."""
        return self.penalty.factors if self.penalty is not None else np.asarray(self.penalized, dtype=np.float64)

    def param_blocks(self) -> tuple[list[str], list[int]]:
        """Names that penalty patterns match, and how many entries of θ each covers (here: one each)."""
        names = list(self.param_names)
        return names, [1] * len(names)

    def set_penalty(self, penalty) -> PenaltyMatrix:
        """Penalize with ``(λ/2)θᵀDθ``: refits minimize it, and :func:`ridgelens.analyze` predicts with it.

        ``penalty`` is a :class:`~ridgelens._penalty.PenaltyMatrix`, a mapping of name patterns to
        factors (``{"*.bias": 0, "*embed*": 0.1}``; first match wins, unmatched parameters keep their
        factor, 1 or 0 for a free intercept, and a pattern matching nothing is an error), or one factor per parameter. ``None`` goes back
        to the 0/1 mask. ``penalized`` becomes ``factors > 0``. Returns the penalty matrix set.
        """
        if penalty is None:
            self.penalty = None
            return PenaltyMatrix(self.penalty_factors, "mask")
        if isinstance(penalty, PenaltyMatrix):
            pm = PenaltyMatrix(from_vector(penalty.factors, self.n_params).factors, penalty.source, penalty.detail)
        elif isinstance(penalty, dict) or hasattr(penalty, "keys"):
            names, sizes = self.param_blocks()
            pm = from_patterns(names, sizes, penalty, default=self.penalty_factors)
        else:
            pm = from_vector(penalty, self.n_params)
        self.penalty = pm
        self.penalized = pm.penalized
        return pm
