"""Time-series classification data: the UCR/UEA `.ts` format, three UCR
problems shipped offline, and the 1-nearest-neighbour baseline.

`ucr.npz` (next to this module) holds GunPoint, ItalyPowerDemand and
OSULeaf from the UCR Time Series Classification Archive (Dau et al. 2019,
https://www.cs.ucr.edu/~eamonn/time_series_data_2018/), with the
archive's own train/test splits, as float32: copied from the `.ts` files
that sktime ships under `sktime/datasets/data/` (its BSD-3-Clause
licence); the archive itself publishes them freely for research and asks
that users cite it. `write_ucr_bundle(folder)` rebuilds the file from such
a folder.

`read_ts(path)` reads any univariate or multivariate `.ts` file with class
labels; `ts_arrays(train, test, pad=..., impute=...)` turns two of them
into `(examples, steps, channels)` arrays and integer labels;
`nearest_neighbour_accuracy` is the classical baseline the sequence
recipe reports beside its model. NumPy only.
"""

import functools
import os

import numpy as np

from dlrecipes.errors import UsageError

BUNDLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ucr.npz")
# dataset name -> the archive's problem name
UCR = {"gunpoint": "GunPoint", "italy_power": "ItalyPowerDemand",
       "osuleaf": "OSULeaf"}


class TsFile:
    """One `.ts` file: `series` (a list of `(channels, steps)` float
    arrays, NaN where the file says `?`), `labels` (strings) and the
    header's `class_labels` (None when the header lists none)."""

    def __init__(self, path, series, labels, class_labels, name):
        self.path = path
        self.series = series
        self.labels = labels
        self.class_labels = class_labels
        self.name = name


def read_ts(path):
    """Read a `.ts` file (sktime's format for the UCR/UEA archives).

    Raises:
        UsageError: not a readable `.ts` file of labelled series: a
            regression file (`@targetLabel`), one without class labels,
            time stamps, a malformed line, no data.
    """
    from dlrecipes.paths import check_file

    check_file(path, "--dataset ts", "a .ts file")
    header, series, labels = {}, [], []
    in_data = False
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise UsageError(f"{path}:{number}: expected a @header line "
                                 f"or @data. Received: {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                _check_header(path, header)
                in_data = True
            else:
                header[key] = value.strip()
            continue
        *dims, label = line.split(":")
        if not dims:
            raise UsageError(f"{path}:{number}: a series needs its values "
                             "and a class label after a ':'")
        try:
            values = [np.array([np.nan if v.strip() == "?" else float(v)
                                for v in dim.split(",")], dtype="float64")
                      for dim in dims]
        except ValueError:
            raise UsageError(f"{path}:{number}: values must be numbers or "
                             "'?'") from None
        if len({len(v) for v in values}) > 1:
            raise UsageError(f"{path}:{number}: the channels of one series "
                             "have different lengths")
        series.append(np.stack(values))
        labels.append(label.strip())
    if not in_data:
        raise UsageError(f"{path} has no @data line")
    class_label = header.get("classlabel", "").split()
    if not series:
        raise UsageError(f"{path} holds no series after @data")
    if len({s.shape[0] for s in series}) > 1:
        raise UsageError(f"{path}: the series have different numbers of "
                         "channels")
    return TsFile(path, series, labels, class_label[1:] or None,
                  header.get("problemname", os.path.basename(path)))


def _check_header(path, header):
    """What this reader takes: class labels, no regression targets, no
    time stamps."""
    if header.get("targetlabel", "false").lower() == "true":
        raise UsageError(f"{path} holds regression targets (@targetLabel "
                         "true); sequence-classification needs class labels")
    if header.get("timestamps", "false").lower() == "true":
        raise UsageError(f"{path} uses time stamps (@timeStamps true), which "
                         "this reader does not take")
    class_label = header.get("classlabel", "").split()
    if not class_label or class_label[0].lower() != "true":
        raise UsageError(f"{path} has no class labels (@classLabel true "
                         "...): sequence-classification needs them")


def _impute(series):
    """Missing values of each channel linearly interpolated in time (the
    nearest known value at the ends)."""
    out = series.copy()
    for channel in out:
        known = ~np.isnan(channel)
        if not known.any():
            raise UsageError("--impute: a channel of a series has no known "
                             "value to interpolate from")
        steps = np.arange(len(channel))
        channel[~known] = np.interp(steps[~known], steps[known],
                                    channel[known])
    return out


def ts_arrays(train, test, pad=False, impute=False):
    """`(x_train, y_train), (x_test, y_test), class_names` from two
    `TsFile`s: x `(examples, steps, channels)` float32, y int32 indices of
    `class_names` (the train file's header order, else sorted).

    Unequal lengths are zero-padded at the end to the longest series with
    `pad` (refused otherwise); missing values (`?`) are interpolated with
    `impute` (refused otherwise). A test label the training file never
    shows is refused.
    """
    names = list(train.class_labels or sorted(set(train.labels)))
    seen = set(train.labels)
    unknown = sorted(set(test.labels) - seen)
    if unknown:
        raise UsageError(f"{test.path}: test label {unknown[0]!r} never "
                         f"occurs in the training file. Training labels: "
                         f"{', '.join(sorted(seen))}")
    names = [n for n in names if n in seen] + sorted(seen - set(names))
    if train.series[0].shape[0] != test.series[0].shape[0]:
        raise UsageError("the training and test files have different "
                         "numbers of channels")
    series = train.series + test.series
    if any(np.isnan(s).any() for s in series):
        if not impute:
            raise UsageError("the series have missing values ('?'): pass "
                             "--impute to interpolate them")
        series = [_impute(s) for s in series]
    lengths = {s.shape[1] for s in series}
    if len(lengths) > 1 and not pad:
        raise UsageError(f"the series have unequal lengths ({min(lengths)} "
                         f"to {max(lengths)} steps): pass --pad to pad them "
                         "with zeros at the end")
    steps = max(lengths)
    x = np.zeros((len(series), steps, series[0].shape[0]), "float32")
    for i, s in enumerate(series):
        x[i, :s.shape[1]] = s.T
    index = {name: i for i, name in enumerate(names)}
    y = np.array([index[label] for label in train.labels + test.labels],
                 "int32")
    n = len(train.series)
    return (x[:n], y[:n]), (x[n:], y[n:]), tuple(names)


@functools.lru_cache(maxsize=None)
def _bundle():
    with np.load(BUNDLE, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def load_ucr(name):
    """A shipped UCR problem (`UCR` key): `(x_train, y_train), (x_test,
    y_test), class_names` as `ts_arrays` returns them."""
    if name not in UCR:
        raise UsageError(f"unknown UCR dataset {name!r}; valid choices: "
                         f"{', '.join(UCR)}")
    data = _bundle()
    key = UCR[name]
    return ((data[f"{key}_train_x"].copy(), data[f"{key}_train_y"].copy()),
            (data[f"{key}_test_x"].copy(), data[f"{key}_test_y"].copy()),
            tuple(str(c) for c in data[f"{key}_classes"]))


def write_ucr_bundle(folder, path=BUNDLE):
    """Rebuild `ucr.npz` from a folder holding `<Problem>/<Problem>_TRAIN.ts`
    and `_TEST.ts` for each problem of `UCR` (sktime's
    `sktime/datasets/data/`)."""
    arrays = {}
    for key in UCR.values():
        train, test, names = ts_arrays(
            read_ts(os.path.join(folder, key, f"{key}_TRAIN.ts")),
            read_ts(os.path.join(folder, key, f"{key}_TEST.ts")))
        arrays.update({f"{key}_train_x": train[0], f"{key}_train_y": train[1],
                       f"{key}_test_x": test[0], f"{key}_test_y": test[1],
                       f"{key}_classes": np.array(names)})
    np.savez_compressed(path, **arrays)


def nearest_neighbour_accuracy(train, test, chunk=256):
    """Test accuracy of the 1-nearest-neighbour classifier with the
    Euclidean distance over whole series (the archive's reference
    baseline), NumPy only. Ties go to the first training example."""
    x_train = np.asarray(train[0], "float64").reshape(len(train[0]), -1)
    x_test = np.asarray(test[0], "float64").reshape(len(test[0]), -1)
    y_train, y_test = np.asarray(train[1]), np.asarray(test[1])
    norms = np.sum(x_train ** 2, axis=1)
    correct = 0
    for start in range(0, len(x_test), chunk):
        block = x_test[start:start + chunk]
        distances = norms[None, :] - 2 * block @ x_train.T  # + |b|^2, const
        nearest = np.argmin(distances, axis=1)
        correct += int(np.sum(y_train[nearest] == y_test[start:start +
                                                         chunk]))
    return correct / len(x_test)


SOURCES = tuple(UCR) + ("ts:TRAIN.ts,TEST.ts",)  # what `ts_data` takes


def is_ts_dataset(dataset):
    """Whether `--dataset` names time series `ts_data` loads."""
    return dataset in UCR or str(dataset).startswith("ts:")


def ts_paths(dataset):
    """The two files of `ts:TRAIN.ts,TEST.ts` (UsageError otherwise)."""
    paths = [p.strip() for p in dataset[len("ts:"):].split(",")]
    if len(paths) != 2 or not all(paths):
        raise UsageError("--dataset ts: takes two files, the training and "
                         "the test split: ts:TRAIN.ts,TEST.ts. Received: "
                         f"dataset={dataset}")
    return paths


def ts_data(dataset, val_fraction=0.1, pad=False, impute=False):
    """A `Data` of a shipped UCR problem (`UCR`) or of `ts:TRAIN,TEST`: the
    archive's test split tests; a stratified `val_fraction` of its
    training split (seed 0) validates. Values as the files hold them (the
    UCR problems are z-normalized per series): `scale` 1."""
    from dlrecipes.data.description import Data
    from dlrecipes.data.embedded import split_arrays

    if dataset in UCR:
        train, test, names = load_ucr(dataset)
        source = UCR[dataset]
    else:
        train_path, test_path = ts_paths(dataset)
        train, test, names = ts_arrays(read_ts(train_path),
                                       read_ts(test_path), pad=pad,
                                       impute=impute)
        source = dataset
    val = None
    if val_fraction:
        counts = np.bincount(train[1])
        if counts.min() < 2:
            raise UsageError(
                "--val-fraction needs two training series of every class "
                f"(class {names[int(np.argmin(counts))]} has "
                f"{counts.min()}); pass --val-fraction 0")
        x_tr, x_va, y_tr, y_va = split_arrays(
            train[0], train[1],
            test_size=max(val_fraction, len(names) / len(train[1])), seed=0)
        train, val = (x_tr, y_tr), (x_va, y_va)
    return Data(train, val, test, input_shape=train[0].shape[1:],
                num_classes=len(names), class_names=names, scale=1.0,
                source=source)
