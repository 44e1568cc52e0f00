"""The faster BatchNorm and Dropout training steps do what Keras' own do, and leave the model Keras' own."""

import numpy as np
import pytest

from mnist_core.kernels import speed_up_training


def _batchnorm_step(momentum: float, fast: bool):
    """One training step of a lone BatchNorm layer: (outputs, moving mean, moving variance, gradients)."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.layers.Input((7, 7, 5)), keras.layers.BatchNormalization(momentum=momentum)])
    norm = model.layers[0]
    norm.gamma.assign(np.linspace(0.5, 2.0, 5))
    norm.beta.assign(np.linspace(-1.0, 1.0, 5))
    if fast:
        assert speed_up_training(model) == 1
    images = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (16, 7, 7, 5)).astype("float32"))
    weights = tf.constant(np.random.default_rng(1).normal(size=(16, 7, 7, 5)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(images)
        outputs = model(images, training=True)
        loss = tf.reduce_sum(outputs * weights)
    gradients = tape.gradient(loss, [images, norm.gamma, norm.beta])
    return [outputs.numpy(), norm.moving_mean.numpy(), norm.moving_variance.numpy()] + [g.numpy() for g in gradients]


@pytest.mark.parametrize("momentum", [0.99, 0.9, 0.0])
def test_fused_batchnorm_trains_as_keras_batchnorm(momentum):
    """Outputs, gradients and the moving statistics (Keras' biased variance, not the kernel's unbiased) agree."""
    names = ["outputs", "moving mean", "moving variance", "input gradient", "gamma gradient", "beta gradient"]
    for name, keras_value, fast_value in zip(names, _batchnorm_step(momentum, False), _batchnorm_step(momentum, True)):
        np.testing.assert_allclose(fast_value, keras_value, rtol=2e-5, atol=5e-5, err_msg=name)


def test_sixteen_bit_dropout_drops_the_rate_scales_the_rest_and_is_off_at_inference():
    import keras

    model = keras.Sequential([keras.layers.Input((26, 26, 16)), keras.layers.Dropout(0.1, seed=3)])
    assert speed_up_training(model) == 1
    ones = np.ones((256, 26, 26, 16), "float32")
    first, second = (model(ones, training=True).numpy() for _ in range(2))
    assert abs((first == 0).mean() - 0.1) < 0.002  # 2.8 M elements: 0.1 within 0.0003 at one sigma
    np.testing.assert_allclose(np.unique(first), [0.0, 1 / 0.9], rtol=1e-6)
    assert (first != second).mean() > 0.1  # a new mask every step
    np.testing.assert_array_equal(model(ones[:2], training=False).numpy(), ones[:2])


def test_the_trained_model_is_keras_own_and_saves_as_such(tmp_path, mnist):
    """Training with the faster steps leaves standard Keras layers: the saved file loads in plain Keras and
    predicts what the trained model predicts."""
    import keras

    from mnist_core.data import as_model_input
    from mnist_core.recipe import Recipe
    from mnist_core.spec import PRESETS
    from mnist_core.train import train

    result = train(PRESETS["seed-final"], Recipe(epochs=1, train_subset=512, batch_size=128), mnist, lambda e: None)
    assert {type(layer).__name__ for layer in result.model.layers} >= {"BatchNormalization", "Dropout"}
    path = tmp_path / "model.keras"
    result.model.save(path)
    loaded = keras.saving.load_model(path)
    digits = as_model_input(mnist.x_test[:200])
    np.testing.assert_allclose(loaded.predict(digits, verbose=0), result.model.predict(digits, verbose=0), atol=1e-6)


def test_the_same_seed_trains_the_same_network(mnist):
    """The faster Dropout draws its masks from Keras' seed generator: a seed still fixes a run."""
    from mnist_core.recipe import Recipe
    from mnist_core.spec import PRESETS
    from mnist_core.train import train

    recipe = Recipe(epochs=1, train_subset=512, batch_size=128, seed=5)
    first, second = (train(PRESETS["seed-final"], recipe, mnist, lambda e: None) for _ in range(2))
    assert first.test_accuracy == second.test_accuracy
    np.testing.assert_array_equal(first.test_probabilities, second.test_probabilities)
