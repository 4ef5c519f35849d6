"""`--mc-dropout N`: Monte Carlo dropout at test time (Gal & Ghahramani
2016) for a finished classifier.

`mc_dropout_model` copies the model with every `keras.layers.Dropout` of
non-zero rate replaced by `dlrecipes.layers.MCDropout` (dropout that stays
on at inference; batch norm keeps its moving statistics, augmentation
stays off); `mc_dropout_figures` runs N stochastic passes over the test
split and reports the predictive mean's accuracy, its entropy (mean, on
correct and on misclassified examples) and the mutual information between
prediction and weights (the part of the entropy the passes disagree on),
and draws the most uncertain test images (`uncertain.png`).
"""

import os

import numpy as np

from dlrecipes.lazy import import_keras
from dlrecipes.training import plots

keras = import_keras()


def mc_dropout_model(model, seed=None):
    """`(copy, rates)`: a copy of functional or sequential `model` sharing
    its layers (and so its weights), whose top-level `Dropout` layers with
    a non-zero rate are replaced by ones that drop at inference too; `rates` lists their rates
    (empty: the model has no dropout to sample, and the copy is the model
    itself)."""
    from dlrecipes.layers import MCDropout

    rates = []

    def clone(layer):
        if isinstance(layer, keras.layers.Dropout) and not isinstance(
                layer, MCDropout) and layer.rate > 0:
            rates.append(float(layer.rate))
            return MCDropout(layer.rate, noise_shape=layer.noise_shape,
                             seed=None if seed is None else seed + len(rates),
                             name=layer.name)
        # Shared, not copied: the same weights, and what a config does
        # not hold (a TextVectorization's vocabulary) comes along.
        return layer

    copy = keras.models.clone_model(model, clone_function=clone)
    return (copy, rates) if rates else (model, rates)


def entropy(probs, axis=-1):
    """Shannon entropy in nats of probability vectors along `axis`."""
    p = np.clip(np.asarray(probs, dtype="float64"), 1e-12, 1.0)
    return -np.sum(p * np.log(p), axis=axis)


def mc_dropout_figures(model, data, passes, run_dir=None, seed=None,
                       batch_size=256, show=36):
    """`passes` stochastic predictions of the test split through
    `mc_dropout_model(model)`; returns the `metrics.json` entries and,
    for image inputs with a `run_dir`, writes `uncertain.png` (the `show`
    test images of highest predictive entropy, titled true / predicted /
    entropy).

    Raises:
        ValueError: the model has no dropout layer to sample.
    """
    sampler, rates = mc_dropout_model(model, seed)
    if not rates:
        raise ValueError("the model has no Dropout layer with a non-zero "
                         "rate: Monte Carlo dropout has nothing to sample")
    if isinstance(data.test, tuple):
        x, y = data.test
        source = dict(x=x, batch_size=batch_size)
    else:  # a batched dataset (tfds, text): its own batches, in order
        x = None
        y = np.concatenate([np.asarray(batch[1]) for batch in data.test])
        source = dict(x=data.test)
    y = np.asarray(y).astype(int)
    samples = np.stack([
        np.asarray(sampler.predict(**source, verbose=0), dtype="float64")
        for _ in range(passes)])  # (T, n, k)
    mean = samples.mean(axis=0)
    pred = mean.argmax(axis=-1)
    total = entropy(mean)
    expected = entropy(samples).mean(axis=0)
    correct = pred == y
    metrics = {
        "mc_dropout_passes": int(passes),
        "mc_dropout_rates": rates,
        "mc_dropout_test_accuracy": float(correct.mean()),
        "mc_dropout_mean_entropy": float(total.mean()),
        "mc_dropout_entropy_correct": (float(total[correct].mean())
                                       if correct.any() else None),
        "mc_dropout_entropy_misclassified": (
            float(total[~correct].mean()) if (~correct).any() else None),
        "mc_dropout_mutual_information": float((total - expected).mean()),
    }
    if x is not None:
        x = np.asarray(x)
    if run_dir is not None and x is not None and x.ndim == 4:
        order = np.argsort(-total)[:show]
        titles = [f"true: {data.class_names[y[i]]}\n"
                  f"pred: {data.class_names[pred[i]]} H={total[i]:.2f}"
                  for i in order]
        plots.image_grid(x[order], titles,
                         os.path.join(run_dir, "uncertain.png"))
    return metrics
