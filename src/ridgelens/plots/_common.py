from __future__ import annotations


def get_ax(ax):
    """Return ``ax``, or the current pyplot axes when None."""
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax
