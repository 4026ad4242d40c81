"""Errors and warnings raised by ridgelens.

Every input problem raises a subclass of :class:`RidgelensError` (itself a
``ValueError``) whose message says what was expected, what was got, and how to
fix it. Every premise of the quadratic model that fails raises a warning of its
own class, so that callers can filter or escalate them one by one.
"""


class RidgelensError(ValueError):
    """Base class of ridgelens' input errors."""


class DataError(RidgelensError):
    """The data are unusable: NaN/Inf, wrong shape, empty, bad labels, bad file."""


class ModelModeError(RidgelensError):
    """A torch model is in a mode (train mode with dropout/batch-norm) that makes the loss random."""


class RidgelensWarning(UserWarning):
    """Base class of ridgelens' warnings."""


class GradientNotZeroWarning(RidgelensWarning):
    """θ̂ is not a stationary point: ‖∇R(θ̂)‖ is above the tolerance."""


class NegativeCurvatureWarning(RidgelensWarning):
    """H has negative eigenvalues, so the quadratic model is not convex."""


class ConvergenceWarning(RidgelensWarning):
    """An iterative solver stopped before reaching its tolerance."""


class SingularBlockWarning(RidgelensWarning):
    """The unpenalized block of H is singular; a pseudo-inverse was used."""


class IllConditionedWarning(RidgelensWarning):
    """The design matrix is ill-conditioned: anything built from the explicit Hessian loses digits."""


class OutputError(RidgelensError):
    """An output or checkpoint location is unusable: a file where a folder is needed, read-only, a name too long, or a folder that already holds outputs."""



class DistributedError(RidgelensError):
    """A data-parallel run cannot go on: a rank was lost, the ranks disagree, or the process group is unusable."""
