"""Penalty matrices ``(λ/2)θᵀDθ``: how to build D, and other tools' conventions converted.

Build D by name patterns (:func:`from_patterns`), per coefficient (:func:`from_vector`), per
group λ (:func:`from_group_lambdas`), or from a saved optimizer state
(:func:`ridgelens.optim.penalty_from_optimizer_state`); set it with
``objective.set_penalty(...)``. glmnet's ``penalty.factor`` and statsmodels' per-coefficient
``alpha`` convert both ways (:func:`glmnet_to_ridgelens`, :func:`statsmodels_to_ridgelens`, …).
"""

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

__all__ = ["PenaltyMatrix", "check_factors", "from_group_lambdas", "from_patterns", "from_vector",
           "glmnet_to_ridgelens", "ridgelens_to_glmnet", "ridgelens_to_statsmodels", "statsmodels_to_ridgelens"]
