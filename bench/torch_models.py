"""PyTorch twins of the throughput benchmark's Keras models.

Each twin has the same layers, shapes and parameter count as its Keras
model (checked by `bench.throughput` before timing), so that the two
frameworks do the same arithmetic:

- `RecipeResNet`: the image recipe's ResNet (`ConvNormAct` stem, basic
  post-activation `ResidualBlock`s, global pooling, dropout, dense);
- `KerasResNet50`: `keras.applications.ResNet50` (ResNet v1: the stride
  on the first 1x1 conv of a block, biased convolutions, BN epsilon
  1.001e-5), which differs from torchvision's v1.5 `resnet50`;
- `EncoderStack`: `dlrecipes.layers.TransformerEncoder` blocks (fused QKV,
  post-norm, GELU feed-forward), mean-pooled, dense head;
- `TCNForecaster`: the forecasting recipe's `TCN` (causal dilated conv
  pairs with layer norm, residuals, summed skip connections, last step)
  and a dense head.

Keras' "same" padding of a strided convolution pads more on the bottom and
right, PyTorch's symmetric padding does not: the outputs' shapes and the
arithmetic are the same, the pixels used at the border differ by one.

Importing this module needs `torch`; `bench.throughput` checks first.
"""

import torch.nn.functional as F
from torch import nn

# Keras' BatchNormalization: momentum 0.99 (PyTorch counts 1 - momentum).
_BN_MOMENTUM = 0.01


def _bn(channels, eps=1e-3):
    return nn.BatchNorm2d(channels, eps=eps, momentum=_BN_MOMENTUM)


class _BasicBlock(nn.Module):
    """`ResidualBlock(filters, strides)`: conv-bn-relu-conv-bn, add, relu."""

    def __init__(self, cin, filters, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, filters, 3, stride, 1, bias=False)
        self.bn1 = _bn(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1, bias=False)
        self.bn2 = _bn(filters)
        self.shortcut = None
        if stride != 1 or cin != filters:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, filters, 1, stride, bias=False), _bn(filters))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class RecipeResNet(nn.Module):
    """The image recipe's `--model resnet` (augmentation off)."""

    def __init__(self, in_channels, num_classes, width, stages, depth,
                 dropout=0.2, scale=1.0):
        super().__init__()
        self.scale = scale
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), _bn(width),
            nn.ReLU())
        blocks, cin = [], width
        for stage in range(stages):
            filters = width * 2 ** stage
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_BasicBlock(cin, filters, stride))
                cin = filters
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):  # (batch, channels, height, width)
        x = self.blocks(self.stem(x * self.scale))
        return self.head(self.dropout(x.mean(dim=(2, 3))))


class _Bottleneck(nn.Module):
    """keras.applications ResNet v1 `block1`."""

    def __init__(self, cin, filters, stride, conv_shortcut):
        super().__init__()
        out = 4 * filters
        self.shortcut = None
        if conv_shortcut:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, out, 1, stride), _bn(out, 1.001e-5))
        self.body = nn.Sequential(
            nn.Conv2d(cin, filters, 1, stride), _bn(filters, 1.001e-5),
            nn.ReLU(),
            nn.Conv2d(filters, filters, 3, 1, 1), _bn(filters, 1.001e-5),
            nn.ReLU(),
            nn.Conv2d(filters, out, 1), _bn(out, 1.001e-5))

    def forward(self, x):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.body(x) + shortcut)


class KerasResNet50(nn.Module):
    """`keras.applications.ResNet50(weights=None)`'s architecture."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3), _bn(64, 1.001e-5), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for filters, blocks, stride in ((64, 3, 1), (128, 4, 2),
                                        (256, 6, 2), (512, 3, 2)):
            layers.append(_Bottleneck(cin, filters, stride, True))
            cin = 4 * filters
            layers += [_Bottleneck(cin, filters, 1, False)
                       for _ in range(blocks - 1)]
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


class _EncoderBlock(nn.Module):
    """`TransformerEncoder(num_heads, intermediate_dim, dropout)`, post-norm."""

    def __init__(self, hidden, num_heads, intermediate, dropout):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=1e-5)
        self.ffn1 = nn.Linear(hidden, intermediate)
        self.ffn2 = nn.Linear(intermediate, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-5)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):  # (batch, seq, hidden)
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.num_heads, d // self.num_heads)
        # (batch, heads, seq, head_dim) each
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.out(y.transpose(1, 2).reshape(b, t, d))
        x = self.norm1(x + self.dropout(y))
        y = self.ffn2(F.gelu(self.ffn1(x)))
        return self.norm2(x + self.dropout(y))


class EncoderStack(nn.Module):
    def __init__(self, hidden, num_heads, intermediate, num_layers,
                 num_classes, dropout=0.1):
        super().__init__()
        self.blocks = nn.Sequential(*[
            _EncoderBlock(hidden, num_heads, intermediate, dropout)
            for _ in range(num_layers)])
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.blocks(x).mean(dim=1))


class _TemporalBlock(nn.Module):
    """`TemporalBlock` with `norm="layer"`: two causal dilated convs."""

    def __init__(self, cin, filters, kernel_size, dilation, dropout):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv1 = nn.Conv1d(cin, filters, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(filters, filters, kernel_size,
                               dilation=dilation)
        self.norm1 = nn.LayerNorm(filters, eps=1e-3)
        self.norm2 = nn.LayerNorm(filters, eps=1e-3)
        self.dropout = nn.Dropout1d(dropout)
        self.shortcut = nn.Conv1d(cin, filters, 1) if cin != filters else None

    def _step(self, x, conv, norm):  # (batch, channels, time)
        x = conv(F.pad(x, (self.pad, 0)))
        x = norm(x.transpose(1, 2)).transpose(1, 2)
        return self.dropout(F.relu(x))

    def forward(self, x):
        y = self._step(self._step(x, self.conv1, self.norm1), self.conv2,
                       self.norm2)
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class TCNForecaster(nn.Module):
    """The forecasting recipe's TCN (skip connections, last step) + dense."""

    def __init__(self, in_channels, filters, kernel_size, dilations,
                 horizon, dropout=0.0):
        super().__init__()
        blocks, cin = [], in_channels
        for d in dilations:
            blocks.append(_TemporalBlock(cin, filters, kernel_size, d,
                                         dropout))
            cin = filters
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(filters, horizon)

    def forward(self, x):  # (batch, time, channels)
        x = x.transpose(1, 2)
        skips = 0
        for block in self.blocks:
            x = block(x)
            skips = skips + x
        return self.head(F.relu(skips)[:, :, -1])


def count_params(module):
    """Parameters plus batch-norm moving statistics, as Keras counts them."""
    stats = sum(b.numel() for name, b in module.named_buffers()
                if name.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in module.parameters()) + stats
