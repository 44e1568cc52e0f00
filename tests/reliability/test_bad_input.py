"""Bad input at every edge: canvases, data files, damaged or locked run stores, a full disk, settings."""

import gzip
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib

import numpy as np
import pytest

from mnist_core.budget import summarize
from mnist_core.db import StoreError
from mnist_core.jobs import Lab
from mnist_core.catalogue import bundled_model, load_predictor
from mnist_core.reading import to_mnist
from mnist_core.recipe import Recipe
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from tests.app.conftest import texts
from tests.conftest import ROOT
from tests.models import copy_model


@pytest.fixture(scope="module")
def predictor():
    return load_predictor(bundled_model())


def blank():
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    return canvas


def with_ink(*regions):
    canvas = blank()
    for top, bottom, left, right in regions:
        canvas[top:bottom, left:right, :3] = 255
    return canvas


CANVASES = {
    "single dot": with_ink((140, 160, 140, 160)),
    "scribble over everything": with_ink(*[(y, y + 15, 0, 280) for y in range(0, 280, 30)],
                                         *[(0, 280, x, x + 15) for x in range(0, 280, 40)]),
    "several digits": with_ink((60, 200, 30, 45), (60, 200, 120, 135), (60, 75, 200, 260), (60, 200, 245, 260)),
    "tiny digit in a corner": with_ink((262, 278, 268, 271)),
    "transparent canvas": np.zeros((280, 280, 4), dtype=np.uint8),
}


@pytest.mark.parametrize("name", list(CANVASES))
def test_odd_canvases_get_a_prediction_or_a_hint_never_an_exception(predictor, name):
    result = predictor.predict(CANVASES[name])
    if name == "transparent canvas":
        assert result is None
    else:
        assert 0 <= result.digit <= 9 and 0 < result.confidence <= 1
        assert np.isfinite(result.probabilities).all()


def test_before_the_first_stroke_and_after_clearing_the_canvas_is_blank():
    assert to_mnist(blank()) is None


def test_a_broken_mnist_file_fails_the_run_with_one_message_on_the_train_page(app_with_data, tmp_path, mnist_dir):
    """A truncated training file: the Train page shows why, and the run is 'failed', never 'completed'."""
    broken = tmp_path / "mnist"
    shutil.copytree(mnist_dir, broken)
    path = broken / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50_000])
    at, home = app_with_data(broken)
    at.segmented_control(key="recipe").set_value("quick").run()
    next(b for b in at.button if b.label == "Start training").click().run()
    store = RunStore(home)
    deadline = time.monotonic() + 120
    while store.list()[0].status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
    at.run()
    errors = " ".join(texts(at.error))
    assert "failed" in errors and "truncated or corrupted" in errors and not at.exception
    assert [run.status for run in store.list()] == ["failed"]


@pytest.fixture
def app_with_data(app, monkeypatch, lab_home):
    def open_train(data_dir):
        monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
        return app("train"), lab_home

    return open_train


def test_cli_reports_a_corrupted_data_file_without_a_traceback(tmp_path, mnist_dir):
    broken = tmp_path / "mnist"
    shutil.copytree(mnist_dir, broken)
    path = broken / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[500] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(raw)))
    out = subprocess.run([sys.executable, "-m", "mnist_core",
                          "train", "--epochs", "1", "--subset", "256", "--data-dir", str(broken),
                          "--home", str(tmp_path / "lab")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "t10k-labels-idx1-ubyte.gz is corrupted: SHA-256" in out.stderr


def finished(store, name="seed-final"):
    arch = PRESETS[name]
    summary = summarize(arch)
    run_id = store.create_run(name, arch, {"epochs": 1}, summary.total, summary.trainable)
    store.claim_next(0)
    store.finish(run_id, "completed", test_accuracy=0.97)
    copy_model(bundled_model().path, store.model_path(run_id))
    return run_id


def test_a_corrupted_database_is_set_aside_and_rebuilt_from_the_run_folders(lab_home):
    store = RunStore(lab_home)
    first, second = finished(store), finished(store, "seed-first")
    store.db_path.write_bytes(b"this is not an SQLite database" * 100)
    reopened = RunStore(lab_home)
    assert "damaged" in reopened.notice and "rebuilt from 2 run folders" in reopened.notice
    assert {run.id: run.status for run in reopened.list()} == {first: "completed", second: "completed"}
    assert list(lab_home.glob("runs.sqlite.damaged-*")), "the damaged file is kept, not deleted"


def test_the_runs_page_shows_the_rebuilt_history_and_says_what_happened(app, lab_home):
    store = RunStore(lab_home)
    finished(store)
    store.db_path.write_bytes(b"garbage" * 500)
    at = app()
    assert any("was damaged" in text for text in texts(at.warning))  # said once, on the first page seen
    at.switch_page("pages/runs.py").run()
    assert list(at.dataframe[0].value["run"]) == [1] and not at.exception


def test_one_deleted_and_one_corrupted_model_leave_the_others_usable(app, lab_home):
    store = RunStore(lab_home)
    good, deleted, corrupted = finished(store), finished(store), finished(store)
    store.model_path(deleted).unlink()
    store.model_path(corrupted).write_bytes(b"PK\x03\x04 truncated")
    at = app("runs")
    assert len(at.dataframe[0].value) == 3
    at.selectbox[0].set_value(deleted).run()
    assert any(f"Run {deleted}'s model cannot be used" in text and "missing" in text for text in texts(at.error))
    at.selectbox[0].set_value(corrupted).run()
    assert any(f"Run {corrupted}'s model cannot be used" in text for text in texts(at.error))
    at.selectbox[0].set_value(good).run()
    assert not texts(at.error) and any(b.label == "Download model (.keras)" for b in at.get("download_button"))
    assert not at.exception


def test_a_locked_database_still_lists_runs(lab_home):
    """Another program's write lock: reading the history still works (WAL), writes say 'locked'."""
    store = RunStore(lab_home)
    finished(store)
    blocker = sqlite3.connect(store.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert [run.id for run in store.list()] == [1]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_a_full_disk_is_refused_before_training_and_loses_nothing(tiny_disk, mnist_dir):
    lab = Lab(home=tiny_disk / "lab", data_dir=mnist_dir)
    first = finished(lab.store)
    (tiny_disk / "filler").write_bytes(b"\0" * 40 * 2**20)  # another program fills the disk
    with pytest.raises(StoreError, match=r"Only \d+ MB free"):
        lab.submit(PRESETS["seed-final"], Recipe(epochs=1, train_subset=256))
    assert [run.id for run in lab.store.list()] == [first] and lab.store.model_path(first).exists()
    lab.shutdown()


def test_an_unwritable_store_is_a_clear_error_in_the_app(app, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("MNIST_LAB_HOME", str(blocker / "lab"))
    at = app("train")
    assert any("Cannot create the run store" in text for text in texts(at.error)) and not at.exception


def test_security_settings():
    """XSRF and CORS protection on, uploads small, and no user text rendered as raw HTML."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert config["enableXsrfProtection"] is True and config["enableCORS"] is True
    assert config["maxUploadSize"] <= 25  # above the 10 MB photo cap, so a too-big photo is refused in words
    # A crash shows a short message: no traceback with server paths, no "Ask ChatGPT" links.
    assert tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["client"]["showErrorDetails"] == "none"
    sources = [path.read_text() for path in [ROOT / "app.py", *ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py")]]
    assert not any(re.search(r"unsafe_allow_html\s*=\s*True", source) for source in sources)
    # Every uploader names its own limit: 1 MB for a spec, 5 MB for a sample set, 25 MB for a photo.
    uploaders = re.findall(r"st\.file_uploader\((?:[^()]|\([^()]*\))*\)", "\n".join(sources))
    assert len(uploaders) == 3 and all("max_upload_size=" in call for call in uploaders)
