"""Spec -> Keras model. Keras is imported inside the functions, never at module import."""

from __future__ import annotations

import re

from .spec import INPUT_CHANNELS, INPUT_SIZE, Architecture


def keras_layers(arch: Architecture, bn_momentum: float = 0.99) -> list:
    """The Keras layers of `arch`, top to bottom, as the notebook's Sequential lists them."""
    from keras import layers

    stack: list = [layers.Input((INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS))]
    for index, layer in enumerate(arch.layers, 1):
        stack += layer.keras_layers(index, bn_momentum)
    return stack


def build_model(arch: Architecture, bn_momentum: float = 0.99):
    """A `keras.Sequential` with exactly the layers, shapes and parameter counts of `arch`.

    `bn_momentum` only sets how fast BatchNorm's moving statistics follow the data (Keras' default
    0.99 is the notebook's); it changes no parameter count. The model keeps `arch` as `spec_json`.
    """
    import keras

    model = keras.Sequential(keras_layers(arch, bn_momentum), name=keras_name(arch.name))
    model.spec_json = arch.to_json()  # saved in the weights file beside the model (`runner.save_model`)
    return model


def keras_name(name: str) -> str:
    """A Keras model name for any spec name: 'net_' and the name's ASCII letters, digits and dashes.

    TensorFlow opens a name scope under the model's name when it trains, and refuses one that does not
    start with an ASCII letter or digit ('Сеть Ивана' would be '__________'); the fixed prefix always does.
    """
    return f"net_{re.sub(r'[^A-Za-z0-9-]+', '_', name).strip('_')}".rstrip("_")
