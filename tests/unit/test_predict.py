"""Canvas preprocessing like MNIST's, and predictions from a saved model's weights."""

import re
import zipfile

import numpy as np
import pytest
from scipy import ndimage

from mnist_core.catalogue import available_models, best_model, bundled_model, load_predictor, model_problem
from mnist_core.predict import Predictor
from mnist_core.reading import ImageError, to_mnist
from mnist_core.layers import SeparableConv
from mnist_core.spec import PRESETS, Architecture, Conv, GlobalAvgPool, MaxPool, Softmax
from mnist_core.runs import RunStore
from mnist_core.weights import ModelFileError, check_model_file, ensure_weights, weights_path
from mnist_core.runner import save_model
from tests.models import copy_model


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
    predictor = Predictor(PRESETS["seed-final"], weights_path(path))
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
    predictor = Predictor(PRESETS["seed-final"], weights_path(path))
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
    for arch, path in ((PRESETS["seed-final"], small_model[0]), (bundled.spec, bundled.path)):
        model = build_model(arch)
        model.load_weights(path)
        images = mnist.x_test[:32].astype(np.float32) / 255
        expected = model(images[..., None], training=False).numpy()
        predictor = Predictor(arch, weights_path(path))
        ours = np.stack([predictor.probabilities(image) for image in images])
        assert np.abs(ours - expected).max() < 1e-5


EVERY_KIND = {  # together: kernels 1, 3 and 5, BatchNorm, Dropout, pools of 2, 3 and 4, a linear conv, separable
    # convs (3x3, 5x5, with and without BatchNorm, the class scores' too), GAP, softmax
    "kernels-bn-dropout-pool3": (Conv(8, 5, batchnorm=True), Conv(8, 3, dropout=True), Conv(8, 3, batchnorm=True),
                                 MaxPool(3), Conv(8, 1), Conv(8, 3, batchnorm=True, dropout=True), MaxPool(2),
                                 Conv(10, 1, batchnorm=True, relu=False)),
    "pool4-dropout-rate": (Conv(6, 3, dropout=True, dropout_rate=0.4), MaxPool(4), Conv(12, 3, batchnorm=True),
                           Conv(10, 3, relu=False)),
    "pool2-twice-bn-last": (MaxPool(2), Conv(4, 1, batchnorm=True), Conv(7, 5), MaxPool(2),
                            Conv(10, 3, batchnorm=True, dropout=True)),
    "separable": (Conv(6, 3, batchnorm=True), SeparableConv(12, 3, batchnorm=True, dropout=True), MaxPool(2),
                  SeparableConv(9, 5), SeparableConv(10, 3, relu=False)),
}


def test_every_layer_kind_in_the_spec_has_a_numpy_twin():
    """EVERY_KIND below covers each kind the spec offers, so a new kind needs a case there."""
    from mnist_core.spec import KERNEL_SIZES, KINDS

    layers = [layer for layers in EVERY_KIND.values() for layer in layers]
    assert {type(layer) for layer in layers} | {GlobalAvgPool, Softmax} == set(KINDS.values())
    convs = [layer for layer in layers if isinstance(layer, Conv)]
    assert {conv.kernel for conv in convs} == set(KERNEL_SIZES)
    assert {(conv.batchnorm, conv.dropout, conv.relu) for conv in convs} >= {(True, False, True), (False, True, True),
                                                                            (True, True, True), (False, False, False)}
    assert {layer.size for layer in layers if isinstance(layer, MaxPool)} == {2, 3, 4}


@pytest.mark.parametrize("name", list(EVERY_KIND))
def test_saved_weights_give_keras_probabilities_for_every_layer_kind(tmp_path, name):
    """A model saved as the worker saves it, every weight and BatchNorm statistic random: the numpy pass over the
    weights file gives Keras' `model.predict` probabilities within 1e-5, one image at a time and batched."""
    from mnist_core.model import build_model

    arch = Architecture(EVERY_KIND[name] + (GlobalAvgPool(), Softmax()))
    model = build_model(arch)
    rng = np.random.default_rng(sum(map(ord, name)))
    model.set_weights([rng.uniform(0.5, 2.0, w.shape) if "variance" in w.name else rng.normal(0, 0.5, w.shape)
                       for w in model.weights])
    save_model(model, tmp_path / "model.keras")
    images = rng.uniform(0, 1, (40, 28, 28)).astype(np.float32)
    expected = model.predict(images[..., None], verbose=0)
    predictor = Predictor(arch, weights_path(tmp_path / "model.keras"))
    assert np.abs(np.stack([predictor.probabilities(image) for image in images]) - expected).max() < 1e-5
    assert np.abs(predictor.probabilities_batch(images) - expected).max() < 1e-5


def test_the_weights_file_is_the_documented_format(tmp_path):
    """One float32 array per weight, named <Keras layer>/<weight>, the spec JSON and the format number: all plain
    arrays, readable without pickle or Keras."""
    with np.load(weights_path(bundled_model().path), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    assert int(arrays.pop("format")) == 1
    assert Architecture.from_json(str(arrays.pop("spec"))) == bundled_model().spec
    assert set(arrays) >= {"conv1/kernel", "bn1/gamma", "bn1/beta", "bn1/moving_mean", "bn1/moving_variance"}
    assert all(array.dtype == np.float32 for array in arrays.values())
    assert arrays["conv1/kernel"].shape == (3, 3, 1, bundled_model().spec.layers[0].filters)


def _edited(tmp_path, edit):
    """A copy of the bundled weights file whose arrays (a dict, 'spec' and 'format' included) went through `edit`."""
    with np.load(weights_path(bundled_model().path), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    edit(arrays)
    path = tmp_path / "edited.weights.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda arrays: arrays.update({"conv5/kernel_x": arrays.pop("conv5/kernel")}), "it has no array conv5/kernel"),
    (lambda arrays: arrays.pop("bn2/moving_variance"), "it has no array bn2/moving_variance"),
    (lambda arrays: arrays.update({"scale/gain": np.ones(3, np.float32)}), "it also has arrays scale/gain"),
    (lambda arrays: arrays.update({"bn1/gamma": np.ones(3, np.float32)}), "its layer bn1 holds arrays of shapes"),
    (lambda arrays: arrays.update(spec=np.array(PRESETS["seed-final"].to_json())), "it was saved for c3x16bd0.1"),
    (lambda arrays: arrays.update(spec=np.array("{not json")), "holds a damaged spec"),
    (lambda arrays: arrays.update(format=np.int64(2)), "in format 2; this app reads format 1"),
    (lambda arrays: arrays.pop("spec"), "cannot be read"),
], ids=["renamed", "missing", "extra", "wrong-shape", "other-spec", "damaged-spec", "format", "no-spec"])
def test_weights_are_found_by_name_or_refused(tmp_path, edit, message):
    """A missing, extra or misshapen array, or a spec or format other than the model's, is a ModelFileError."""
    with pytest.raises(ModelFileError, match=re.escape(message)):
        Predictor(bundled_model().spec, _edited(tmp_path, edit))


def test_model_files_are_checked_before_loading(tmp_path):
    with pytest.raises(ModelFileError, match="only .keras"):
        check_model_file(tmp_path / "model.h5")
    with pytest.raises(ModelFileError, match="missing"):
        check_model_file(tmp_path / "model.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="corrupted"):
        check_model_file(tmp_path / "junk.keras")
    copy_model(bundled_model().path, tmp_path / "model.keras")
    check_model_file(tmp_path / "model.keras")
    weights_path(tmp_path / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFileError, match="model.weights.npz is corrupted"):
        check_model_file(tmp_path / "model.keras")
    with pytest.raises(ModelFileError, match="missing"):
        Predictor(PRESETS["seed-final"], tmp_path / "none.weights.npz")
    with pytest.raises(ModelFileError, match="cannot be read"):
        Predictor(PRESETS["seed-final"], weights_path(tmp_path / "model.keras"))


def test_weights_of_another_architecture_are_refused():
    """Loading the bundled model's weights into a wider network fails with a clear message."""
    wider = bundled_model().spec.with_layer(0, filters=8)
    with pytest.raises(ModelFileError, match="does not hold weights for this architecture"):
        Predictor(wider, weights_path(bundled_model().path))


def test_a_model_saved_before_weights_files_gets_one_built_once_through_keras(tmp_path, mnist):
    """Only model.keras, as older runs left it: the weights file is built from it through Keras' public API and
    then reused; the numbers are the bundled weights file's. A file Keras cannot load says so in one sentence."""
    import shutil

    bundled = bundled_model()
    old = tmp_path / "model.keras"
    shutil.copy(bundled.path, old)
    built = ensure_weights(old, bundled.spec_json)
    assert built == weights_path(old) and built.exists()
    made = built.stat().st_mtime_ns
    assert ensure_weights(old, bundled.spec_json) == built and built.stat().st_mtime_ns == made
    images = mnist.x_test[:64].astype(np.float32) / 255
    np.testing.assert_array_equal(Predictor(bundled.spec, built).probabilities_batch(images),
                                  load_predictor(bundled).probabilities_batch(images))
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("config.json", "{not json")
        archive.writestr("model.weights.h5", b"no weights")
    with pytest.raises(ModelFileError, match=r"^Keras cannot load the model file .*broken.keras to prepare it for "
                                             r"prediction \(\w+Error: .+\)\.$") as raised:
        ensure_weights(broken, bundled.spec_json)
    assert "Traceback" not in str(raised.value) and "\n" not in str(raised.value)
    assert not weights_path(broken).exists()


def test_available_models_lists_runs_then_the_bundled_model(lab_home):
    """Completed runs and stopped runs with a saved model, and the bundled model, most accurate first; runs
    without a model (stopped while queued, failed) are not offered. A run that did not learn comes last and is
    never the default, however new."""
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
            copy_model(bundled_model().path, store.model_path(run_id))
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
    from mnist_core.budget import summarize

    store = RunStore(lab_home)
    summary = summarize(PRESETS["seed-final"])
    run_id = store.create_run("seed-final", PRESETS["seed-final"], {"epochs": 20}, summary.total, summary.trainable)
    store.claim_next(worker_pid=0)
    copy_model(bundled_model().path, store.model_path(run_id))
    store.finish(run_id, "stopped")
    assert [choice.run_id for choice in available_models(store)] == [None]


def test_one_rule_says_whether_a_run_has_a_usable_model(lab_home):
    """A run keeps a model when an epoch finished and its file is present and readable: a completed run whose
    file was deleted or damaged is not offered, and `model_problem` says why, as the Runs page shows it."""
    from mnist_core.budget import summarize

    store = RunStore(lab_home)
    arch = bundled_model().spec
    summary = summarize(arch)
    ids = []
    for _ in range(3):
        ids.append(store.create_run(arch.name, arch, {"epochs": 2}, summary.total, summary.trainable))
        store.claim_next(worker_pid=0)
        copy_model(bundled_model().path, store.model_path(ids[-1]))
        store.finish(ids[-1], "completed", test_accuracy=0.98)
    good, deleted, damaged = ids
    store.model_path(deleted).unlink()
    store.model_path(damaged).write_bytes(b"PK\x03\x04 truncated")
    assert [choice.run_id for choice in available_models(store)] == [None, good]
    runs = {run.id: run for run in store.list()}
    assert model_problem(store, runs[good]) is None
    assert model_problem(store, runs[deleted]).startswith(f"Run {deleted}'s model cannot be used: The model file")
    assert "missing" in model_problem(store, runs[deleted])
    assert "corrupted" in model_problem(store, runs[damaged])
    # What a student reads names the file, never the server's folders.
    assert not any(str(lab_home) in model_problem(store, runs[run_id]) for run_id in (deleted, damaged))
