"""The curvature a prediction runs on: ``curvature="auto"`` resolved (:func:`choose_curvature`).

Shared by :func:`~ridgelens.pipeline.analyze` and the weight-decay prediction
(:mod:`ridgelens.pipeline._weight_decay`), and by the CLI's report of the choice.
"""

from __future__ import annotations

from ridgelens import _distributed as dist
from ridgelens._auto import select_solver

#: Lanczos steps of the probe that looks for negative curvature (``curvature="auto"``).
CURVATURE_PROBE_STEPS = 30


def product_options(objective, kind: str) -> dict:
    """The objective's own options for products with ``kind`` (an LM's keep within its logits bound), else none."""
    own = getattr(objective, "product_options", None)
    return dict(own(kind)) if callable(own) else {}


def choose_curvature(objective, theta_hat, requested: str = "auto", *, seed: int = 0):
    """The curvature of the prediction: ``requested``, or ``"auto"`` resolved by ``select_solver("curvature")``.

    For a model that is not convex and has outputs, ``"auto"`` runs :data:`CURVATURE_PROBE_STEPS`
    Lanczos steps on H at θ̂ (one SLQ probe): a negative Ritz value proves H indefinite, and the
    Gauss–Newton matrix is chosen. Returns the :class:`~ridgelens._auto.Choice`.
    """
    from ridgelens.operators import hessian
    from ridgelens.spectra import spectral_density

    def ritz_range():
        H = hessian(objective, theta_hat, **product_options(objective, "hessian"))
        nodes = spectral_density(H, n_probes=1, m=min(CURVATURE_PROBE_STEPS, H.n), seed=seed, progress=False).nodes
        return float(nodes.min()), float(nodes.max()), int(H.n_matvecs)

    has_outputs = callable(getattr(objective, "outputs", None)) and getattr(objective, "returns", "logits") == "logits"
    if has_outputs and not getattr(objective, "convex", False):  # a batch_loss of its own: G would not see its loss
        from ridgelens.operators._ggn import loss_not_from_outputs

        x, y = next(iter(objective.prepared_batches(0, 1)))
        mine = loss_not_from_outputs(objective, objective.flat_tensor(theta_hat), x, y) is None
        # Every rank checks its own first batch: all must agree, or ranks would build different curvatures
        has_outputs = all(dist.all_gather_objects(mine, "check that the loss is loss_fn(outputs)"))
    return select_solver("curvature", requested, convex=bool(getattr(objective, "convex", False)),
                         has_outputs=has_outputs, ritz_range=ritz_range,
                         canonical_glm=bool(getattr(objective, "canonical_glm", False)))
