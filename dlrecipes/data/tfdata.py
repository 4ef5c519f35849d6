"""The batching pipeline of the loaders that stream `tf.data` (text,
sequential MNIST). TensorFlow is imported inside: importing this module
costs nothing."""


def batched(dataset, batch_size, seed, training):
    """`dataset` cached, shuffled when `training` (a 10,000-example buffer
    and `seed`), batched and prefetched; None stays None (no validation
    split)."""
    import tensorflow as tf

    if dataset is None:
        return None
    dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(10_000, seed=seed)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
