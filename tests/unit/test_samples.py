"""The user's own labelled digits: storage, durable copies, rebuild, export/import and its validation."""

import io
import os
import pickle
import sqlite3
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from mnist_core.budget import summarize
from mnist_core.runs import RunStore
from mnist_core.samples import Imported, SampleError, SampleStore
from mnist_core.spec import PRESETS
from tests.conftest import ROOT


def sample_store(home) -> SampleStore:
    return SampleStore(RunStore(home))


def add_digits(samples: SampleStore, mnist, indices, source="canvas") -> list[int]:
    return [samples.add(mnist.x_test[i], int(mnist.y_test[i]), source) for i in indices]


def snapshot(samples: SampleStore) -> list[tuple]:
    """Everything a sample holds, comparable with ==."""
    return [(s.id, s.label, s.source, s.created_at, s.image.tobytes()) for s in samples.list()]


def npz(compressed=False, **arrays) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def test_samples_round_trip_list_get_delete(lab_home, mnist):
    """Added digits come back pixel for pixel, newest first, filtered by label; a delete removes the file."""
    samples = sample_store(lab_home)
    ids = add_digits(samples, mnist, range(6), source="photo")
    float_id = samples.add(mnist.x_test[6] / 255.0, int(mnist.y_test[6]), "canvas")
    assert [s.id for s in samples.list()] == [float_id, *reversed(ids)] and samples.count() == 7
    for index, sample_id in enumerate([*ids, float_id]):
        sample = samples.get(sample_id)
        assert np.array_equal(sample.image, mnist.x_test[index]) and sample.image.dtype == np.uint8
        assert sample.label == mnist.y_test[index] and samples.path(sample_id).is_file()
    assert samples.get(float_id).source == "canvas" and samples.get(ids[0]).source == "photo"
    label = int(mnist.y_test[0])
    expected = [i for i in [float_id, *reversed(ids)] if samples.get(i).label == label]
    assert [s.id for s in samples.list(label)] == expected and samples.count(label) == len(expected)
    samples.delete(ids[2])
    assert samples.get(ids[2]) is None and not samples.path(ids[2]).exists() and samples.count() == 6


@pytest.mark.parametrize("image, label, source, message", [
    (np.zeros((28, 27), np.uint8), 3, "canvas", "a 28x28 image"),
    (np.full((28, 28), 2.0), 3, "canvas", "floats outside 0-1"),
    (np.zeros((28, 28), np.int64), 3, "canvas", "uint8 0-255 or float 0-1, not int64"),
    (np.zeros((28, 28), np.uint8), 10, "canvas", "digit 0-9, not 10"),
    (np.zeros((28, 28), np.uint8), True, "canvas", "digit 0-9, not True"),
    (np.zeros((28, 28), np.uint8), 3, "scan", "'canvas' or 'photo', not 'scan'"),
])
def test_a_bad_sample_is_refused_and_nothing_is_added(lab_home, image, label, source, message):
    samples = sample_store(lab_home)
    with pytest.raises(SampleError, match=message):
        samples.add(image, label, source)
    assert samples.count() == 0 and not list(samples.folder.glob("*"))


def test_ids_are_never_reused_and_a_leftover_file_never_attaches(lab_home, mnist):
    samples = sample_store(lab_home)
    first, newest = add_digits(samples, mnist, range(2))
    samples.delete(newest)
    assert add_digits(samples, mnist, [2]) == [newest + 1]
    samples.path(7).write_bytes(b"left behind by a failed delete")
    assert add_digits(samples, mnist, [3]) == [8] and samples.get(8).label == mnist.y_test[3]


def test_samples_survive_reopening_the_store(lab_home, mnist):
    samples = sample_store(lab_home)
    add_digits(samples, mnist, range(4))
    before = snapshot(samples)
    assert snapshot(sample_store(lab_home)) == before


def test_samples_survive_a_corrupted_database_being_rebuilt(lab_home, mnist):
    """The damaged index is rebuilt from samples/<id>.png; a damaged file costs only its own sample."""
    runs = RunStore(lab_home)
    summary = summarize(PRESETS["seed-final"])
    runs.create_run("seed-final", PRESETS["seed-final"], {"epochs": 1}, summary.total, summary.trainable)
    samples = SampleStore(runs)
    ids = add_digits(samples, mnist, range(3)) + add_digits(samples, mnist, range(3, 5), source="photo")
    samples.delete(ids[1])
    before = snapshot(samples)
    samples.path(50).write_bytes(b"not a PNG")
    runs.db_path.write_bytes(b"this is not an SQLite database" * 100)
    reopened = RunStore(lab_home)
    assert "rebuilt from 1 run folder and 4 sample files" in reopened.notice
    rebuilt = SampleStore(reopened)
    assert snapshot(rebuilt) == before and len(reopened.list()) == 1
    assert add_digits(rebuilt, mnist, [5]) == [51]


def test_a_database_from_before_samples_gains_the_table_and_keeps_its_runs(lab_home, mnist):
    runs = RunStore(lab_home)
    summary = summarize(PRESETS["seed-final"])
    run_id = runs.create_run("old", PRESETS["seed-final"], {"epochs": 1}, summary.total, summary.trainable)
    with sqlite3.connect(runs.db_path) as conn:
        conn.execute("DROP TABLE samples")
    conn.close()
    samples = sample_store(lab_home)
    assert add_digits(samples, mnist, [0]) == [1] and [run.id for run in samples.runs.list()] == [run_id]


def test_export_then_import_into_an_empty_home_gives_the_same_set(tmp_path, mnist):
    samples = sample_store(tmp_path / "a")
    add_digits(samples, mnist, range(10))
    add_digits(samples, mnist, range(10, 15), source="photo")
    data = samples.export_npz()
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        assert arrays["images"].shape == (15, 28, 28) and arrays["images"].dtype == np.uint8
        assert arrays["labels"].dtype == np.uint8 and list(arrays["sources"][-2:]) == ["photo", "photo"]
    other = sample_store(tmp_path / "b")
    assert other.import_npz(data) == Imported(list(range(1, 16)), 0)
    assert [(s.label, s.source, s.image.tobytes()) for s in other.list()] == \
        [(s.label, s.source, s.image.tobytes()) for s in samples.list()]
    assert other.import_npz(data) == Imported([], 15) and other.count() == 15  # the same file twice: once


def test_an_import_adds_each_sample_once(lab_home, mnist):
    """A sample the set holds (same label and pixels) or one the file repeats is skipped; the same pixels
    under another label are another sample."""
    samples = sample_store(lab_home)
    add_digits(samples, mnist, [0, 1])
    images = mnist.x_test[[0, 1, 2, 2, 0]]
    labels = np.array([mnist.y_test[0], mnist.y_test[1], mnist.y_test[2], mnist.y_test[2],
                       (mnist.y_test[0] + 1) % 10], dtype=np.uint8)
    assert samples.import_npz(npz(images=images, labels=labels)) == Imported([3, 4], 3)
    assert samples.count() == 4


def test_an_import_that_fails_while_saving_adds_nothing(lab_home, mnist, monkeypatch):
    """A disk error on the third file rolls back the rows and removes the files already placed."""
    samples = sample_store(lab_home)
    add_digits(samples, mnist, [0])
    data = npz(images=mnist.x_test[:5], labels=mnist.y_test[:5])
    real_replace, calls = os.replace, []

    def failing_replace(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(SampleError, match="No space left on device.*nothing was added"):
        samples.import_npz(data)
    monkeypatch.undo()
    assert samples.count() == 1 and [path.name for path in samples.folder.iterdir()] == ["1.png"]


def test_a_set_holds_at_most_2000_samples_and_says_how_many_more_fit(lab_home, mnist):
    """An import past 2,000 in all is refused saying how many fit; a full set refuses one more; nothing is added."""
    samples = sample_store(lab_home)
    add_digits(samples, mnist, range(5))
    images, labels = mnist.x_test[5:2_005], mnist.y_test[5:2_005]  # distinct from the 5 held
    with pytest.raises(SampleError, match="^Only 1,995 more samples fit, not 2,000: a set holds at most 2,000 and "
                                          "yours has 5; delete some, or import a smaller file.$"):
        samples.import_npz(npz(images=images, labels=labels))
    assert samples.count() == 5 and len(list(samples.folder.iterdir())) == 5
    samples.import_npz(npz(images=images[:1_995], labels=labels[:1_995]))
    full = "^Your set is full: it holds 2,000 samples, the most a set can; delete some first.$"
    with pytest.raises(SampleError, match=full):
        add_digits(samples, mnist, [0])
    with pytest.raises(SampleError, match=full):
        samples.import_npz(npz(images=mnist.x_test[3_000:3_001], labels=mnist.y_test[3_000:3_001]))
    assert samples.count() == 2_000 and len(list(samples.folder.iterdir())) == 2_000


def declared_only(key: str, descr: str, shape: tuple, **arrays) -> bytes:
    """An .npz whose `key` has only a .npy header declaring `shape` of `descr`, and no data."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
        archive.writestr(f"{key}.npy", header.getvalue())
    return buffer.getvalue()


FIVE = np.zeros((5, 28, 28), np.uint8)
LABELS = np.array([1, 2, 3, 4, 5], np.uint8)
BAD_FILES = {
    "not a zip": (lambda: b"images,labels\n0,1\n", "not a .npz archive"),
    "a pickle": (lambda: pickle.dumps({"images": FIVE, "labels": LABELS}), "not a .npz archive"),
    "object arrays": (lambda: npz(images=FIVE, labels=np.array(list(LABELS), dtype=object)),
                      "'labels' holds Python objects \\(a pickle\\)"),
    "no labels": (lambda: npz(images=FIVE), "no 'labels' array"),
    "no images": (lambda: npz(labels=LABELS), "no 'images' array"),
    "27 pixels wide": (lambda: npz(images=FIVE[:, :, :27], labels=LABELS), "'images' has shape \\(5, 28, 27\\)"),
    "labels 2-D": (lambda: npz(images=FIVE, labels=LABELS[:, None]),
                   "'labels' has shape \\(5, 1\\); expected \\(5,\\)"),
    "a label short": (lambda: npz(images=FIVE, labels=LABELS[:4]), "'labels' has shape \\(4,\\); expected \\(5,\\)"),
    "label 10": (lambda: npz(images=FIVE, labels=np.array([1, 2, 10, 4, 5])), "sample 2 is labelled 10"),
    "label -1": (lambda: npz(images=FIVE, labels=np.array([-1, 2, 3, 4, 5], np.int8)), "sample 0 is labelled -1"),
    "float labels": (lambda: npz(images=FIVE, labels=LABELS.astype(float)), "'labels' must be integers"),
    "int64 images": (lambda: npz(images=FIVE.astype(np.int64), labels=LABELS), "not int64"),
    "images 0-255 as floats": (lambda: npz(images=FIVE + 255.0, labels=LABELS), "floats outside 0-1"),
    "unknown source": (lambda: npz(images=FIVE, labels=LABELS, sources=np.array(["photo"] * 4 + ["scan"])),
                       "sample 4 has 'scan'"),
    "no samples": (lambda: npz(images=FIVE[:0], labels=LABELS[:0]), "holds no samples"),
    "2,001 samples": (lambda: npz(True, images=np.zeros((2_001, 28, 28), np.uint8), labels=np.zeros(2_001, int)),
                      "2,001 samples; a set holds at most 2,000"),
    "over 5 MB": (lambda: npz(images=np.zeros((7_000, 28, 28), np.uint8), labels=np.zeros(7_000, np.uint8)),
                  "5.2 MB; at most 5 MB"),
    "zip bomb": (lambda: declared_only("sources", "<U10000000", (5,), images=FIVE, labels=LABELS),
                        "'sources' declares 191 MB of data; at most 12 MB"),
    "truncated data": (lambda: declared_only("images", "|u1", (5, 28, 28), labels=LABELS), "cannot be read"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_npz_is_refused_with_a_clear_message_and_adds_nothing(lab_home, mnist, case):
    make, message = BAD_FILES[case]
    samples = sample_store(lab_home)
    add_digits(samples, mnist, [0])
    with pytest.raises(SampleError, match=message):
        samples.import_npz(make())
    assert samples.count() == 1 and [path.name for path in samples.folder.iterdir()] == ["1.png"]


WRITER = """
import sys
import numpy as np
from mnist_core.runs import RunStore
from mnist_core.samples import SampleStore
samples = SampleStore(RunStore(sys.argv[1]))
for step in range(150):
    samples.add(np.full((28, 28), step, np.uint8), step % 10, "canvas")
"""


def test_readers_see_samples_while_another_process_writes(lab_home):
    """WAL mode: listing and counting never fail while a second process adds samples."""
    samples = sample_store(lab_home)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(lab_home)], cwd=ROOT)
    counts = []
    while writer.poll() is None:
        counts.append(samples.count())
        assert len(samples.list()) >= counts[-1]
    assert writer.returncode == 0 and counts == sorted(counts) and samples.count() == 150
    assert [s.image[0, 0] for s in samples.list()[:3]] == [149, 148, 147]
