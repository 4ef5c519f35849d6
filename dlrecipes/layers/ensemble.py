"""EnsembleCombine: the prediction of an ensemble from its members'."""

import keras
from keras import ops

COMBINES = ("mean", "vote", "geometric")


@keras.saving.register_keras_serializable(package="dlrecipes")
class EnsembleCombine(keras.layers.Layer):
    """Combines the predictions of several models into one.

    - `"mean"`: the average of the members' outputs (class probabilities
      or any values, e.g. forecasts): the prediction average of the notes.
    - `"geometric"`: the normalised geometric mean of class probabilities,
      `softmax(mean(log p))` (members' probabilities clipped at 1e-7).
    - `"vote"`: majority vote: the share of members whose most probable
      class is each class; a tie goes to the class with the higher mean
      probability (the shares are mixed with 1e-3 of the mean, so the
      output still sums to 1 and its arg-max is the vote's winner).

    Args:
        combine: one of `"mean"`, `"vote"`, `"geometric"`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: a list of the members' outputs (tensors of one shape), or
            one tensor whose axis 1 holds the members.

    Input shape:
        `[(batch, ...)] * members` or `(batch, members, ...)`; `"vote"`
        and `"geometric"` take class probabilities on the last axis.

    Output shape:
        `(batch, ...)`.

    Example:

    >>> a = keras.ops.convert_to_tensor([[0.9, 0.1], [0.2, 0.8]])
    >>> b = keras.ops.convert_to_tensor([[0.5, 0.5], [0.4, 0.6]])
    >>> keras.ops.convert_to_numpy(EnsembleCombine("mean")([a, b])).round(2)
    array([[0.7, 0.3],
           [0.3, 0.7]], dtype=float32)

    References:
        - [Hansen & Salamon, 1990. Neural network ensembles](
          https://doi.org/10.1109/34.58871)
        - [Lakshminarayanan et al., 2017. Simple and scalable predictive
          uncertainty estimation using deep ensembles](
          https://arxiv.org/abs/1612.01474)
    """

    def __init__(self, combine="mean", **kwargs):
        super().__init__(**kwargs)
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {', '.join(COMBINES)}."
                             f" Received: combine={combine!r}")
        self.combine = combine
        self.supports_masking = False

    def _stacked(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return ops.stack(list(inputs), axis=1)
        return inputs

    def call(self, inputs):
        x = self._stacked(inputs)
        mean = ops.mean(x, axis=1)
        if self.combine == "mean":
            return mean
        if self.combine == "geometric":
            logs = ops.log(ops.clip(x, 1e-7, 1.0))
            return ops.softmax(ops.mean(logs, axis=1), axis=-1)
        classes = x.shape[-1]
        votes = ops.one_hot(ops.argmax(x, axis=-1), classes, dtype=x.dtype)
        shares = ops.mean(votes, axis=1)
        return (shares + 1e-3 * mean) / (1.0 + 1e-3)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and \
                isinstance(input_shape[0], (list, tuple)):
            return tuple(input_shape[0])
        return (input_shape[0],) + tuple(input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "combine": self.combine}
