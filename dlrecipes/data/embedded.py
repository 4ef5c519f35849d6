"""Embedded datasets that ship inside dependencies and load offline."""

import numpy as np


def load_digits():
    """scikit-learn's 1,797 handwritten digits: images (N, 8, 8, 1) with raw
    values 0..16 as float32, and integer labels 0..9."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return d.images.astype("float32")[..., None], d.target.astype("int32")


def stratified_split(x, y, test_fraction=0.2, val_fraction=0.1, seed=0):
    """Stratified train / validation / test split.

    `test_fraction` of all examples is held out first (stratified, fixed
    `seed`, so every run and every baseline sees the same test set); then
    `val_fraction` of the remainder becomes validation (0 means none).

    Returns:
        ((x_train, y_train), (x_val, y_val) or None, (x_test, y_test)).
    """
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed)
    val = None
    if val_fraction:
        x_tr, x_va, y_tr, y_va = train_test_split(
            x_tr, y_tr, test_size=val_fraction, stratify=y_tr,
            random_state=seed)
        val = (x_va, y_va)
    return (x_tr, y_tr), val, (x_te, y_te)
