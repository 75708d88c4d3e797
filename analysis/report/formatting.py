"""How the report writes numbers and names."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd


def format_number(value) -> str:
    """Three significant figures, scientific beyond 1e±4; ints as ints; — for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value == 0:
            return "0"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        magnitude = abs(value)
        return f"{value:.3g}" if 1e-3 <= magnitude < 1e4 else f"{value:.2e}"
    return str(value)


def formatted(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """``frame``'s ``columns`` (name → heading) as strings."""
    present = {name: heading for name, heading in columns.items() if name in frame}
    return pd.DataFrame({heading: frame[name].map(format_number) for name, heading in present.items()})


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
