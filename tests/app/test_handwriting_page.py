"""My handwriting in AppTest: an empty set, saved samples as a grid, delete, import/export, judging every model."""

import io

import numpy as np

from mnist_core.catalogue import bundled_model, load_predictor
from mnist_core.runs import RunStore
from mnist_core.samples import SampleStore
from tests.app.conftest import texts


def saved_digits(home, mnist, count=12, wrong_every=4):
    """MNIST test digits saved as samples; every `wrong_every`-th is given a wrong label on purpose."""
    samples = SampleStore(RunStore(home))
    labels = []
    for index in range(count):
        label = int(mnist.y_test[index]) if index % wrong_every else (int(mnist.y_test[index]) + 1) % 10
        samples.add(mnist.x_test[index], label, "canvas")
        labels.append(label)
    return labels


def npz(images, labels) -> bytes:
    """A sample set file, as export_npz writes one."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, labels=labels)
    return buffer.getvalue()


def test_an_empty_set_says_how_to_fill_it(app):
    at = app("handwriting")
    assert any("No samples yet" in text for text in texts(at.info))


def test_judging_every_model_counts_the_wrong_samples(app, lab_home, mnist):
    labels = saved_digits(lab_home, mnist)
    at = app("handwriting")
    assert any(text.startswith("12 samples") for text in texts(at.caption))
    next(b for b in at.button if b.label == "Evaluate every model").click().run()
    table = at.dataframe[0].value
    model = load_predictor(bundled_model())
    predicted = [int(model.probabilities(mnist.x_test[i] / 255.0).argmax()) for i in range(12)]
    wrong = sum(p != label for p, label in zip(predicted, labels))
    assert list(table["model"]) == [bundled_model().label]
    assert list(table["wrong"]) == [str(wrong)] and list(table["of"]) == [12]
    assert list(table["accuracy"]) == [f"{(12 - wrong) / 12:.2%}"]
    assert len(at.image) == 12 + wrong  # the grid, then the samples this model misreads


def test_deleting_a_sample_and_a_bad_import_keep_the_rest(app, lab_home, mnist):
    saved_digits(lab_home, mnist, count=3)
    at = app("handwriting")
    newest = SampleStore(RunStore(lab_home)).list()[0].id
    at.multiselect[0].set_value([newest]).run()
    next(b for b in at.button if b.label == "Delete 1 sample").click().run()
    assert SampleStore(RunStore(lab_home)).count() == 2
    at.file_uploader[0].upload("bad.npz", b"not an npz")
    next(b for b in at.button if b.label == "Import").click().run()
    assert any(text.startswith("Not imported: The file is not a .npz archive") for text in texts(at.error))
    assert SampleStore(RunStore(lab_home)).count() == 2


def test_an_exported_set_imports_into_another_lab(app, lab_home, mnist, tmp_path):
    saved_digits(lab_home, mnist, count=5)
    exported = SampleStore(RunStore(lab_home)).export_npz()
    other = tmp_path / "other-lab"
    at = app("handwriting")
    assert np.load(io.BytesIO(exported))["images"].shape == (5, 28, 28)
    SampleStore(RunStore(other)).import_npz(exported)
    assert [s.label for s in SampleStore(RunStore(other)).list()] == [s.label for s in SampleStore(RunStore(lab_home)).list()]
    at.file_uploader[0].upload("mine.npz", exported)  # the set's own export: nothing new in it
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception
    assert "Imported 0 samples; skipped 5 samples your set already holds." in texts(at.success)
    assert SampleStore(RunStore(lab_home)).count() == 5


def test_a_large_set_is_drawn_a_page_at_a_time(app, lab_home, mnist):
    """150 samples: the grid draws the first 100, then the last 50 on page 2; deleting those leaves one page."""
    samples = SampleStore(RunStore(lab_home))
    samples.import_npz(npz(mnist.x_test[:150], mnist.y_test[:150]))
    at = app("handwriting")
    assert len(at.image) == 100
    at.number_input(key="sample_page_all").set_value(2).run()
    assert len(at.image) == 50
    at.multiselect[0].set_value([sample.id for sample in samples.list()[100:]]).run()  # newest first: page 2
    next(b for b in at.button if b.label == "Delete 50 samples").click().run()
    assert samples.count() == 100 and len(at.image) == 100 and not at.number_input


def test_a_models_misreadings_show_the_100_most_confident(app, lab_home, mnist):
    """150 samples all labelled wrong: the page draws 100 of them and the 100 the model misreads most confidently."""
    SampleStore(RunStore(lab_home)).import_npz(npz(mnist.x_test[:150], (mnist.y_test[:150] + 1) % 10))
    at = app("handwriting")
    next(b for b in at.button if b.label == "Evaluate every model").click().run()
    assert "The 100 most confident of its 150 misreadings:" in texts(at.caption)
    assert len(at.image) == 100 + 100
    confidences = [int(image.captions[0].rsplit("(", 1)[1].rstrip("%)")) for image in at.image[100:]]
    assert confidences == sorted(confidences, reverse=True)


def test_import_without_a_file_says_what_to_do(app):
    """Import pressed before a file (or a big file's upload) was there did nothing at all."""
    at = app("handwriting")
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception
    assert "Not imported: choose a .npz file first, and wait until it shows as uploaded." in texts(at.error)
