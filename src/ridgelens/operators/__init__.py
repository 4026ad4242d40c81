"""Curvature operators: H (or a proxy) as a symmetric linear operator on flat vectors."""

from ridgelens.operators._base import CurvatureOperator, DenseOperator, HessianOperator, hessian
from ridgelens.operators._schur import SchurComplementOperator

__all__ = ["CurvatureOperator", "DenseOperator", "HessianOperator", "SchurComplementOperator", "hessian"]
