"""Curvature operators: one tensor-native contract for H, the Gauss–Newton G and their compositions."""

from ridgelens.operators._base import (
    CurvatureOperator,
    DenseOperator,
    FunctionOperator,
    HessianOperator,
    IdentityOperator,
    ProductOperator,
    SandwichOperator,
    SumOperator,
    as_operator,
    check_symmetry,
)
from ridgelens.operators._factory import CURVATURES, curvature, ggn, hessian
from ridgelens.operators._schur import SchurComplementOperator

__all__ = [
    "CURVATURES",
    "CurvatureOperator",
    "DenseOperator",
    "FunctionOperator",
    "GGNOperator",
    "HessianOperator",
    "IdentityOperator",
    "ProductOperator",
    "SandwichOperator",
    "SchurComplementOperator",
    "SumOperator",
    "TorchHessianOperator",
    "as_operator",
    "check_symmetry",
    "curvature",
    "ggn",
    "hessian",
]


def __getattr__(name):
    # the torch operators import torch.func machinery; load them when asked for
    if name == "TorchHessianOperator":
        from ridgelens.operators._torch import TorchHessianOperator

        return TorchHessianOperator
    if name == "GGNOperator":
        from ridgelens.operators._ggn import GGNOperator

        return GGNOperator
    raise AttributeError(f"module 'ridgelens.operators' has no attribute {name!r}")
