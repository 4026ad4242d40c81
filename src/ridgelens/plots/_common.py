from __future__ import annotations


def scaled_label(path, text: str, scaled: str) -> str:
    """``scaled`` when ``path``'s eigen view is that of D^{-1/2}HD^{-1/2} (a penalty matrix), else ``text``."""
    return scaled if getattr(path, "scaled_view", False) else text


def get_ax(ax):
    """Return ``ax``, or the current pyplot axes when None."""
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax
