"""The ridge path, refit and the whole-flow analysis."""

from ridgelens.ridge._analyze import CONVENTIONS, Analysis, analyze
from ridgelens.ridge._path import RidgePath, ridge_path

__all__ = ["CONVENTIONS", "Analysis", "RidgePath", "analyze", "ridge_path"]
