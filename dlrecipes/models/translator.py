"""`GreedyTranslator`: greedy decoding around a teacher-forced
encoder-decoder (`dlrecipes.models.seq2seq`), saved and loaded like any
model; `translate(strings)` answers raw queries on every backend."""

import keras


@keras.saving.register_keras_serializable(package="dlrecipes")
class GreedyTranslator(keras.Model):
    """Greedy decoding around a teacher-forced encoder-decoder.

    `translator(source_ids)` returns `(batch, target_length)` ids: step `t`
    runs the encoder-decoder on the decoder inputs so far (the start token,
    then the predictions of steps `< t`) and keeps the most probable
    character at position `t`. The decoder is causal, so later, still
    unknown, inputs cannot change step `t`. `translate(strings)` takes raw
    queries ("535+61") and returns raw answers; the source is reversed
    inside when the model was trained on reversed sources.

    Args:
        seq2seq: the trained `[source, decoder_input] -> probabilities`
            model.
        characters: the vocabulary, a string indexed by id (id 0 pads).
        start_id: the id of the start token.
        reverse: the model reads sources backwards.
    """

    def __init__(self, seq2seq, characters, start_id, reverse=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.seq2seq = seq2seq
        self.characters = str(characters)
        self.start_id = int(start_id)
        self.reverse = bool(reverse)
        source_shape, target_shape = (tuple(t.shape)
                                      for t in seq2seq.inputs)
        self.source_length = source_shape[1]
        self.target_length = target_shape[1]

    def build(self, input_shape=None):
        self.built = True

    def call(self, source):
        ops = keras.ops
        source = ops.cast(source, "int32")
        if self.reverse:
            source = ops.flip(source, axis=1)
        batch = ops.shape(source)[0]
        length = self.target_length
        tokens = ops.full((batch, length), self.start_id, "int32")
        positions = ops.arange(length)[None, :]
        outputs = []
        for step in range(length):
            probabilities = self.seq2seq([source, tokens], training=False)
            next_id = ops.cast(ops.argmax(probabilities[:, step], axis=-1),
                               "int32")
            outputs.append(next_id)
            if step + 1 < length:
                tokens = ops.where(positions == step + 1, next_id[:, None],
                                   tokens)
        return ops.stack(outputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.target_length)

    def encode(self, strings):
        """Raw queries -> `(n, source_length)` ids, right-padded (not yet
        reversed); `ValueError` for a query too long or with a character
        outside the vocabulary."""
        from dlrecipes.data.seq2seq import encode

        return encode(list(strings), self.source_length, self.characters,
                      self.start_id)

    def decode(self, ids):
        """`(n, target_length)` ids -> strings, trailing padding removed."""
        from dlrecipes.data.seq2seq import decode

        return decode(ids, self.characters)

    def translate(self, strings, batch_size=256):
        """Raw queries -> answers: `translate(["535+61"]) == ["596"]`."""
        ids = self.predict(self.encode(list(strings)),
                           batch_size=batch_size, verbose=0)
        return self.decode(ids)

    def get_config(self):
        return {
            "name": self.name,
            "seq2seq": keras.saving.serialize_keras_object(self.seq2seq),
            "characters": self.characters,
            "start_id": self.start_id,
            "reverse": self.reverse,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["seq2seq"] = keras.saving.deserialize_keras_object(
            config["seq2seq"], custom_objects=custom_objects)
        return cls(**config)
