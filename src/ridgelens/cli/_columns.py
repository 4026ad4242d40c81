"""``--features``: the columns of the data set the model uses."""

from __future__ import annotations

from dataclasses import replace

from ridgelens.convert import unstandardize
from ridgelens.data import Dataset, load_dataset
from ridgelens.errors import RidgelensError


def pick_features(ds: Dataset, spec: str | None) -> Dataset:
    """Keep the columns named in ``spec`` (comma-separated names, or 0-based indices), in that order."""
    if spec is None:
        return ds
    names = list(ds.feature_names)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    if not wanted:
        raise RidgelensError(f"--features is empty ({spec!r}); give comma-separated column names or 0-based indices")
    idx = []
    for w in wanted:
        if w in names:
            idx.append(names.index(w))
        elif w.isascii() and w.isdigit() and int(w) < len(names):
            idx.append(int(w))
        else:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise RidgelensError(f"--features: no column {w!r} in {ds.name} (columns: {shown}; or 0-based indices "
                                 f"below {len(names)})")
    if len(set(idx)) != len(idx):
        raise RidgelensError(f"--features names a column twice ({spec!r})")
    return replace(ds, X=ds.X[:, idx], feature_names=[names[i] for i in idx])


def original_scale(args, res) -> dict:
    """--standardize: θ̂, θ̃(λ) and θ*(λ) as coefficients of the unscaled features (as glmnet reports them)."""
    raw = pick_features(load_dataset(args.data, target=args.target, positive_class=args.positive_class),
                        args.features)
    mean, scale = raw.X.mean(axis=0), raw.X.std(axis=0)
    fit = not args.no_intercept

    def conv(t):
        return None if t is None else unstandardize(t, mean, scale, fit_intercept=fit)

    return {"note": "coefficients of the original (unscaled) features: w/sd and b − Σ mean·w/sd, with the mean "
                    "and 1/n standard deviation --standardize used (constant columns: sd 1); the penalty acted on "
                    "the standardized coefficients" + ("" if fit else "; the last entry is the offset the "
                                                        "unscaled model needs"),
            "param_names": [*raw.feature_names, "intercept"], "mean": mean, "scale": scale,
            "theta_hat": conv(res.theta_hat), "predicted": conv(res.predicted), "refit": conv(res.refit)}
