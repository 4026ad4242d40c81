"""Curvature operators: H (or a proxy) as a symmetric linear operator on flat vectors."""

from ridgelens.operators._base import CurvatureOperator, DenseOperator, HessianOperator, hessian

__all__ = ["CurvatureOperator", "DenseOperator", "HessianOperator", "hessian"]
