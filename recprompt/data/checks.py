"""Checks of a dataset against what a spec needs, made before any model call.

A rating spec on data without ratings would spend every call and then fail; a half-star
dataset (0.5-5) under a spec whose scale is 1-5 in whole steps can never be hit exactly.
Both are known from the data alone, so they are said up front.
"""

from __future__ import annotations

import numpy as np

from recprompt.data.dataset import Dataset
from recprompt.errors import DataError

__all__ = ["data_warnings", "rating_warnings", "require_ratings"]


def require_ratings(ds: Dataset, what: str) -> None:
    """Raise unless ``ds`` has ratings (``what`` names the spec that needs them)."""
    if not ds.has_ratings:
        raise DataError(
            f"{what} needs ratings, and dataset {ds.name!r} has none",
            hint="use a ranking spec on this data, or name its rating column "
            "(README: 'Bring your own dataset')",
        )


def rating_warnings(ds: Dataset, scale: tuple[float, float], step: float) -> list[str]:
    """What cannot be predicted exactly: ratings outside ``scale`` or off its ``step`` grid."""
    values = ds.rating[~np.isnan(ds.rating)]
    if not len(values):
        return []
    low, high = scale
    out = []
    outside = (values < low) | (values > high)
    if outside.any():
        out.append(
            f"{int(outside.sum())} of {len(values)} ratings in {ds.name!r} lie outside the "
            f"spec's scale [{low:g}, {high:g}] (data range {values.min():g} to {values.max():g})"
        )
    offset = (values - low) / step
    off_grid = np.abs(offset - np.round(offset)) > 1e-6
    if off_grid.any():
        examples = ", ".join(f"{v:g}" for v in np.unique(values[off_grid])[:5])
        out.append(
            f"{int(off_grid.sum())} of {len(values)} ratings in {ds.name!r} are not on the "
            f"spec's step {step:g} from {low:g} (e.g. {examples}): they can never be hit "
            "exactly; set output.step (e.g. 0.5) to match the data"
        )
    return out


def data_warnings(
    ds: Dataset, scale: tuple[float, float] | None = None, step: float | None = None
) -> list[str]:
    """The loader's warnings, plus the rating checks when a scale is given."""
    out = list(ds.stats.get("warnings", []))
    if scale is not None and step is not None:
        out += rating_warnings(ds, scale, step)
    return out
