"""Exports: a trained model as ONNX and TFLite files that other runtimes read exactly as Keras does."""

import os
import shutil
import zipfile

import numpy as np
import pytest

from mnist_core.__main__ import main
from mnist_core.budget import summarize
from mnist_core.catalogue import bundled_model
from mnist_core.data import as_model_input
from mnist_core.export import ExportError, ensure_export, export_model, exported_path, ready_export
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from tests.models import copy_model


@pytest.fixture(scope="module")
def bundled_exports(tmp_path_factory):
    """The bundled model exported once in each format: {format: path}."""
    folder = tmp_path_factory.mktemp("exports")
    path = bundled_model().path
    return {fmt: export_model(path, fmt, exported_path(path, fmt, folder)) for fmt in ("onnx", "tflite")}


def runtime_probabilities(exports: dict, digits: np.ndarray) -> dict:
    """What onnxruntime and the TFLite (LiteRT) interpreter give for `digits`, by format."""
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    session = onnxruntime.InferenceSession(str(exports["onnx"]), providers=["CPUExecutionProvider"])
    (from_onnx,) = session.run(None, {session.get_inputs()[0].name: digits})
    interpreter = Interpreter(model_path=str(exports["tflite"]))
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(given["index"], digits.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], digits)
    interpreter.invoke()
    return {"onnx": from_onnx, "tflite": interpreter.get_tensor(taken["index"])}


def test_onnx_and_tflite_exports_give_keras_probabilities_on_1000_test_digits(bundled_exports, mnist):
    import keras

    digits = as_model_input(mnist.x_test[:1000])
    expected = keras.saving.load_model(bundled_model().path, compile=False).predict(digits, verbose=0)
    for fmt, given in runtime_probabilities(bundled_exports, digits).items():
        np.testing.assert_allclose(given, expected, rtol=0, atol=1e-5, err_msg=fmt)
    assert (expected.argmax(axis=1) == mnist.y_test[:1000]).mean() > 0.98  # a model that reads digits


def test_a_model_with_separable_convs_exports_as_keras_reads_it(tmp_path, mnist):
    """best-under-2k's separable convs, every weight and BatchNorm statistic random: both runtimes give Keras'
    probabilities within 1e-5 on 1,000 test digits."""
    from mnist_core.model import build_model
    from mnist_core.runner import save_model

    model = build_model(PRESETS["best-under-2k"])
    rng = np.random.default_rng(2)
    model.set_weights([rng.uniform(0.5, 2.0, w.shape) if "variance" in w.name else rng.normal(0, 0.5, w.shape)
                       for w in model.weights])
    path = tmp_path / "model.keras"
    save_model(model, path)
    exports = {fmt: export_model(path, fmt, exported_path(path, fmt, tmp_path)) for fmt in ("onnx", "tflite")}
    digits = as_model_input(mnist.x_test[:1000])
    expected = model.predict(digits, verbose=0)
    for fmt, given in runtime_probabilities(exports, digits).items():
        np.testing.assert_allclose(given, expected, rtol=0, atol=1e-5, err_msg=fmt)


def test_an_export_is_ready_until_its_model_changes(bundled_exports, tmp_path):
    model = tmp_path / "model.keras"
    copy_model(bundled_model().path, model)
    assert ready_export(model, "onnx") is None
    made = exported_path(model, "onnx")
    shutil.copy(bundled_exports["onnx"], made)  # as export_model leaves it, without a second conversion
    assert ready_export(model, "onnx") == made == tmp_path / "model.onnx"
    kept = made.stat().st_mtime_ns
    assert ensure_export(model, "onnx") == made and made.stat().st_mtime_ns == kept  # not converted again
    assert bundled_exports["onnx"].stat().st_mode & 0o644 == 0o644  # a file to share, not a private temp file
    later = made.stat().st_mtime + 10
    os.utime(model, (later, later))  # the model saved again after the export
    assert ready_export(model, "onnx") is None


def test_what_cannot_be_exported_says_why_in_a_sentence_that_names_no_folder(tmp_path):
    damaged = tmp_path / "model.keras"
    with zipfile.ZipFile(damaged, "w") as archive:  # looks like a model archive, holds no model
        archive.writestr("model.weights.h5", b"not HDF5")
        archive.writestr("config.json", b"{}")
    with pytest.raises(ExportError) as caught:
        export_model(damaged, "onnx", tmp_path / "out.onnx")
    assert str(caught.value).startswith("The ONNX export failed: Keras cannot read the model file, which is damaged (")
    assert str(tmp_path) not in str(caught.value) and not (tmp_path / "out.onnx").exists()
    with pytest.raises(ExportError, match="missing"):
        export_model(tmp_path / "gone.keras", "tflite", tmp_path / "out.tflite")
    with pytest.raises(ExportError, match="use onnx or tflite"):
        export_model(damaged, "tfjs", tmp_path / "out.js")


def test_the_cli_exports_a_run_or_the_bundled_model_and_refuses_the_rest(lab_home, tmp_path, capsys, monkeypatch):
    store = RunStore(lab_home)
    summary = summarize(PRESETS["seed-final"])

    def finished(with_model: bool) -> int:
        run_id = store.create_run("seed-final", PRESETS["seed-final"], {"epochs": 1}, summary.total,
                                  summary.trainable)
        store.claim_next(worker_pid=0)
        if with_model:
            copy_model(bundled_model().path, store.model_path(run_id))
        store.finish(run_id, "completed" if with_model else "stopped", test_accuracy=0.99 if with_model else None)
        return run_id

    trained, untrained = finished(True), finished(False)
    out = tmp_path / "run.tflite"
    assert main(["export", str(trained), "--format", "tflite", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and "TFLite model: " in capsys.readouterr().out

    monkeypatch.chdir(tmp_path)  # the default file lands in the current folder, named for what it holds
    assert main(["export", "bundled", "--format", "onnx"]) == 0
    assert (tmp_path / "mnist-budget-lab-bundled.onnx").stat().st_size > 10_000
    folder = tmp_path / "exports"
    folder.mkdir()
    assert main(["export", str(trained), "--format", "onnx", "--out", str(folder)]) == 0  # a folder: a file in it
    assert (folder / f"run-{trained}.onnx").stat().st_size > 10_000
    missing = tmp_path / "no-store-here"
    assert main(["export", "1", "--format", "onnx", "--home", str(missing)]) == 2
    assert "There is no run store at" in capsys.readouterr().err and not missing.exists()

    for run, says in ((str(untrained), f"Run {untrained} has no model: it was stopped before its first epoch"),
                      ("99", "There is no run 99"), ("latest", "RUN is a run number"),
                      ("9" * 23, "RUN is a run number"), ("\u0661", "RUN is a run number")):
        assert main(["export", run, "--format", "onnx"]) == 2
        assert says in capsys.readouterr().err
