"""The command line, run as a user would: `python -m mnist_core ...` in a subprocess."""

import os
import signal
import subprocess
import sys
import time

import pytest

from mnist_core.recipe import ABOUT, RECIPES
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from tests.conftest import ROOT


def cli(*args, home=None, env=None, timeout=300):
    env = dict(os.environ, **({"MNIST_LAB_HOME": str(home)} if home else {}), **(env or {}))
    return subprocess.run([sys.executable, "-m", "mnist_core", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


def test_recipe_help_says_what_each_named_recipe_is_for_as_the_train_page_does():
    out = cli("train", "--help")
    said = " ".join(out.stdout.split())
    assert out.returncode == 0
    for name in RECIPES:
        assert f"{name}: {' '.join(ABOUT[name].split())}" in said


def test_params_prints_the_table_and_verdict():
    out = cli("params", "--preset", "seed-final")
    assert out.returncode == 0
    assert "Total params: 14,960  (trainable 14,800, non-trainable 160)" in out.stdout
    assert "Budget: PASS: 14,960 total params < 15,000: 39 to spare" in out.stdout
    assert " 26x26x16 " in out.stdout and "   4x4x10 " in out.stdout
    first = cli("params", "--preset", "seed-first")
    assert "Budget: FAIL: 15,088 total params: over the 15,000 budget by 88" in first.stdout


def test_params_reads_a_spec_file_and_reports_bad_ones_cleanly(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(PRESETS["seed-first"].to_json())
    assert "15,088" in cli("params", "--spec", str(good), "--count", "trainable").stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": [{"kind": "conv", "filters": 0}]}')
    out = cli("params", "--spec", str(bad))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "error: conv 1 (3x3): filters must be between 1 and 256, got 0." in out.stderr


def test_a_spec_too_deep_or_with_too_long_a_number_is_one_line_and_exit_2(tmp_path):
    """19 KB of '[' once printed a RecursionError's traceback; 5,000 digits, Python's digit limit."""
    deep, digits = tmp_path / "deep.json", tmp_path / "digits.json"
    deep.write_text("[" * 19_000)
    digits.write_text('{"layers": [{"kind": "conv", "filters": ' + "9" * 5_000 + "}]}")
    for path, message in ((deep, "nested too deeply"), (digits, "too many digits")):
        out = cli("params", "--spec", str(path))
        assert out.returncode == 2 and out.stdout == "", out.stderr
        assert out.stderr.startswith("error: The spec ") and message in out.stderr
        assert out.stderr.count("\n") == 1


@pytest.mark.parametrize("limit", ["-5", "0", "10000001"])
def test_a_budget_out_of_range_is_one_line_and_exit_2(limit):
    """--limit -5 once printed 'over the -5 budget by 14,965'."""
    out = cli("params", "--limit", limit)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "error: The budget must be a whole number of parameters from 1 to 10,000,000.\n"


def test_train_prints_epochs_accuracy_and_where_it_is_stored(tmp_path):
    home = tmp_path / "lab"
    out = cli("train", "--epochs", "2", "--subset", "512", "--seed", "1", home=home)
    assert out.returncode == 0, out.stderr
    epochs = [line for line in out.stdout.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 2 and "lr 0.002274" in epochs[1] and "val_acc" in epochs[0]
    assert "Run 1 completed: test accuracy" in out.stdout
    assert f"Model: {home / 'runs' / '1' / 'model.keras'}" in out.stdout
    assert (home / "runs" / "1" / "model.keras").exists()


def test_train_with_a_named_recipe_and_a_field_overridden(tmp_path):
    """--recipe best trains one-cycle with augmentation; the flags given replace only those fields."""
    home = tmp_path / "lab"
    out = cli("train", "--recipe", "best", "--epochs", "1", "--subset", "512", "--label-smoothing", "0.05",
              "--recalibrate-bn", "off", home=home)
    assert out.returncode == 0, out.stderr
    assert "best recipe, 1 epoch on 512 images; one-cycle: warm-up over 20%" in out.stdout
    recipe = RunStore(home).get(1).recipe
    assert (recipe["schedule"], recipe["epochs"], recipe["train_subset"], recipe["label_smoothing"],
            recipe["rotate"], recipe["recalibrate_bn"]) == ("one-cycle", 1, 512, 0.05, 8.0, False)


def test_a_subset_and_split_over_the_training_images_are_one_clear_message(tmp_path):
    out = cli("train", "--subset", "58000", "--validation", "5000", home=tmp_path / "lab")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == ("error: Invalid recipe: the training subset and the validation split take more "
                                  "than the 60,000 images.")


def test_a_bad_recipe_field_is_one_clear_message(tmp_path):
    out = cli("train", "--recipe", "fast", "--optimizer", "sgd", home=tmp_path / "lab")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: Invalid recipe: optimizer must be one of adam, adamw."
    switch = cli("train", "--recalibrate-bn", "maybe", home=tmp_path / "lab")
    assert switch.returncode == 2 and "Traceback" not in switch.stderr
    assert "argument --recalibrate-bn: expected on or off, not 'maybe'" in switch.stderr


def test_ctrl_c_stops_cleanly_and_records_a_stopped_run(tmp_path):
    home = tmp_path / "lab"
    env = dict(os.environ, MNIST_LAB_HOME=str(home))
    process = subprocess.Popen([sys.executable, "-m", "mnist_core", "train", "--epochs", "30", "--subset", "4096"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_interruptible)
    deadline = time.monotonic() + 120
    while not (home / "runs" / "1" / "run.json").exists() or not _has_events(home):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert "Stopping..." in stdout and "Run 1 stopped" in stdout, stdout + stderr
    assert "Traceback" not in stderr and process.returncode == 130


def _interruptible() -> None:
    """Ctrl-C reaches the CLI even when the tests run in a background job, which starts with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _has_events(home):
    """The study's first run has published an event; False while the CLI is still creating the store."""
    import sqlite3

    try:
        with sqlite3.connect(home / "runs.sqlite") as conn:
            return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] > 0
    except sqlite3.OperationalError:  # the file exists a moment before its tables do
        return False


def test_bad_data_folder_is_one_clear_message(tmp_path):
    out = cli("train", "--epochs", "1", "--subset", "512", "--data-dir", str(tmp_path / "missing"),
              home=tmp_path / "lab")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "failed: MNIST folder" in out.stderr and "does not exist" in out.stderr
    assert "completed" not in out.stdout


def test_a_worker_that_cannot_start_is_an_error_not_a_hang(tmp_path):
    """keras fails to import in the worker: the CLI prints the worker's error and exits 1 within seconds."""
    (tmp_path / "broken" / "keras").mkdir(parents=True)
    (tmp_path / "broken" / "keras" / "__init__.py").write_text("raise ImportError('no TensorFlow here (test)')")
    out = cli("train", "--epochs", "1", "--subset", "256", home=tmp_path / "lab",
              env={"PYTHONPATH": str(tmp_path / "broken")}, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "Run 1 failed: The training worker failed to start 3 times in a row: " \
           "ImportError: no TensorFlow here (test)" in out.stderr


def one_conv_spec(tmp_path):
    """A spec file of one conv: a study of it is 3 runs (baseline, BatchNorm on, Dropout on)."""
    from mnist_core.spec import Architecture

    path = tmp_path / "one-conv.json"
    path.write_text(Architecture.from_code("c3x10l_gap_sm").to_json())
    return str(path)


def test_study_prints_each_run_as_it_finishes_then_the_table(tmp_path):
    out = cli("study", "--spec", one_conv_spec(tmp_path), "--recipe", "quick", "--epochs", "1", "--subset", "256",
              "--seeds", "1", home=tmp_path / "lab")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Study 1: custom, 3 runs (3 variants x 1 seed), 1 epoch on 256 images"
    finished = [line for line in lines if line.startswith("[")]
    assert [line[:6] for line in finished] == ["[1/3] ", "[2/3] ", "[3/3] "]
    assert finished[1].startswith("[2/3] Ablation of custom: Add BatchNorm after conv 1, seed 0: completed, ")
    assert "Study 1 (Ablation of custom) finished: 3/3 runs done (3 completed)" in out.stdout
    table = {line.split("  ")[0]: line for line in lines}
    assert set(table) >= {"Baseline", "Add BatchNorm after conv 1", "Add Dropout after conv 1"}
    # One conv on 256 images learns nothing: each run is said to, and no verdict is drawn from it.
    assert " +40 " in table["Add BatchNorm after conv 1"] and " did not learn " in table["Add BatchNorm after conv 1"]
    assert table["Add Dropout after conv 1"].endswith("did not learn: no evidence")
    assert table["Baseline"].endswith("did not learn: no evidence")


def test_ctrl_c_stops_every_run_of_the_study(tmp_path):
    home = tmp_path / "lab"
    env = dict(os.environ, MNIST_LAB_HOME=str(home))
    process = subprocess.Popen([sys.executable, "-m", "mnist_core", "study", "--spec", one_conv_spec(tmp_path),
                                "--epochs", "30", "--subset", "4096", "--seeds", "2"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_interruptible)
    deadline = time.monotonic() + 120
    while not ((home / "runs.sqlite").exists() and _has_events(home)):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert "Stopping the study..." in stdout and "finished: 6/6 runs done (6 stopped)" in stdout, stdout + stderr
    assert "Traceback" not in stderr and process.returncode == 130
