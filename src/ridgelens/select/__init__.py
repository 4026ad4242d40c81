"""Choosing λ without retraining: exact GCV and leave-one-out for least squares.

Both criteria come from one thin SVD of the (weighted, centred) design, which the
:class:`~ridgelens.objectives.LeastSquares` objective computes once and caches; every λ
of the grid then costs a few matrix products, with no refit.

>>> import numpy as np
>>> from sklearn.datasets import load_diabetes
>>> from ridgelens.objectives import LeastSquares
>>> from ridgelens.select import select_lambda
>>> X, y = load_diabetes(return_X_y=True)
>>> sel = select_lambda(LeastSquares(X, y), method="loo")
>>> sel.lambdas.size, bool(sel.lambdas.min() <= sel.lambda_ <= sel.lambdas.max())
(100, True)
"""

from ridgelens.select._grid import default_grid
from ridgelens.select._lm import select_lm
from ridgelens.select._multi import select_lambda_per_target
from ridgelens.select._result import Selection
from ridgelens.select._select import METHODS, select_lambda, select_on_analysis

__all__ = ["METHODS", "Selection", "default_grid", "select_lambda", "select_lambda_per_target",
           "select_lm", "select_on_analysis"]
