"""Canvas preprocessing like MNIST's, and predictions from a saved model's weights."""

import json
import re
import zipfile

import numpy as np
import pytest
from scipy import ndimage

from mnist_core.predict import (ImageError, ModelFileError, Predictor, available_models, best_model, bundled_model,
                                load_predictor, to_mnist)
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS, Architecture, Conv, GlobalAvgPool, MaxPool, Softmax


def canvas_with(digit28: np.ndarray, scale: float, top: int, left: int, size: int = 280) -> np.ndarray:
    """Paint an MNIST digit onto a black RGBA canvas, scaled and placed anywhere, like a user might."""
    from PIL import Image

    side = max(4, int(28 * scale))
    glyph = np.asarray(Image.fromarray(digit28).resize((side, side), Image.Resampling.BILINEAR))
    canvas = np.zeros((size, size, 4), dtype=np.uint8)
    canvas[top:top + side, left:left + side, :3] = glyph[..., None]
    canvas[..., 3] = 255
    return canvas


def test_blank_canvas_is_none():
    assert to_mnist(np.zeros((280, 280, 4), dtype=np.uint8)) is None
    speck = np.zeros((280, 280, 4), dtype=np.uint8)
    speck[10, 10] = 255
    assert to_mnist(speck) is None


def test_output_fits_a_20px_box_centred_by_mass():
    """A tall thin stroke in a corner ends up 20 px tall, aspect kept, centre of mass at the centre."""
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[5:65, 220:232] = 255  # 60x12 in the top-right corner
    digit = to_mnist(canvas)
    rows, cols = np.nonzero(digit > 0.05)
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert rows.max() - rows.min() + 1 in (20, 21) and cols.max() - cols.min() + 1 <= 7
    cy, cx = ndimage.center_of_mass(digit)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_transparent_pixels_are_background():
    """Colour under zero alpha is not ink (the canvas may send transparent white)."""
    canvas = np.full((100, 100, 4), 255, dtype=np.uint8)
    canvas[..., 3] = 0
    assert to_mnist(canvas) is None


@pytest.mark.parametrize("image, message", [
    (np.zeros((5,)), "shape"),
    (np.zeros((10, 10, 2)), "1, 3 or 4 channels"),
    (np.zeros((5000, 10)), "at most 4096"),
    (np.array([["a"]]), "numeric"),
    ("not an array", "image array"),
])
def test_unreadable_images_raise_image_error(image, message):
    with pytest.raises(ImageError, match=message):
        to_mnist(image)


def test_preprocessing_beats_a_bare_resize_on_small_off_centre_digits(small_model, mnist):
    """Test digits drawn small and off-centre: cropping and centring recovers accuracy a bare resize loses."""
    from PIL import Image

    path, _ = small_model
    predictor = Predictor(PRESETS["seed-final"], path)
    rng = np.random.default_rng(0)
    ours = bare = 0
    samples = 200
    for digit, label in zip(mnist.x_test[:samples], mnist.y_test[:samples]):
        canvas = canvas_with(digit, scale=rng.uniform(3, 5), top=int(rng.integers(0, 130)),
                             left=int(rng.integers(0, 130)))
        ours += predictor.predict(canvas).digit == label
        resized = np.asarray(Image.fromarray(canvas[..., 0]).resize((28, 28))) / 255.0
        bare += int(predictor.probabilities(resized.astype(np.float32)).argmax()) == label
    assert ours / samples >= 0.9
    assert ours / samples >= bare / samples + 0.3


def test_the_bundled_model_reads_digits_drawn_like_on_the_canvas(mnist):
    """The hand-drawn set (100 test digits drawn 8 ways: traced with a round brush, small, large, thin, bold,
    rotated, slanted): stroke-width normalisation reads more of them, most of all the small and thin ones."""
    from bench.handdrawn import accuracy_by_condition, handdrawn_set

    predictor = load_predictor(bundled_model())
    drawings = list(handdrawn_set(mnist.x_test[:100], mnist.y_test[:100]))
    as_drawn = accuracy_by_condition(predictor, drawings, normalise_strokes=False)
    normalised = accuracy_by_condition(predictor, drawings)
    assert normalised["all"] >= 0.98 and normalised["all"] > as_drawn["all"]
    for condition in ("traced, small (54-103 px)", "traced, thin brush (8 px)", "traced, bold brush (32 px)"):
        assert normalised[condition] >= as_drawn[condition], condition


def test_prediction_has_ten_probabilities_and_a_confidence(small_model, mnist):
    path, _ = small_model
    predictor = Predictor(PRESETS["seed-final"], path)
    prediction = predictor.predict(canvas_with(mnist.x_test[0], 8, 20, 20))
    assert prediction.digit == mnist.y_test[0]
    assert prediction.probabilities.shape == (10,) and abs(prediction.probabilities.sum() - 1) < 1e-4
    # A clean, large test digit is read with high confidence in the digit it names.
    assert prediction.confidence == prediction.probabilities[prediction.digit] > 0.9


def test_bundled_model_is_ready_and_accurate(mnist):
    """The shipped model loads from weights alone and scores as its metadata claims on 1,000 test digits."""
    choice = bundled_model()
    predictor = load_predictor(choice)
    images = mnist.x_test[:1000].astype(np.float32) / 255
    predicted = [int(predictor.probabilities(image).argmax()) for image in images]
    assert choice.test_accuracy >= 0.994 and "best recipe" in choice.description
    assert np.mean(np.array(predicted) == mnist.y_test[:1000]) >= 0.99


def test_numpy_forward_pass_equals_keras(small_model, mnist):
    """The oracle: the server's numpy forward pass gives Keras' probabilities for the same weights."""
    from mnist_core.model import build_model

    bundled = bundled_model()
    for arch, path in ((PRESETS["seed-final"], small_model[0]),
                       (bundled.spec, bundled.path)):
        model = build_model(arch)
        model.load_weights(path)
        images = mnist.x_test[:32].astype(np.float32) / 255
        expected = model(images[..., None], training=False).numpy()
        predictor = Predictor(arch, path)
        ours = np.stack([predictor.probabilities(image) for image in images])
        assert np.abs(ours - expected).max() < 1e-5


def test_model_files_are_checked_before_loading(tmp_path):
    with pytest.raises(ModelFileError, match="only .keras"):
        Predictor(PRESETS["seed-final"], tmp_path / "model.h5")
    with pytest.raises(ModelFileError, match="missing"):
        Predictor(PRESETS["seed-final"], tmp_path / "model.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="corrupted"):
        Predictor(PRESETS["seed-final"], tmp_path / "junk.keras")


def test_weights_of_another_architecture_are_refused():
    """Loading seed-final's weights into a wider network fails with a clear message."""
    wider = PRESETS["seed-final"].with_layer(0, filters=8)
    with pytest.raises(ModelFileError, match="does not hold weights for this architecture"):
        Predictor(wider, bundled_model().path)


def test_numpy_forward_pass_equals_keras_for_every_layer_kind(tmp_path):
    """A freshly saved model with random weights, several same-shaped convs, 5x5 and 1x1 kernels, pools of 3 and 2:
    weights found by layer name give Keras' probabilities, so no two layers' weights can be swapped."""
    from mnist_core.model import build_model

    arch = Architecture((Conv(8, 5, batchnorm=True), Conv(8, 3, dropout=True), Conv(8, 3, batchnorm=True), MaxPool(3),
                         Conv(8, 1), Conv(8, 3, batchnorm=True, dropout=True), MaxPool(2),
                         Conv(10, 1, batchnorm=True, relu=False), GlobalAvgPool(), Softmax()))
    model = build_model(arch)
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 2.0, w.shape) if "variance" in w.name else rng.normal(0, 0.5, w.shape)
                       for w in model.weights])
    model.save(tmp_path / "model.keras")
    images = rng.uniform(0, 1, (8, 28, 28)).astype(np.float32)
    expected = model(images[..., None], training=False).numpy()
    predictor = Predictor(arch, tmp_path / "model.keras")
    assert np.abs(np.stack([predictor.probabilities(image) for image in images]) - expected).max() < 1e-5


def _edit_config(path, tmp_path, edit):
    """A copy of the .keras archive at `path` whose config.json's layer list went through `edit`."""
    copy = tmp_path / "edited.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "config.json":
                config = json.loads(data)
                edit(config["config"]["layers"])
                data = json.dumps(config)
            target.writestr(item, data)
    return copy


def _rename(layers, old, new):
    next(layer for layer in layers if layer["config"]["name"] == old)["config"]["name"] = new


@pytest.mark.parametrize("edit, message", [
    (lambda layers: _rename(layers, "conv5", "conv_five"), "it has no layer named conv5"),
    (lambda layers: _rename(layers, "pool4", "pool_four"), "it has no layer named pool4"),
    (lambda layers: layers.insert(3, {"class_name": "Rescaling", "config": {"name": "scale"}}),
     "it also has layers scale (Rescaling)"),
    (lambda layers: layers[1].update(class_name="DepthwiseConv2D"),
     "its layer conv1 is a DepthwiseConv2D, not a Conv2D"),
    (lambda layers: layers.pop(), "it has no layer named softmax"),
    (lambda layers: layers.append("junk"), "cannot be read"),
], ids=["missing-conv", "missing-pool", "unknown-kind", "wrong-kind", "missing-softmax", "damaged-config"])
def test_weights_are_found_by_layer_name_or_refused(tmp_path, edit, message):
    """A missing name, a layer of an unknown or wrong kind, or a damaged config is a ModelFileError, never skipped."""
    path = _edit_config(bundled_model().path, tmp_path, edit)
    with pytest.raises(ModelFileError, match=re.escape(message)):
        Predictor(bundled_model().spec, path)


def test_available_models_lists_runs_then_the_bundled_model(lab_home):
    """Completed runs and stopped runs with a saved model, and the bundled model, most accurate first; runs
    without a model (stopped while queued, failed) are not offered. A run that did not learn comes last and is
    never the default, however new."""
    import shutil

    from mnist_core.budget import summarize

    store = RunStore(lab_home)
    assert [choice.title for choice in available_models(store)] == [bundled_model().title]
    arch = bundled_model().spec  # each run's model file is a copy of the bundled one
    summary = summarize(arch)

    def run(status, accuracy, with_model):
        run_id = store.create_run(arch.name, arch, {"epochs": 2}, summary.total, summary.trainable)
        if status != "stopped" or with_model:
            store.claim_next(worker_pid=0)
        if with_model:
            shutil.copy(bundled_model().path, store.model_path(run_id))
        if status == "stopped" and not with_model:
            store.request_stop(run_id)
        else:
            store.finish(run_id, status, test_accuracy=accuracy)
        return run_id

    completed = run("completed", 0.969, with_model=True)
    stopped = run("stopped", 0.996, with_model=True)
    run("stopped", None, with_model=False)
    run("failed", None, with_model=False)
    chance = run("completed", 0.1135, with_model=True)
    choices = available_models(store)
    assert bundled_model().test_accuracy > 0.969
    assert [choice.run_id for choice in choices] == [stopped, None, completed, chance]
    assert choices[0].label == f"Run {stopped}: {arch.name}, stopped (99.60%)"
    assert choices[-1].label == f"Run {chance}: {arch.name}, completed (11.35% (did not learn))"
    assert [choice.learned for choice in choices] == [True, True, True, False]
    assert best_model(choices).run_id == stopped
    assert best_model(choices[2:]).run_id == completed  # 96.9% learned; the newer 11.35% did not


def test_a_run_stopped_before_its_first_epoch_is_not_offered(lab_home):
    """Its weights are untrained (10% for every digit): not a model to draw for."""
    import shutil

    from mnist_core.budget import summarize

    store = RunStore(lab_home)
    summary = summarize(PRESETS["seed-final"])
    run_id = store.create_run("seed-final", PRESETS["seed-final"], {"epochs": 20}, summary.total, summary.trainable)
    store.claim_next(worker_pid=0)
    shutil.copy(bundled_model().path, store.model_path(run_id))
    store.finish(run_id, "stopped")
    assert [choice.run_id for choice in available_models(store)] == [None]
