"""Model builders the recipes share (importing this package imports no
Keras; its modules load Keras through `dlrecipes.lazy` when they build).

- `dlrecipes.models.sequence`: sequence encoders (MLP, LSTM, GRU, BiLSTM,
  1D CNN, TCN, Transformer) from `(batch, time, channels)` to
  `(batch, features)`, and TCN sizing (`auto_dilations`,
  `tcn_receptive_field`).
- `dlrecipes.models.gan`: `GAN`, a generator and a discriminator trained
  by `fit` under TensorFlow, JAX and PyTorch, and `GANOptimizer` (imports
  Keras: import it when you build one).
"""
