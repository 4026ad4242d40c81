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



class ModelOutputError(RidgelensError):
    """A model's forward returns something ridgelens cannot use (neither logits nor a loss, or a wrong shape)."""


class PenaltyError(RidgelensError):
    """A penalty matrix is unusable: a negative or non-finite factor, a pattern that matches no parameter, a wrong length."""


class OptimizerStateError(RidgelensError):
    """A saved optimizer state does not fit: another model (shapes), another optimizer, or no second moments."""


class ModelError(RidgelensError):
    """A user's model cannot be built or loaded: the ``module:factory`` spec, its import, what it returns, or its weights."""


class RandomObjectiveError(ModelModeError):
    """Two evaluations of the loss on the same batch and θ differ (dropout inside forward, nondeterministic kernels) or each pass over the data sees other samples."""


class LossReductionError(RidgelensError):
    """The loss function is sum-reduced over its batch; R must be the mean loss."""


class DistributedError(RidgelensError):
    """A data-parallel run cannot go on: a rank was lost, the ranks disagree, or the process group is unusable."""
