"""What classification recipes add to a run's results: the test arrays,
the confusion matrix (`confusion.png`) and the count of test errors."""

import os

import numpy as np

from dlrecipes.training import plots


def test_arrays(data, limit=10_000):
    """The test split as `(x, y)` arrays (at most about `limit` examples
    of a batched dataset)."""
    if isinstance(data.test, tuple):
        return data.test
    xs, ys = [], []
    for xb, yb in data.test:
        xs.append(np.asarray(xb))
        ys.append(np.asarray(yb))
        if sum(len(y) for y in ys) >= limit:
            break
    return np.concatenate(xs), np.concatenate(ys)


def confusion(model, data, run_dir):
    """Predicts the test split, writes `confusion.png`; returns
    `(x, y, predicted, {"test_errors": n})`."""
    x, y = test_arrays(data)
    y = np.asarray(y).astype(int)
    pred = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1)
    n = data.num_classes
    cm = np.zeros((n, n), dtype=int)
    np.add.at(cm, (y, pred), 1)
    plots.confusion_matrix(cm, data.class_names,
                           os.path.join(run_dir, "confusion.png"))
    return x, y, pred, {"test_errors": int(np.sum(pred != y))}
