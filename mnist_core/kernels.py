"""Faster training steps for Keras' BatchNormalization and Dropout on TensorFlow, for the length of a training.

Keras 3 trains BatchNorm with separate moment, update and normalisation ops, and Dropout with a float mask
drawn 32 random bits an element; on this project's 2-core CPU the two took about half of seed-final's
training step, the convolutions the other half (`bench.throughput`). TensorFlow's fused BatchNorm kernel does
BatchNorm's maths in one pass, and a Dropout mask read from 16 random bits an element halves the random
numbers drawn. The layers stay Keras' own classes with their own weights: saved models, exports and every
inference path are unchanged; only what `call` does while training differs.
"""

from __future__ import annotations

import types

MASK_LEVELS = 2**16  # a Dropout mask element is one 16-bit random number: its rate is within 1/65,536 of the layer's


def speed_up_training(model) -> int:
    """Give `model`'s 4-D BatchNorm and its Dropout layers the faster training step, on TensorFlow only.

    Returns how many layers changed (0 on another backend, where Keras' own steps stay).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return 0
    changed = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and len(layer.input.shape) == 4 \
                and layer.axis in (-1, 3) and not layer.renorm:
            layer.call = types.MethodType(_fused_batchnorm_call(type(layer).call), layer)
            changed += 1
        elif isinstance(layer, keras.layers.Dropout) and layer.noise_shape is None and 0 < layer.rate < 1:
            layer.call = types.MethodType(_sixteen_bit_dropout_call(type(layer).call), layer)
            changed += 1
    return changed


def _fused_batchnorm_call(keras_call):
    """BatchNorm's call: TensorFlow's fused kernel while training, Keras' own otherwise."""
    import tensorflow as tf

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or inputs.dtype != tf.float32:
            return keras_call(self, inputs, training=training, mask=mask)
        # With exponential_avg_factor the kernel returns the moving statistics already updated, but from the
        # batch's unbiased variance where Keras uses the biased one: the batch's variance is recovered and
        # scaled by (n - 1) / n, n being the batch's positions (86,528 at batch 128 after the first conv).
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=self.gamma, offset=self.beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, exponential_avg_factor=1.0 - self.momentum, data_format="NHWC",
            is_training=True)
        positions = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        unbiased = (variance - self.momentum * self.moving_variance) / (1.0 - self.momentum)
        biased = unbiased * (positions - 1.0) / positions
        self.moving_mean.assign(mean)
        self.moving_variance.assign(self.momentum * self.moving_variance + (1.0 - self.momentum) * biased)
        return outputs

    return call


def _sixteen_bit_dropout_call(keras_call):
    """Dropout's call: while training, zero each element when its 16-bit random number falls under the rate."""
    import tensorflow as tf

    def call(self, inputs, training=False):
        if not training:
            return keras_call(self, inputs, training=training)
        size = tf.size(inputs)
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        words = tf.random.stateless_uniform([(size + 1) // 2], seed=seed, minval=None, maxval=None, dtype=tf.int32)
        levels = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
        keep = tf.reshape(levels >= round(self.rate * MASK_LEVELS), tf.shape(inputs))
        return tf.where(keep, inputs * (1.0 / (1.0 - self.rate)), tf.zeros_like(inputs))

    return call
