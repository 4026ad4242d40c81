import os

# Figures are drawn headless in tests; the library itself never chooses a backend.
os.environ.setdefault("MPLBACKEND", "Agg")
