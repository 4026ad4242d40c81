"""``--features``: the columns of the data set the model uses."""

from __future__ import annotations

from dataclasses import replace

from ridgelens.data import Dataset
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
        elif w.isdigit() and int(w) < len(names):
            idx.append(int(w))
        else:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise RidgelensError(f"--features: no column {w!r} in {ds.name} (columns: {shown}; or 0-based indices "
                                 f"below {len(names)})")
    if len(set(idx)) != len(idx):
        raise RidgelensError(f"--features names a column twice ({spec!r})")
    return replace(ds, X=ds.X[:, idx], feature_names=[names[i] for i in idx])
