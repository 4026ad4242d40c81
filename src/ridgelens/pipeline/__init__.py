"""The whole flow, above the stages: θ̂ → curvature → spectrum → predicted path → refit → error."""

from ridgelens.pipeline._analyze import CONVENTIONS, Analysis, analyze
from ridgelens.pipeline._lm import LMAnalysis, LMSettings, analyze_lm

__all__ = ["CONVENTIONS", "Analysis", "LMAnalysis", "LMSettings", "analyze", "analyze_lm"]
