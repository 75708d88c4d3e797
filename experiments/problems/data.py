"""The real datasets, as they install with scikit-learn: nothing is downloaded.

- Breast cancer (Wisconsin diagnostic; 569 tumours × 30 features, label malignant or benign), each
  feature standardized to mean 0 and variance 1 over the training split, with a constant column for the
  intercept, labels as ±1.
- Handwritten digits (1,797 images of 8×8 pixels with 17 grey levels), binarized at half intensity
  (a pixel is 1 where its level is 8 or more of 16), flattened to 64 values.

Both are split once into training and held-out parts by a fixed permutation (NumPy's generator with
seed 0), so every run, test and checkpoint sees the same examples.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

#: The fraction of each dataset held out from training.
HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class Split:
    """Training and held-out arrays (float64 NumPy; inputs ``x`` and, where there are labels, ``y``)."""

    train_x: np.ndarray
    held_out_x: np.ndarray
    train_y: np.ndarray | None = None
    held_out_y: np.ndarray | None = None


def _split_indices(num_examples: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(SPLIT_SEED).permutation(num_examples)
    num_held_out = int(round(HELD_OUT_FRACTION * num_examples))
    return np.sort(order[num_held_out:]), np.sort(order[:num_held_out])


def _sklearn_datasets():
    try:
        import sklearn.datasets
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("The real-data problems need scikit-learn: pip install scikit-learn") from None
    return sklearn.datasets


@functools.cache
def breast_cancer() -> Split:
    """Standardized features with an intercept column (x: (n, 31)), labels ±1 (1 = malignant)."""
    bunch = _sklearn_datasets().load_breast_cancer()
    features = np.asarray(bunch.data, np.float64)
    labels = np.where(np.asarray(bunch.target) == 0, 1.0, -1.0)  # sklearn codes malignant as 0
    train, held_out = _split_indices(len(labels))
    mean, std = features[train].mean(axis=0), features[train].std(axis=0)
    standardized = (features - mean) / std
    x = np.concatenate([standardized, np.ones((len(labels), 1))], axis=1)
    return Split(x[train], x[held_out], labels[train], labels[held_out])


@functools.cache
def binarized_digits() -> Split:
    """8×8 digit images as 64 values in {0, 1}."""
    images = np.asarray(_sklearn_datasets().load_digits().data, np.float64)
    binary = (images >= 8).astype(np.float64)
    train, held_out = _split_indices(len(binary))
    return Split(binary[train], binary[held_out])
