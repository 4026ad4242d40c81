"""Language models for ridgelens: byte text, a built-in causal transformer, Hugging Face checkpoints.

Sits just above the objectives (it builds :class:`~ridgelens.objectives.lm.LMObjective`) and
below every curvature stage: nothing here imports operators, spectra, ridge or the pipeline.
"""

from ridgelens.lm._hf import fuse_tanh_gelu, load_hf_checkpoint
from ridgelens.lm._model import ByteTransformer, LMConfig
from ridgelens.lm._text import (
           TokenSplit,
           file_split,
           stdlib_files,
           stdlib_split,
           text_bytes,
           windows,
)
from ridgelens.lm._train import train_lm

__all__ = ["ByteTransformer", "LMConfig", "TokenSplit", "file_split", "fuse_tanh_gelu", "load_hf_checkpoint",
           "stdlib_files", "stdlib_split", "text_bytes", "train_lm", "windows"]
