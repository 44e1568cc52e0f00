"""The Predict page in AppTest with a photographed digit: the steps, the answer, saving it with a
corrected label, what the model sees, a second model side by side, and bad uploads."""

import io

import mnist_core.photo

from PIL import Image, ImageDraw

from mnist_core.catalogue import bundled_model
from mnist_core.runs import RunStore
from mnist_core.samples import SampleStore
from tests.app.conftest import metrics, texts
from tests.app.test_other_pages import BUNDLED, finished_run


def photo_of_a_one() -> bytes:
    """Dark ink on light paper, as a phone would see a '1' written with a marker."""
    paper = Image.new("L", (400, 300), 215)
    ImageDraw.Draw(paper).line([(205, 50), (200, 150), (196, 250)], fill=50, width=16)
    out = io.BytesIO()
    paper.convert("RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


def open_photo(app, data: bytes, name="digit.jpg"):
    at = app("predict")
    at.segmented_control(key="digit_source").set_value("Photo").run()
    at.file_uploader[0].upload(name, data, "image/jpeg").run()
    return at


def test_a_photo_is_read_step_by_step_and_saved_with_a_corrected_label(app, lab_home):
    at = open_photo(app, photo_of_a_one())
    assert metrics(at)["Prediction"] == "1"
    assert len(at.image) >= 3  # the photo's steps, then the 28x28 the model saw
    assert "What the model sees" in texts(at.subheader)
    label = at.selectbox(key="sample_label_1")
    label.set_value(7).run()
    next(b for b in at.button if b.label == "Save to my handwriting set").click().run()
    saved = SampleStore(RunStore(lab_home)).list()
    assert [(sample.label, sample.source) for sample in saved] == [(7, "photo")]
    assert any(link.proto.label.startswith(f"Saved as sample {saved[0].id}") for link in at.get("page_link"))


def test_a_second_model_reads_the_same_digit_side_by_side(app, lab_home):
    finished_run(lab_home, name=BUNDLED, accuracy=0.97, model_from=bundled_model().path)
    at = open_photo(app, photo_of_a_one())
    charts_alone = len(at.get("plotly_chart"))
    at.selectbox(key="compare_choice").select_index(1).run()
    assert len(at.get("plotly_chart")) == charts_alone + 1
    assert sum(f"Run 1: {BUNDLED}" in text for text in texts(at.markdown)) == 1


def test_bad_uploads_get_one_clear_message(app):
    """The refusal takes the answer's place: no 'Upload or take a photo' beside it, as if nothing was sent."""
    at = open_photo(app, b"this is not an image", name="notes.jpg")
    assert texts(at.error) == ["This image cannot be read: This file is not a PNG or JPEG image."]
    assert "Upload or take a photo of one digit to see what the model thinks." not in texts(at.info)


def test_the_camera_is_asked_for_only_once_turned_on(app):
    """st.camera_input makes the browser ask for the camera as it renders: the Photo tab alone must not."""
    at = app("predict")
    at.segmented_control(key="digit_source").set_value("Photo").run()
    assert not at.get("camera_input") and at.toggle(key="use_camera").value is False
    at.toggle(key="use_camera").set_value(True).run()
    assert len(at.get("camera_input")) == 1
    at.toggle(key="use_camera").set_value(False).run()
    assert not at.get("camera_input")


def test_an_upload_is_read_once_however_often_the_page_reruns(app, monkeypatch):
    """Reruns (a label picked, any widget touched) reuse the upload's reading, or its refusal: no second decode."""
    reads, read_photo = [], mnist_core.photo.read_photo
    monkeypatch.setattr(mnist_core.photo, "read_photo", lambda data: reads.append(len(data)) or read_photo(data))
    at = open_photo(app, photo_of_a_one())
    at.selectbox(key="sample_label_1").set_value(7).run()
    at.run()
    assert len(reads) == 1 and metrics(at)["Prediction"] == "1"
    at.file_uploader[0].upload("notes.jpg", b"this is not an image", "image/jpeg").run()
    at.run()
    assert len(reads) == 2
    assert [text for text in texts(at.error) if text.startswith("This image cannot be read:")] == [
        "This image cannot be read: This file is not a PNG or JPEG image."]
