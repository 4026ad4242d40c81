"""The ridge path θ̃(λ): path solvers that factor once and answer any λ list, and the shrinkage factor."""

from ridgelens.ridge._path import RidgePath, ridge_path
from ridgelens.ridge._shrink import shrinkage
from ridgelens.ridge._solvers import (
    DenseEigenSolver,
    KrylovSolver,
    MultishiftCGSolver,
    has_exact_path,
    make_solver,
    wide_diagonal,
)

__all__ = ["DenseEigenSolver", "KrylovSolver", "MultishiftCGSolver", "RidgePath", "has_exact_path", "make_solver", "ridge_path",
           "shrinkage", "wide_diagonal"]
