"""Data sets for the CLI and examples: scikit-learn's bundled sets and CSV files."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ridgelens._validation import check_finite_matrix, check_finite_vector
from ridgelens.errors import DataError

BUILTIN = ("diabetes", "breast_cancer", "digits")

# The seeds' 2-D quadratic ½(θ − θ̂)ᵀH(θ − θ̂): a steep and a flat direction, rotated by 30°.
_ANGLE = np.deg2rad(30.0)
DEMO_Q = np.array([[np.cos(_ANGLE), -np.sin(_ANGLE)], [np.sin(_ANGLE), np.cos(_ANGLE)]])
DEMO_SIGMA = np.array([2.0, 0.25])
DEMO_H = DEMO_Q @ np.diag(DEMO_SIGMA) @ DEMO_Q.T
DEMO_THETA = np.array([2.0, 1.5])
DEMO_LAMBDAS = np.array([0.1, 0.5, 2.0])


@dataclass(frozen=True)
class Dataset:
    """Features and target, ready for an objective.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    feature_names : list of str
    target_name : str
    name : str
    standardized : bool
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: list
    target_name: str
    name: str
    standardized: bool = False


def load_dataset(spec: str, *, target: str | None = None, standardize: bool = False,
                 positive_class: float | None = None) -> Dataset:
    """Load ``"diabetes"``, ``"breast_cancer"``, ``"digits"`` (bundled with scikit-learn) or ``"csv:PATH"``.

    Parameters
    ----------
    spec : str
        A built-in name or ``csv:PATH``. A CSV file needs a header row and numeric cells.
    target : str, optional
        The CSV column to predict (default: the last column). Not allowed for built-ins.
    standardize : bool, default False
        Scale every feature to mean 0 and standard deviation 1 (constant columns are only centred).
    positive_class : float, optional
        Turn y into 0/1 labels, 1 where ``y == positive_class`` (e.g. digits for logistic).
    """
    if not isinstance(spec, str) or not spec:
        raise DataError(f"data must be one of {', '.join(BUILTIN)} or csv:PATH, got {spec!r}")
    if spec.startswith("csv:"):
        ds = _load_csv(Path(spec[4:]), target)
    elif spec in BUILTIN:
        if target is not None:
            raise DataError(f"--target is only for csv: data; {spec!r} has a fixed target")
        ds = _load_builtin(spec)
    else:
        raise DataError(f"unknown data set {spec!r}: expected one of {', '.join(BUILTIN)}, or csv:PATH")
    X, y = ds.X, ds.y
    if positive_class is not None:
        hits = y == positive_class
        if not hits.any():
            raise DataError(f"positive_class={positive_class:g} does not occur in the target "
                            f"(values: {', '.join(f'{v:g}' for v in np.unique(y)[:10])})")
        y = hits.astype(np.float64)
    if standardize:
        mu, sd = X.mean(axis=0), X.std(axis=0)
        X = (X - mu) / np.where(sd > 0, sd, 1.0)
    return Dataset(X=X, y=y, feature_names=ds.feature_names, target_name=ds.target_name,
                   name=ds.name, standardized=standardize)


def _load_builtin(name: str) -> Dataset:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = [str(f) for f in bunch.feature_names]
    return Dataset(X=np.asarray(bunch.data, dtype=np.float64), y=np.asarray(bunch.target, dtype=np.float64),
                   feature_names=names, target_name="target", name=name)


def _load_csv(path: Path, target: str | None) -> Dataset:
    if not path.is_file():
        raise DataError(f"CSV file not found: {path}")
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise DataError(f"{path} is empty: expected a header row and data rows")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    if not body:
        raise DataError(f"{path} has a header but no data rows")
    if target is None:
        target = header[-1]
    if target not in header:
        raise DataError(f"unknown target column {target!r} in {path}; columns are: {', '.join(header)}")
    values = np.empty((len(body), len(header)))
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path}: data row {i} has {len(row)} cells, the header has {len(header)}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: column {header[j]!r} is not numeric: data row {i} holds {cell!r}; "
                    "encode it as numbers or drop the column"
                ) from None
    t = header.index(target)
    features = [h for k, h in enumerate(header) if k != t]
    X = check_finite_matrix(np.delete(values, t, axis=1), f"{path.name} features", features)
    y = check_finite_vector(values[:, t], f"{path.name} target {target!r}")
    return Dataset(X=X, y=y, feature_names=features, target_name=target, name=path.stem)
