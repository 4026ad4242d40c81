"""The whole flow, above the stages: θ̂ → curvature → spectrum → predicted path → refit → error."""

from ridgelens.pipeline._analyze import CONVENTIONS, Analysis, analyze

__all__ = ["CONVENTIONS", "Analysis", "analyze"]
