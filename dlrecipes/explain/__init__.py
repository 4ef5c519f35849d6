"""See what a trained classifier learned: `dlrecipes explain RUN_DIR` on a
finished run, or these functions on your own Keras model (NumPy in, NumPy
out; TensorFlow, JAX and PyTorch backends).

    from dlrecipes.explain import saliency, deletion_check
    maps = saliency(model, x_test[:100], y_test[:100])
    deletion_check(model, x_test[:100], y_test[:100], maps)["ratio"]

The functions live in `dlrecipes.explain.methods` and load Keras on first
use, so that `dlrecipes explain` checks its arguments before Keras starts.
"""

__all__ = ["chain_layers", "deletion_check", "feature_maps", "gradient_function",
           "first_conv_kernels", "gradcam", "input_gradient", "knn_accuracy",
           "maximize", "occlusion", "outputs_logits", "penultimate_features",
           "predict_proba", "rank_correlation", "reinitialized", "saliency",
           "sanity_check", "spatial_layers", "tsne_map"]


def __getattr__(name):
    if name in __all__:
        from dlrecipes.explain import methods

        return getattr(methods, name)
    raise AttributeError(f"module 'dlrecipes.explain' has no attribute "
                         f"{name!r}")
