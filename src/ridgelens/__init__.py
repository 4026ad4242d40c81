"""ridgelens: what L2 regularization (ridge, weight decay) would do to a trained model's weights.

The flow, one stage per subpackage::

    objectives  →  operators  →  spectra  →  ridge  →  pipeline  →  report / plots / cli
    R(θ), ∇R      H or G at θ̂   eigenpairs   θ̃(λ)      analyze: refit, error

Conventions: R is the *mean* loss; the penalty is (λ/2)‖θ_p‖²; scikit-learn's
``Ridge(alpha=n·λ)`` and ``LogisticRegression(C=1/(n·λ))`` give the same minimizers.
"""

from ridgelens.errors import (
    ConvergenceWarning,
    DataError,
    GradientNotZeroWarning,
    LossReductionError,
    ModelModeError,
    NegativeCurvatureWarning,
    RandomObjectiveError,
    RidgelensError,
    RidgelensWarning,
    SingularBlockWarning,
)
from ridgelens.objectives import LeastSquares, Logistic, MinimizeResult, Objective
from ridgelens.operators import (
    CurvatureOperator,
    DenseOperator,
    HessianOperator,
    SchurComplementOperator,
    as_operator,
    curvature,
    ggn,
    hessian,
)
from ridgelens.pipeline import CONVENTIONS, Analysis, analyze
from ridgelens.ridge import RidgePath, make_solver, ridge_path, shrinkage
from ridgelens.spectra import (
    SpectralDensity,
    Spectrum,
    TraceEstimate,
    eigen,
    hutchpp_trace,
    spectral_density,
)

__version__ = "0.1.0"

__all__ = [
    "CONVENTIONS",
    "Analysis",
    "ConvergenceWarning",
    "CurvatureOperator",
    "DataError",
    "DenseOperator",
    "GGNOperator",
    "GradientNotZeroWarning",
    "HessianOperator",
    "LeastSquares",
    "Logistic",
    "LossReductionError",
    "MinimizeResult",
    "ModelModeError",
    "NegativeCurvatureWarning",
    "Objective",
    "RandomObjectiveError",
    "RidgePath",
    "RidgelensError",
    "RidgelensWarning",
    "SchurComplementOperator",
    "SingularBlockWarning",
    "SpectralDensity",
    "Spectrum",
    "TorchHessianOperator",
    "TorchObjective",
    "TraceEstimate",
    "analyze",
    "as_operator",
    "curvature",
    "eigen",
    "ggn",
    "hessian",
    "hutchpp_trace",
    "make_solver",
    "ridge_path",
    "shrinkage",
    "spectral_density",
]


def __getattr__(name):
    # torch is heavy; import it only when a torch objective is asked for.
    if name == "TorchObjective":
        from ridgelens.objectives.torch import TorchObjective

        return TorchObjective
    if name in ("TorchHessianOperator", "GGNOperator"):
        import ridgelens.operators as ops

        return getattr(ops, name)
    raise AttributeError(f"module 'ridgelens' has no attribute {name!r}")
