"""ridgelens: what L2 regularization (ridge, weight decay) would do to a trained model's weights.

The flow, one stage per subpackage::

    objectives  →  operators  →  spectra  →  ridge  →  report / plots / cli
    R(θ), ∇R, Hv   H at θ̂        eigenpairs   θ̃(λ), refit, error

Conventions: R is the *mean* loss; the penalty is (λ/2)‖θ_p‖²; scikit-learn's
``Ridge(alpha=n·λ)`` and ``LogisticRegression(C=1/(n·λ))`` give the same minimizers.
"""

from ridgelens.errors import (
    ConvergenceWarning,
    DataError,
    GradientNotZeroWarning,
    ModelModeError,
    NegativeCurvatureWarning,
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
    hessian,
)
from ridgelens.ridge import CONVENTIONS, Analysis, RidgePath, analyze, ridge_path
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
    "GradientNotZeroWarning",
    "HessianOperator",
    "LeastSquares",
    "Logistic",
    "MinimizeResult",
    "ModelModeError",
    "NegativeCurvatureWarning",
    "Objective",
    "RidgePath",
    "RidgelensError",
    "RidgelensWarning",
    "SchurComplementOperator",
    "SingularBlockWarning",
    "SpectralDensity",
    "Spectrum",
    "TorchObjective",
    "TraceEstimate",
    "analyze",
    "eigen",
    "hessian",
    "hutchpp_trace",
    "ridge_path",
    "spectral_density",
]


def __getattr__(name):
    # torch is heavy; import it only when a torch objective is asked for.
    if name == "TorchObjective":
        from ridgelens.objectives.torch import TorchObjective

        return TorchObjective
    raise AttributeError(f"module 'ridgelens' has no attribute {name!r}")
