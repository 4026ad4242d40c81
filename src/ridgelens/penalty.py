"""Penalty matrices ``(λ/2)θᵀDθ``: how to build D, and other tools' conventions converted.

Build D by name patterns (:func:`from_patterns`), per coefficient (:func:`from_vector`), per
group λ (:func:`from_group_lambdas`), or from a saved optimizer state
(:func:`optimizer_penalty`, with :func:`load_optimizer_state`; :data:`WEIGHT_DECAY_TABLE` says
what each optimizer's ``weight_decay`` means at its fixed point); set it with
``objective.set_penalty(...)``. glmnet's ``penalty.factor`` and statsmodels' per-coefficient
``alpha`` convert both ways (:func:`glmnet_to_ridgelens`, :func:`statsmodels_to_ridgelens`, …).
"""

from ridgelens._optim_state import (
    REGIME,
    WEIGHT_DECAY_TABLE,
    load_optimizer_state,
    optimizer_penalty,
)
from ridgelens._penalty import (
    PenaltyMatrix,
    check_factors,
    from_group_lambdas,
    from_patterns,
    from_vector,
)
from ridgelens._penalty_convert import (
    glmnet_to_ridgelens,
    ridgelens_to_glmnet,
    ridgelens_to_statsmodels,
    statsmodels_to_ridgelens,
)

__all__ = [
    "REGIME",
    "WEIGHT_DECAY_TABLE",
    "PenaltyMatrix",
    "check_factors",
    "from_group_lambdas",
    "from_patterns",
    "from_vector",
    "glmnet_to_ridgelens",
    "load_optimizer_state",
    "optimizer_penalty",
    "ridgelens_to_glmnet",
    "ridgelens_to_statsmodels",
    "statsmodels_to_ridgelens",
]
