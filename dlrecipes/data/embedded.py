"""Embedded datasets, shipped with dlrecipes: they load offline and with
nothing but NumPy (a GPU machine with JAX and no scikit-learn, statsmodels
or TensorFlow runs every embedded recipe).

`embedded.npz` holds exact copies of
- scikit-learn's `load_digits` (UCI "Optical Recognition of Handwritten
  Digits", CC BY 4.0): 1,797 images 8x8, values 0..16, labels 0..9;
- statsmodels' `sunspots` (yearly mean sunspot numbers 1700-2008) and `co2`
  (weekly Mauna Loa CO2, 1958-2001), both public-domain NOAA/SIDC records.
`write_bundle` rebuilds it from those packages; tests/test_embedded.py
checks the copy against them where they are installed.

`stratified_split` draws the same splits as scikit-learn's
`train_test_split(..., stratify=y, random_state=seed)` (same algorithm,
same NumPy `RandomState` stream; checked against scikit-learn in
tests/test_embedded.py), without importing it.
"""

import functools
import math
import os

import numpy as np

BUNDLE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "embedded.npz")


@functools.lru_cache(maxsize=None)
def _bundle():
    with np.load(BUNDLE, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def array(name):
    """A copy of one array of the bundle (e.g. "sunspots_values")."""
    return _bundle()[name].copy()


def load_digits():
    """The 1,797 handwritten digits: images (N, 8, 8, 1) with raw values
    0..16 as float32, and integer labels 0..9."""
    images = array("digits_images").astype("float32")[..., None]
    return images, array("digits_labels").astype("int32")


# ------------------------------------------------------------------ splits


def _approximate_mode(counts, draws, rng):
    """How many of `draws` to take from each class of sizes `counts`: the
    proportional share rounded down, then one more for the classes with the
    largest remainders (ties broken at random by `rng`)."""
    exact = counts / counts.sum() * draws
    taken = np.floor(exact)
    missing = int(draws - taken.sum())
    if missing > 0:
        remainder = exact - taken
        for value in np.sort(np.unique(remainder))[::-1]:
            (candidates,) = np.where(remainder == value)
            now = min(len(candidates), missing)
            taken[rng.choice(candidates, size=now, replace=False)] += 1
            missing -= now
            if missing == 0:
                break
    return taken.astype(int)


def stratified_indices(y, n_train, n_test, seed):
    """Train and test indices, stratified by `y`, `n_train` + `n_test` of
    them, drawn with `np.random.RandomState(seed)`.

    Raises:
        ValueError: a class with fewer than 2 members, or fewer train or
            test examples than classes.
    """
    classes, inverse, counts = np.unique(np.asarray(y), return_inverse=True,
                                         return_counts=True)
    if counts.min() < 2:
        raise ValueError("every class needs at least 2 examples to be "
                         "split; too few: "
                         f"{classes[counts < 2].tolist()}")
    if min(n_train, n_test) < len(classes):
        raise ValueError(f"cannot split {len(y)} examples into {n_train} "
                         f"and {n_test} with every one of the "
                         f"{len(classes)} classes in both")
    members = np.split(np.argsort(inverse, kind="stable"),
                       np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    per_train = _approximate_mode(counts, n_train, rng)
    per_test = _approximate_mode(counts - per_train, n_test, rng)
    train, test = [], []
    for i in range(len(classes)):
        shuffled = members[i].take(rng.permutation(counts[i]), mode="clip")
        train.extend(shuffled[:per_train[i]])
        test.extend(shuffled[per_train[i]:per_train[i] + per_test[i]])
    return rng.permutation(train), rng.permutation(test)


def split_arrays(x, y, *, test_size=None, train_size=None, seed=0):
    """`(x_train, x_test, y_train, y_test)`, stratified by `y`: give the
    test fraction (rounded up) or the train fraction (rounded down)."""
    n = len(y)
    if test_size is not None:
        n_test = math.ceil(test_size * n)
        n_train = n - n_test
    else:
        n_train = math.floor(train_size * n)
        n_test = n - n_train
    train, test = stratified_indices(y, n_train, n_test, seed)
    x, y = np.asarray(x), np.asarray(y)
    return x[train], x[test], y[train], y[test]


def stratified_split(x, y, test_fraction=0.2, val_fraction=0.1, seed=0):
    """Stratified train / validation / test split.

    `test_fraction` of all examples is held out first (stratified, fixed
    `seed`, so every run and every baseline sees the same test set); then
    `val_fraction` of the remainder becomes validation (0 means none).

    Returns:
        ((x_train, y_train), (x_val, y_val) or None, (x_test, y_test)).
    """
    x_tr, x_te, y_tr, y_te = split_arrays(x, y, test_size=test_fraction,
                                          seed=seed)
    val = None
    if val_fraction:
        x_tr, x_va, y_tr, y_va = split_arrays(x_tr, y_tr,
                                              test_size=val_fraction,
                                              seed=seed)
        val = (x_va, y_va)
    return (x_tr, y_tr), val, (x_te, y_te)


# ---------------------------------------------------------------- building


def write_bundle(path=BUNDLE):
    """Rebuild `embedded.npz` from scikit-learn and statsmodels."""
    from sklearn.datasets import load_digits as sk_digits
    from statsmodels.datasets import co2, sunspots

    digits = sk_digits()
    spots = sunspots.load_pandas().data
    carbon = co2.load_pandas().data
    np.savez_compressed(
        path,
        digits_images=digits.images.astype("uint8"),
        digits_labels=digits.target.astype("uint8"),
        sunspots_values=spots["SUNACTIVITY"].to_numpy("float64"),
        sunspots_years=spots["YEAR"].to_numpy("int64"),
        co2_values=carbon["co2"].to_numpy("float64"),
        co2_weeks=np.array([d.strftime("%Y-%m-%d") for d in carbon.index]))


if __name__ == "__main__":
    write_bundle()
    print(f"wrote {BUNDLE} ({os.path.getsize(BUNDLE)} bytes)")
