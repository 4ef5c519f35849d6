"""`AuxiliaryClassifierModel`: a classifier trained with auxiliary
classifiers on intermediate features (GoogLeNet's deep supervision,
Szegedy et al. 2014), under TensorFlow, JAX and PyTorch.

A functional model whose outputs are `[main, auxiliary_1, ...]` (each a
softmax over the same classes). In training the loss is the compiled loss
of the main output plus `aux_weight` times the sparse cross-entropy of
each auxiliary output (GoogLeNet: 0.3); metrics read the main output. Out
of training (`predict`, `evaluate`, a call with `training=False`) the
model returns the main output alone, so it evaluates, predicts and saves
like any classifier; `main_model()` is the plain functional classifier
without the auxiliary heads (what a recipe reports on and explains).

Example:

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    aux = keras.layers.Dense(10, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(x))
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    main = keras.layers.Dense(10, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(x))
    model = AuxiliaryClassifierModel(inputs, [main, aux], aux_weight=0.3)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
"""

import keras


@keras.saving.register_keras_serializable(package="dlrecipes")
class AuxiliaryClassifierModel(keras.Model):
    """A functional classifier with auxiliary classifier outputs.

    Args (as `keras.Model(inputs, outputs, ...)`'s, and):
        inputs: the functional model's inputs.
        outputs: `[main, auxiliary_1, ...]` class probabilities, all of
            the same shape.
        aux_weight: weight of each auxiliary output's cross-entropy in the
            training loss.
        **kwargs: `keras.Model` arguments (`name`, ...).
    """

    # `*args, **kwargs`: Keras serializes a functional subclass whose
    # constructor takes the functional arguments this way as a functional
    # model (the graph in `config.json`).
    def __init__(self, *args, **kwargs):
        aux_weight = kwargs.pop("aux_weight", 0.3)
        super().__init__(*args, **kwargs)
        if not isinstance(self.outputs, (list, tuple)) or \
                len(self.outputs) < 2:
            raise ValueError("an AuxiliaryClassifierModel needs the main "
                             "output and at least one auxiliary output. "
                             f"Received: {len(self.outputs)} output(s)")
        self.aux_weight = float(aux_weight)
        if self.aux_weight < 0:
            raise ValueError("`aux_weight` must be >= 0. Received: "
                             f"aux_weight={aux_weight}")

    def call(self, inputs, training=None, mask=None, **kwargs):
        outputs = super().call(inputs, training=training, mask=mask,
                               **kwargs)
        return outputs if training else outputs[0]

    def compute_output_spec(self, inputs, training=None, mask=None):
        outputs = super().compute_output_spec(inputs, training=training,
                                              mask=mask)
        return outputs if training else outputs[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        auxiliary = []
        if isinstance(y_pred, (list, tuple)):
            y_pred, *auxiliary = y_pred
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred,
                                    sample_weight=sample_weight,
                                    training=training)
        for output in auxiliary:
            aux_loss = keras.losses.sparse_categorical_crossentropy(
                y, keras.ops.cast(output, "float32"))
            loss = loss + self.aux_weight * keras.ops.mean(aux_loss)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (list, tuple)):
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred,
                                       sample_weight=sample_weight)

    def main_model(self):
        """The classifier alone: a functional model from the inputs to the
        main output (sharing this model's layers and weights)."""
        return keras.Model(self.inputs, self.outputs[0], name=self.name)

    def get_config(self):
        config = super().get_config()
        config["aux_weight"] = self.aux_weight
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        aux_weight = config.pop("aux_weight", 0.3)
        model = super().from_config(config, custom_objects=custom_objects)
        model.aux_weight = float(aux_weight)
        return model
