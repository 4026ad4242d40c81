"""Tensors and weights from files, loaded without ever running code from them.

- Data (``--data tensors:PATH``): a ``.npz`` file (``numpy.savez``; read with
  ``allow_pickle=False``) or a ``.pt`` file (``torch.save``; read with ``weights_only=True``)
  holding the arrays ``X`` (inputs, any shape with the samples first) and ``y`` (targets:
  integer class labels, or real values, one row per sample). A ``.pt`` file may also hold
  the pair ``(X, y)``.
- Weights (``--weights PATH``): a ``state_dict`` saved with ``torch.save`` (read with
  ``weights_only=True``), or a ``.safetensors`` file (needs the ``safetensors`` package,
  ``pip install 'ridgelens[safetensors]'``). A pickle of anything else (a whole model, an
  object with code) is refused, never executed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ridgelens.errors import DataError, ModelError

TENSOR_SUFFIXES = (".npz", ".pt", ".pth")


def load_tensors(path) -> tuple:
    """``(X, y)`` as torch tensors from a ``.npz`` or ``.pt`` file (see the module's docstring)."""
    import torch

    from ridgelens.data import read_input

    path = Path(path)
    what = "tensors file"
    if path.suffix.lower() not in TENSOR_SUFFIXES:
        raise DataError(f"tensors:{path}: the file must end in {', '.join(TENSOR_SUFFIXES)} "
                        "(numpy.savez with arrays X and y, or torch.save of {'X': …, 'y': …})")
    blob = read_input(path, what)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                found = {k: z[k] for k in z.files}
        except ValueError as exc:  # object arrays need pickle: refused
            raise DataError(f"tensors:{path} holds arrays that need pickle to load ({exc}); save plain "
                            "numeric arrays") from None
        except Exception:
            raise DataError(f"tensors:{path} is not a .npz file written by numpy.savez") from None
    else:
        try:
            found = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception:
            raise DataError(f"tensors:{path} cannot be loaded with weights_only=True (a pickle of objects "
                            "other than tensors is never executed); save {'X': tensor, 'y': tensor}") from None
        if isinstance(found, (tuple, list)) and len(found) == 2:
            found = {"X": found[0], "y": found[1]}
    if not isinstance(found, dict) or not {"X", "y"} <= set(found):
        keys = sorted(found) if isinstance(found, dict) else type(found).__name__
        raise DataError(f"tensors:{path} must hold X and y (found {keys})")
    X, y = (_as_tensor(found[k], f"tensors:{path} {k}") for k in ("X", "y"))
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise DataError(f"tensors:{path}: X and y need one row per sample, got shapes {tuple(X.shape)} "
                        f"and {tuple(y.shape)}")
    if len(X) < 2:  # as a CSV of one data row: a mean loss over one sample has nothing to regularize against
        raise DataError(f"tensors:{path} holds {len(X)} sample{'s' if len(X) != 1 else ''}; need at least 2")
    for name, t in (("X", X), ("y", y)):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = first_row(~torch.isfinite(t))
            raise DataError(f"tensors:{path} {name} has a NaN or Inf in row {bad}")
    return X, y


def first_row(mask) -> int:
    """The first row (index along dim 0) of a boolean tensor that holds a True anywhere."""
    return int(mask.reshape(len(mask), -1).any(dim=1).nonzero()[0, 0])


def _as_tensor(value, what: str):
    import torch

    if isinstance(value, torch.Tensor):
        if value.is_complex():  # as a .npz's complex array: refused, not cast (the imaginary part dropped)
            raise DataError(f"{what} must be real numeric, got dtype {value.dtype}")
        if value.layout != torch.strided:  # sparse: models and losses take dense tensors
            raise DataError(f"{what} is a {value.layout} tensor; save it dense (tensor.to_dense())")
        if value.is_quantized:
            raise DataError(f"{what} is a quantized tensor ({value.dtype}); save it dequantized (tensor.dequantize())")
        plain = {torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
                 torch.int8, torch.uint8, torch.bool}
        if value.dtype not in plain:  # float8 and the like: no isfinite, no float64 cast path
            raise DataError(f"{what} has dtype {value.dtype}; save it as float64, float32, float16, bfloat16, "
                            "int64, int32, int16, int8, uint8 or bool")
        return value.detach()
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{what} must be numeric, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def load_state_dict(path) -> dict:
    """A ``state_dict`` (name → tensor) from ``torch.save`` (``weights_only=True``) or a ``.safetensors`` file."""
    import torch

    from ridgelens.data import read_input

    path = Path(path)
    blob = read_input(path, "--weights file")
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load as load_safetensors
        except ImportError:
            raise ModelError(f"--weights {path}: reading .safetensors needs the safetensors package "
                             "(pip install 'ridgelens[safetensors]')") from None
        try:
            state = load_safetensors(blob)
        except Exception as exc:
            raise ModelError(f"--weights {path} is not a valid safetensors file ({type(exc).__name__})") from None
    else:
        try:
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception:  # torch's message suggests weights_only=False, which we never do
            raise ModelError(f"--weights {path} is not a state_dict saved with torch.save (it cannot be loaded "
                             "with weights_only=True; a pickle of objects is never executed)") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelError(f"--weights {path} holds a {type(state).__name__}, not a state_dict "
                         "(a mapping of parameter names to tensors)")
    for k, v in state.items():  # load_state_dict would drop the imaginary part into real parameters, silently
        if v.is_complex():
            raise ModelError(f"--weights {path}: {k} is complex ({v.dtype}); ridgelens analyzes real weights")
    return state
