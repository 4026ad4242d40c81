"""Spectra of curvature operators: eigenpairs (dense or Lanczos), density (SLQ), trace (Hutch++)."""

from ridgelens.spectra._dense import Spectrum, eigen
from ridgelens.spectra._density import (
    SpectralDensity,
    TraceEstimate,
    hutchpp_trace,
    spectral_density,
)

__all__ = ["SpectralDensity", "Spectrum", "TraceEstimate", "eigen", "hutchpp_trace", "spectral_density"]
