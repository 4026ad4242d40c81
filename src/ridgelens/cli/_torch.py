"""Torch models on the command line: ``--device``/``--dtype``/``--batch-size``, and a user's own model.

A user's model is ``--model module.path:factory`` (imported with the working directory on
``sys.path``) or ``--model file.py:factory``; ``factory()`` is called with no arguments and
must return a ``torch.nn.Module``. It is analyzed in eval mode (a private copy). ``--weights``
(a ``state_dict`` or ``.safetensors``, never unpickled beyond tensors) is loaded into it; its
weights are θ̂ as given unless ``--polish``. The data are ``--data tensors:PATH`` (X and y, see
:mod:`ridgelens.data._tensors`). The loss: ``cross-entropy`` for integer targets, otherwise
``mse`` (the mean over samples of ½‖f(x) − y‖², as for ``--model mlp``); ``--loss`` overrides.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ridgelens.errors import DataError, ModelError, ModelOutputError, RidgelensError

BUILTIN_MODELS = ("linear", "logistic", "mlp", "lm")
DTYPES = ("float64", "float32")


def model_arg(text: str) -> str:
    """``--model``: a built-in name, ``hf:DIR``, or ``module.path:factory`` / ``file.py:factory`` (form only)."""
    if text in BUILTIN_MODELS or (text.startswith("hf:") and len(text) > 3):
        return text
    where, sep, factory = text.rpartition(":")
    if not sep or not where or not factory.isidentifier():
        import argparse

        raise argparse.ArgumentTypeError(
            f"--model must be one of {', '.join(BUILTIN_MODELS)}, hf:DIR, or module.path:factory or file.py:factory "
            f"(a function returning a torch.nn.Module), got {text!r}")
    return text


def is_user_model(spec: str) -> bool:
    """Whether ``--model`` names a user's factory rather than a built-in model."""
    return spec not in BUILTIN_MODELS and not spec.startswith("hf:")


def torch_device(text: str):
    """``--device`` as a torch.device that exists on this machine."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise RidgelensError(f"--device {text!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RidgelensError(f"--device {text}: torch sees no CUDA device on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RidgelensError(f"--device {text}: torch sees {torch.cuda.device_count()} CUDA device(s)")
        if device.index is None:  # one GPU per process under torchrun (NCCL refuses two ranks on one GPU)
            local = os.environ.get("LOCAL_RANK", "0")
            device = torch.device("cuda", (int(local) if local.isdigit() else 0) % torch.cuda.device_count())
        if "LOCAL_RANK" in os.environ:  # and the process's current GPU: NCCL's object collectives go there
            torch.cuda.set_device(device)
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RidgelensError(f"--device {text}: MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise RidgelensError(f"--device {text}: ridgelens runs on cpu, cuda or mps, not {device.type}")
    return device


def torch_dtype(text: str):
    """``--dtype`` as a torch floating dtype."""
    import torch

    if text not in DTYPES:
        raise RidgelensError(f"--dtype must be one of {', '.join(DTYPES)}, got {text!r}")
    return getattr(torch, text)


def check_unpenalized(names, unpenalized) -> None:
    """Each ``--unpenalized`` pattern matches a parameter name, and some parameter stays penalized."""
    for pat in unpenalized:
        if not any(fnmatch.fnmatch(n, pat) for n in names):
            raise RidgelensError(f"--unpenalized {pat!r} matches no parameter; the names are {', '.join(names)}")
    if unpenalized and all(any(fnmatch.fnmatch(n, pat) for pat in unpenalized) for n in names):
        raise RidgelensError(f"--unpenalized {' '.join(unpenalized)} leaves no parameter penalized (the names are "
                             f"{', '.join(names)}): the penalty would act on nothing")


def half_squared(o, t):
    """Mean over samples of ½‖f(x) − y‖² (summed over outputs)."""
    return 0.5 * ((o - t) ** 2).sum(dim=-1).mean()


half_squared.gaussian_factor = 0.5  # Gaussian: ½Σr²/n_b (TorchObjective.gaussian_loss)


def check_refit_tol(tol, option: str = "--refit-tol") -> None:
    """``--refit-tol`` (or another gradient-norm tolerance, named ``option``) must be a finite number > 0."""
    import math

    if not (math.isfinite(tol) and tol > 0):
        raise RidgelensError(f"{option} must be a positive number (a gradient-norm tolerance), got {tol}")


def load_error(exc: BaseException) -> str:
    """What ``load_state_dict`` said, on one line: torch puts the keys and shapes after a header line."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return "; ".join(lines[1:] or lines)[:600] if lines else type(exc).__name__


def _raised(exc: BaseException) -> str:
    """``raised ValueError: …``, or ``called sys.exit(3)``: what the user's code did instead of returning."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}) instead of returning"
    return f"raised {type(exc).__name__}: {exc}"


def load_factory(spec: str):
    """The factory function named by ``module.path:factory`` or ``file.py:factory``."""
    where, _, name = spec.rpartition(":")
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise ModelError(f"--model {spec}: {path} is a folder, not a Python file" if path.is_dir()
                             else f"--model {spec}: no file {path}")
        mod_name = f"_ridgelens_user_model_{abs(hash(str(path.resolve())))}"
        try:
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_name] = module
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # a module that calls sys.exit() has not loaded either
            sys.modules.pop(mod_name, None)
            raise ModelError(f"--model {spec}: running {path} {_raised(exc)}") from None
    else:
        if os.getcwd() not in sys.path:  # `ridgelens` is a script: the working directory is not on the path
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            raise ModelError(f"--model {spec}: no module named {exc.name!r} (run from the folder that holds it, "
                             "or give file.py:factory)") from None
        except (Exception, SystemExit) as exc:
            raise ModelError(f"--model {spec}: importing {where} {_raised(exc)}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ModelError(f"--model {spec}: {where} has no function {name!r}")
    return factory


def load_user_data(args):
    """``--data tensors:PATH`` for a user's model, as a Dataset whose X and y are tensors of any shape."""
    from ridgelens.data import Dataset
    from ridgelens.data._tensors import load_tensors

    for flag, value in (("--standardize", args.standardize), ("--target", args.target),
                        ("--positive-class", args.positive_class)):
        if value not in (None, False):
            raise RidgelensError(f"{flag} is for the built-in models; your model takes the tensors as they are")
    if not args.data.startswith("tensors:") or not args.data[8:]:
        raise DataError(f"--model {args.model} takes --data tensors:PATH (a .npz or .pt file holding X and y), "
                        f"got {args.data!r}")
    X, y = load_tensors(args.data[8:])
    return Dataset(X=X, y=y, feature_names=[], target_name="y", name=args.data)


def _check_classes(args, out, y) -> None:
    """Refuse class labels the model's (n, classes) outputs cannot score, on every row (the first batch's ran)."""
    from ridgelens.data._tensors import first_row

    classes = out.shape[1] if out.ndim >= 2 else None
    if classes == 1:
        raise DataError(f"--model {args.model} has one output, and cross-entropy over one class is 0 whatever the "
                        "weights (nothing to analyze): give the model one output per class, or use --loss mse")
    if classes is not None and y.numel() and int(y.max()) >= classes:
        row = first_row(y >= classes)
        raise DataError(f"{args.data} y has the class label {int(y.reshape(len(y), -1)[row].max())} in row {row}, "
                        f"but the model has {classes} outputs (classes 0 … {classes - 1})")


def build_user_objective(args, X, y, like=None):
    """The user's model (factory, then ``--weights``) and data as a TorchObjective; returns (objective, task).

    ``like``: every row's labels, whose largest fixes the one-hot width (default ``y``'s own).
    """
    import torch

    from ridgelens.data._tensors import first_row, load_state_dict
    from ridgelens.objectives.torch import TorchObjective

    factory = load_factory(args.model)
    try:
        model = factory()
    except (Exception, SystemExit) as exc:
        raise ModelError(f"--model {args.model}: calling {factory.__name__}() {_raised(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"--model {args.model}: {factory.__name__}() returned a {type(model).__name__}, "
                         "not a torch.nn.Module")
    if args.weights is not None:
        state = load_state_dict(args.weights)
        try:
            model.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"--weights {args.weights} does not fit the model of {args.model}: "
                             f"{load_error(exc)}") from None
    dtype, device = torch_dtype(args.dtype), torch_device(args.device)
    model = model.to(device=device, dtype=dtype)
    X = X.to(device=device, dtype=dtype) if X.is_floating_point() else X.to(device)
    classify = not y.is_floating_point()
    loss = args.loss or ("cross-entropy" if classify else "mse")
    labels = y if like is None else like  # every row of the file (like), so that a row named is the file's
    if classify and labels.numel() and int(labels.min()) < 0:  # -100 is PyTorch's ignored label: rows dropped
        row = first_row(labels < 0)
        raise DataError(f"{args.data} y has a negative class label ({int(labels.reshape(len(labels), -1)[row].min())}) in "
                        f"row {row}: class labels are 0, 1, … (ignored or padding labels such as -100 are not supported: "
                        "cross-entropy would skip the row while n counts it; drop such rows)")
    if loss == "cross-entropy":
        if not classify:
            raise DataError("--loss cross-entropy needs integer class labels in y; this y is real-valued")
        Y, loss_fn = y.to(device=device, dtype=torch.long), torch.nn.functional.cross_entropy
    else:
        Y = y.to(device=device, dtype=dtype)
        if classify:  # class labels under the squared loss: one-hot, as for --model mlp
            width = int((y if like is None else like).max()) + 1
            Y = torch.nn.functional.one_hot(y.to(torch.long), width).to(device=device, dtype=dtype)
        elif Y.ndim == 1:
            Y = Y[:, None]
        loss_fn = half_squared
    check_unpenalized([n for n, p in model.named_parameters() if p.requires_grad], args.unpenalized)
    bs = args.batch_size
    batches = [(X[i:i + bs], Y[i:i + bs]) for i in range(0, len(X), bs)]
    try:
        with torch.no_grad():
            out = model(batches[0][0])
        if not isinstance(out, torch.Tensor):
            raise ModelOutputError(f"--model {args.model} returns a {type(out).__name__} on the first batch of "
                                   f"{args.data}, not a tensor of outputs (n, outputs), which the {loss} loss needs: "
                                   "make forward return the outputs (e.g. the logits of an output object)")
        if loss == "cross-entropy":  # before the loss: its own error names neither the row nor the file
            _check_classes(args, out, labels)
        loss_fn(out, batches[0][1])
    except (ModelOutputError, DataError, torch.OutOfMemoryError):  # out of memory: the device's, said by main
        raise
    except Exception as exc:
        raise ModelError(f"--model {args.model} on the first batch of {args.data}: {type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''} (loss {loss})") from None
    if loss != "cross-entropy" and isinstance(out, torch.Tensor) and out.shape != batches[0][1].shape:
        raise DataError(f"--model {args.model} returns outputs of shape {tuple(out.shape)} on the first batch, but the "
                        f"squared loss needs them shaped as the targets, {tuple(batches[0][1].shape)} (n, outputs): "
                        "other shapes would broadcast, every output against every target")
    obj = TorchObjective(model, loss_fn, batches, eval_mode=True, unpenalized=tuple(args.unpenalized))
    return obj, loss
