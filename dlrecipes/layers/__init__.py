"""Reusable Keras 3 layers: `keras.ops` only, registered for serialization."""

# Each module registers its classes with keras.saving on import.
