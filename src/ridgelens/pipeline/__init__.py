"""The whole flow, above the stages: θ̂ → curvature → spectrum → predicted path → refit → error."""

from ridgelens.pipeline._analyze import CONVENTIONS, Analysis, analyze, refit_at, refit_count
from ridgelens.pipeline._lm import LMAnalysis, LMSettings, analyze_lm
from ridgelens.pipeline._optimizer_refit import optimizer_refit
from ridgelens.pipeline._weight_decay import (
           WeightDecayPrediction,
           analyze_weight_decay,
           optimizer_fixed_point,
           predict,
)

__all__ = ["CONVENTIONS", "Analysis", "LMAnalysis", "LMSettings", "WeightDecayPrediction", "analyze", "analyze_lm",
           "analyze_weight_decay", "optimizer_fixed_point", "optimizer_refit", "predict", "refit_at", "refit_count"]
