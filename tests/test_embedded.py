"""The embedded datasets ship with dlrecipes: exact copies of scikit-learn's
digits and statsmodels' series, and a stratified split that draws exactly
scikit-learn's `train_test_split(..., stratify=y)`, without importing
either package."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlrecipes.data import embedded, series

pytestmark = pytest.mark.backends


def test_digits_are_scikit_learns():
    datasets = pytest.importorskip("sklearn.datasets")
    want = datasets.load_digits()
    x, y = embedded.load_digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], want.images)
    np.testing.assert_array_equal(y, want.target)


def test_series_are_statsmodels():
    sm = pytest.importorskip("statsmodels.datasets")
    spots = sm.sunspots.load_pandas().data
    got = series.load_sunspots()
    np.testing.assert_array_equal(got.values, spots["SUNACTIVITY"])
    np.testing.assert_array_equal(got.time, spots["YEAR"])
    co2 = sm.co2.load_pandas().data
    got = series.load_co2()
    np.testing.assert_array_equal(got.values, co2["co2"].to_numpy())
    assert got.time[0] == co2.index[0].strftime("%Y-%m-%d")
    assert got.missing == 59


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(2, 40), min_size=2, max_size=7),
       fraction=st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.5]),
       by_train=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_split_draws_what_scikit_learn_draws(counts, fraction, by_train,
                                             seed):
    model_selection = pytest.importorskip("sklearn.model_selection")
    y = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(y)
    x = np.arange(len(y))
    size = {"train_size" if by_train else "test_size": fraction}
    try:
        want = model_selection.train_test_split(
            x, y, stratify=y, random_state=seed, **size)
    except ValueError:
        with pytest.raises(ValueError):
            embedded.split_arrays(x, y, seed=seed, **size)
        return
    got = embedded.split_arrays(x, y, seed=seed, **size)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_three_way_split_is_stratified_and_disjoint():
    x, y = embedded.load_digits()
    (xt, yt), (xv, yv), (xs, ys) = embedded.stratified_split(
        np.arange(len(y)), y, test_fraction=0.2, val_fraction=0.1, seed=3)
    everything = np.concatenate([xt, xv, xs])
    assert len(everything) == len(set(everything.tolist())) == len(y)
    assert len(xs) == 360 and len(xv) == 144
    # Each class's share of the test set is its share of all digits.
    share = np.bincount(ys) / len(ys) - np.bincount(y) / len(y)
    assert np.abs(share).max() < 0.01
