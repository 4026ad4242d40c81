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

# Everything else is imported on first use (PEP 562), so that `import ridgelens` and the
# command line's --help/--version do not pay for torch, SciPy or scikit-learn.
_LAZY = {
    "ridgelens.objectives": ("LeastSquares", "Logistic", "MinimizeResult", "Objective"),
    "ridgelens.objectives.torch": ("TorchObjective",),
    "ridgelens.operators": ("CurvatureOperator", "DenseOperator", "HessianOperator", "SchurComplementOperator",
                            "as_operator", "curvature", "ggn", "hessian", "TorchHessianOperator", "GGNOperator"),
    "ridgelens.pipeline": ("CONVENTIONS", "Analysis", "analyze", "predict"),
    "ridgelens.ridge": ("RidgePath", "make_solver", "ridge_path", "shrinkage"),
    "ridgelens.spectra": ("SpectralDensity", "Spectrum", "TraceEstimate", "eigen", "hutchpp_trace",
                          "spectral_density"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

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
    "predict",
    "ridge_path",
    "shrinkage",
    "spectral_density",
]


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ridgelens' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
