"""The networks of the ApproxTrain paper, built from approxsim layers.

Every convolution and dense layer is an approxsim layer (its products come from the
multiplier); batch normalisation, pooling, activations and additions stay exact. Each
builder takes ``input_shape``, ``num_classes``, ``multiplier``, ``backward`` and
``backend``, so the same names serve other datasets. Outputs are class probabilities
(a final exact softmax).

- ``lenet300100``: flatten, dense 300 + ReLU, dense 100 + ReLU, dense ``num_classes``.
- ``lenet5``: conv 6@5x5 (SAME) + ReLU, max-pool 2, conv 16@5x5 + ReLU, max-pool 2, dense 120,
  84, ``num_classes``. The second convolution is VALID as in LeNet-5 when its input is at least
  10 pixels wide (28x28 MNIST: 28-14-10-5), SAME on smaller inputs (8x8 digits).
- ``resnet20``: the CIFAR ResNet of He et al. (2016), 3 stages of 3 basic blocks with 16/32/64
  filters; shortcuts that change shape are 1x1 convolutions + BN (option B).
- ``resnet18``: the usual CIFAR variant: a 3x3 stem, no max-pool, 4 stages of 2 basic blocks
  with 64/128/256/512 filters, 1x1 projection shortcuts.
- ``resnet50``: the ImageNet ResNet-50 (v1.5: stride on the 3x3 convolution of a bottleneck).
- ``smallcnn``: conv 16@3x3, max-pool, conv 32@3x3, max-pool, dense ``num_classes``: the demo's network.

References:
  Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-Based Learning Applied to Document
  Recognition", Proc. IEEE 86(11), 1998.
  K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
  J. Gong et al., "ApproxTrain: Fast Simulation of Approximate Multipliers for DNN Training and
  Inference", IEEE TCAD 42(11), 2023.
"""

from __future__ import annotations

__all__ = ["MODELS", "build_model"]

BN = {"momentum": 0.9, "epsilon": 1e-5}


class _Builder:
    """Creates approxsim layers that all share one multiplier, backward mode and backend."""

    def __init__(self, multiplier, backward, backend):
        import keras

        from approxsim import layers

        self.keras = keras
        self.layers = layers
        self.am = {"multiplier": multiplier, "backward": backward, "backend": backend}
        self._count = {}

    def _name(self, kind):
        self._count[kind] = self._count.get(kind, 0) + 1
        return f"{kind}_{self._count[kind]}"

    def dense(self, units, activation=None):
        return self.layers.AMDense(units, activation=activation, name=self._name("dense"), **self.am)

    def conv(self, filters, size, strides=1, padding="same", activation=None, use_bias=True):
        return self.layers.AMConv2D(filters, size, strides=strides, padding=padding, activation=activation,
                                    use_bias=use_bias, kernel_initializer="he_normal", name=self._name("conv"),
                                    **self.am)

    def conv_bn(self, x, filters, size, strides=1, relu=True):
        x = self.conv(filters, size, strides=strides, use_bias=False)(x)
        x = self.keras.layers.BatchNormalization(**BN, name=self._name("bn"))(x)
        return self.keras.layers.ReLU(name=self._name("relu"))(x) if relu else x

    def relu(self, x):
        return self.keras.layers.ReLU(name=self._name("relu"))(x)

    def head(self, x, num_classes):
        x = self.dense(num_classes)(x)
        return self.keras.layers.Softmax(name="softmax")(x)

    def model(self, inputs, outputs, name):
        return self.keras.Model(inputs, outputs, name=name)


def lenet300100(input_shape, num_classes, *, multiplier="fp32", backward="approx", backend=None):
    """LeNet-300-100: ``784-300-100-10`` for MNIST."""
    b = _Builder(multiplier, backward, backend)
    inputs = b.keras.Input(input_shape)
    x = b.keras.layers.Flatten()(inputs)
    x = b.dense(300, "relu")(x)
    x = b.dense(100, "relu")(x)
    return b.model(inputs, b.head(x, num_classes), "lenet300100")


def lenet5(input_shape, num_classes, *, multiplier="fp32", backward="approx", backend=None):
    """LeNet-5 with ReLU and max-pooling (see the module docstring for the padding)."""
    b = _Builder(multiplier, backward, backend)
    inputs = b.keras.Input(input_shape)
    x = b.conv(6, 5, activation="relu")(inputs)
    x = b.keras.layers.MaxPooling2D(2)(x)
    second = "valid" if min(input_shape[0], input_shape[1]) // 2 >= 10 else "same"
    x = b.conv(16, 5, padding=second, activation="relu")(x)
    x = b.keras.layers.MaxPooling2D(2)(x)
    x = b.keras.layers.Flatten()(x)
    x = b.dense(120, "relu")(x)
    x = b.dense(84, "relu")(x)
    return b.model(inputs, b.head(x, num_classes), "lenet5")


def smallcnn(input_shape, num_classes, *, multiplier="fp32", backward="approx", backend=None):
    """A small CNN for quick runs (the demo): two 3x3 convolutions and a dense layer."""
    b = _Builder(multiplier, backward, backend)
    inputs = b.keras.Input(input_shape)
    x = b.conv(16, 3, activation="relu")(inputs)
    x = b.keras.layers.MaxPooling2D(2)(x)
    x = b.conv(32, 3, activation="relu")(x)
    x = b.keras.layers.MaxPooling2D(2)(x)
    x = b.keras.layers.Flatten()(x)
    return b.model(inputs, b.head(x, num_classes), "smallcnn")


def _basic_block(b, x, filters, strides):
    shortcut = x
    y = b.conv_bn(x, filters, 3, strides)
    y = b.conv_bn(y, filters, 3, 1, relu=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = b.conv_bn(x, filters, 1, strides, relu=False)
    return b.relu(b.keras.layers.Add()([y, shortcut]))


def _bottleneck(b, x, filters, strides):
    shortcut = x
    y = b.conv_bn(x, filters, 1)
    y = b.conv_bn(y, filters, 3, strides)
    y = b.conv_bn(y, 4 * filters, 1, relu=False)
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = b.conv_bn(x, 4 * filters, 1, strides, relu=False)
    return b.relu(b.keras.layers.Add()([y, shortcut]))


def _resnet(b, x, block, stages, num_classes, name, inputs):
    for i, (filters, blocks) in enumerate(stages):
        for j in range(blocks):
            x = block(b, x, filters, 2 if (i > 0 and j == 0) else 1)
    x = b.keras.layers.GlobalAveragePooling2D()(x)
    return b.model(inputs, b.head(x, num_classes), name)


def resnet20(input_shape, num_classes, *, multiplier="fp32", backward="approx", backend=None):
    """ResNet-20 for CIFAR-10 (3 x 3 basic blocks, 16/32/64 filters)."""
    b = _Builder(multiplier, backward, backend)
    inputs = b.keras.Input(input_shape)
    x = b.conv_bn(inputs, 16, 3)
    return _resnet(b, x, _basic_block, [(16, 3), (32, 3), (64, 3)], num_classes, "resnet20", inputs)


def resnet18(input_shape, num_classes, *, multiplier="fp32", backward="approx", backend=None):
    """ResNet-18, CIFAR variant (3x3 stem, no max-pool, 4 x 2 basic blocks, 64..512 filters)."""
    b = _Builder(multiplier, backward, backend)
    inputs = b.keras.Input(input_shape)
    x = b.conv_bn(inputs, 64, 3)
    return _resnet(b, x, _basic_block, [(64, 2), (128, 2), (256, 2), (512, 2)], num_classes, "resnet18",
                   inputs)


def resnet50(input_shape, num_classes, *, multiplier="fp32", backward="approx", backend=None):
    """ResNet-50 for ImageNet (7x7/2 stem, 3x3/2 max-pool, bottlenecks 3-4-6-3, v1.5)."""
    b = _Builder(multiplier, backward, backend)
    inputs = b.keras.Input(input_shape)
    x = b.conv_bn(inputs, 64, 7, 2)
    x = b.keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    return _resnet(b, x, _bottleneck, [(64, 3), (128, 4), (256, 6), (512, 3)], num_classes, "resnet50", inputs)


MODELS = {"lenet300100": lenet300100, "lenet5": lenet5, "resnet20": resnet20, "resnet18": resnet18,
          "resnet50": resnet50, "smallcnn": smallcnn}


def build_model(name: str, input_shape, num_classes: int, *, multiplier="fp32", backward: str = "approx",
                backend=None):
    """Builds a model of :data:`MODELS` by name.

    Args:
      name: model name (case-insensitive).
      input_shape: shape of one example, e.g. ``(28, 28, 1)``.
      num_classes: size of the softmax output.
      multiplier: multiplier name (any of ``approxsim.multipliers.available()``) or object.
      backward: ``"approx"`` or ``"exact"`` (see the layers).
      backend: backend name or ``None`` (the default choice).

    Returns:
      An unbuilt-optimizer ``keras.Model`` whose output is class probabilities.

    Raises:
      ValueError: unknown model name or bad arguments.
    """
    key = str(name).lower()
    if key not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Choose one of: {', '.join(MODELS)}. Received: model={name!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
    return MODELS[key](tuple(input_shape), num_classes, multiplier=multiplier, backward=backward, backend=backend)
