"""Spectra of curvature operators."""

from ridgelens.spectra._dense import Spectrum, eigen

__all__ = ["Spectrum", "eigen"]
