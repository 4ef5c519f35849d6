"""UCR time-series classification: the `.ts` reader, the shipped problems,
the 1-nearest-neighbour baseline, and sequence-classification on them."""

import json

import numpy as np
import pytest

from conftest import run_dir_of
from dlrecipes.cli import main
from dlrecipes.data import timeseries as ts
from dlrecipes.errors import UsageError

HEADER = ("# a comment\n@problemName Toy\n@timeStamps false\n@missing {m}\n"
          "@univariate {u}\n@equalLength {e}\n@classLabel true a b\n@data\n")


def write(path, rows, missing="false", univariate="true", equal="true",
          header=None):
    path.write_text((header if header is not None else HEADER.format(
        m=missing, u=univariate, e=equal)) + "\n".join(rows) + "\n")
    return str(path)


def test_reads_multivariate_series_with_labels(tmp_path):
    f = ts.read_ts(write(tmp_path / "m.ts", [
        "1,2,3:4,5,6:a", "0.5,?,1:1,1,1:b"], missing="true",
        univariate="false"))
    assert f.class_labels == ["a", "b"] and f.labels == ["a", "b"]
    assert f.series[0].shape == (2, 3)
    assert np.isnan(f.series[1][0, 1])


def test_arrays_pad_impute_and_label_order(tmp_path):
    train = ts.read_ts(write(tmp_path / "tr.ts", [
        "1,2,3,4:b", "1,?,3:a", "2,2:b"], missing="true", equal="false"))
    test = ts.read_ts(write(tmp_path / "te.ts", ["5,6,7:a"]))
    with pytest.raises(UsageError, match="missing values.*--impute"):
        ts.ts_arrays(train, test, pad=True)
    with pytest.raises(UsageError, match="unequal lengths .2 to 4 steps.*"
                       "--pad"):
        ts.ts_arrays(train, test, impute=True)
    (x, y), (xt, yt), names = ts.ts_arrays(train, test, pad=True,
                                           impute=True)
    assert names == ("a", "b")  # the header's order
    assert x.shape == (3, 4, 1) and xt.shape == (1, 4, 1)
    np.testing.assert_array_equal(x[1, :, 0], [1, 2, 3, 0])  # 2 imputed
    np.testing.assert_array_equal(x[2, :, 0], [2, 2, 0, 0])  # padded
    np.testing.assert_array_equal(y, [1, 0, 1])
    np.testing.assert_array_equal(yt, [0])


@pytest.mark.parametrize("header, rows, needle", [
    ("@problemName R\n@targetLabel true\n@data\n", ["1,2:0.5"],
     "regression targets"),
    ("@problemName N\n@classLabel false\n@data\n", ["1,2:x"],
     "no class labels"),
    ("@problemName T\n@timeStamps true\n@classLabel true a\n@data\n",
     ["(0,1):a"], "time stamps"),
    ("@problemName B\n@classLabel true a\n@data\n", ["1,x,2:a"],
     "values must be numbers"),
    ("@problemName E\n@classLabel true a\n@data\n", [], "no series"),
    ("this is not a ts file\n", ["1:a"], "expected a @header line"),
])
def test_refused_files(tmp_path, header, rows, needle):
    with pytest.raises(UsageError, match=needle):
        ts.read_ts(write(tmp_path / "bad.ts", rows, header=header))


def test_test_labels_must_occur_in_training(tmp_path):
    train = ts.read_ts(write(tmp_path / "tr.ts", ["1,2:a", "2,3:a"]))
    test = ts.read_ts(write(tmp_path / "te.ts", ["1,2:b"]))
    with pytest.raises(UsageError, match="test label 'b' never occurs"):
        ts.ts_arrays(train, test)


@pytest.mark.parametrize("name, shapes, classes, one_nn", [
    # The archive's published 1-NN Euclidean error rates: 0.087, 0.045,
    # 0.479 (Dau et al. 2019); the measurement agrees.
    ("gunpoint", ((50, 150, 1), (150, 150, 1)), 2, 0.9133),
    ("italy_power", ((67, 24, 1), (1029, 24, 1)), 2, 0.9553),
    ("osuleaf", ((200, 427, 1), (242, 427, 1)), 6, 0.5207),
])
def test_shipped_problems_and_their_1nn_baseline(name, shapes, classes,
                                                 one_nn):
    train, test, names = ts.load_ucr(name)
    assert (train[0].shape, test[0].shape) == shapes
    assert len(names) == classes
    assert set(np.unique(train[1])) == set(range(classes))
    assert ts.nearest_neighbour_accuracy(train, test) == pytest.approx(
        one_nn, abs=5e-5)


def test_nearest_neighbour_is_exact_on_a_toy_problem():
    train = (np.array([[0.0], [10.0]]), np.array([0, 1]))
    test = (np.array([[1.0], [9.0], [6.0], [4.0]]), np.array([0, 1, 1, 1]))
    assert ts.nearest_neighbour_accuracy(train, test) == 0.75


def _run(out, *flags):
    assert main(["run", "sequence-classification", "--output-dir", str(out),
                 "--verbose", "0", "--epochs", "1", "--units", "8",
                 *map(str, flags)]) == 0
    run_dir = run_dir_of(out, "sequence-classification")
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_gunpoint_run_reports_the_1nn_baseline(tmp_path):
    run_dir, metrics = _run(tmp_path, "--dataset", "gunpoint", "--model",
                            "cnn1d")
    assert metrics["test_1nn_accuracy"] == pytest.approx(0.9133, abs=5e-5)
    assert 0 <= metrics["test_accuracy"] <= 1
    assert metrics["test_errors"] == round(150 * (1 - metrics[
        "test_accuracy"]))
    assert (run_dir / "confusion.png").is_file()


def test_ts_files_run_end_to_end(tmp_path):
    rng = np.random.default_rng(0)

    def rows(n):
        out = []
        for i in range(n):
            label = "up" if i % 2 else "down"
            steps = 12 + i % 3  # unequal lengths
            values = np.cumsum(rng.normal(1 if i % 2 else -1, 0.3,
                                          (2, steps)), axis=1)
            dims = [",".join(f"{v:.3f}" for v in dim) for dim in values]
            if i == 3:
                dims[0] = "?," + dims[0].split(",", 1)[1]
            out.append(":".join(dims + [label]))
        return out

    header = ("@problemName Walk\n@missing true\n@univariate false\n"
              "@equalLength false\n@classLabel true down up\n@data\n")
    train = write(tmp_path / "W_TRAIN.ts", rows(40), header=header)
    test = write(tmp_path / "W_TEST.ts", rows(10), header=header)
    run_dir, metrics = _run(tmp_path / "runs", "--dataset",
                            f"ts:{train},{test}", "--pad", "--impute",
                            "--model", "gru")
    assert metrics["test_1nn_accuracy"] >= 0.9  # the walks part ways
    assert 0 <= metrics["test_accuracy"] <= 1
