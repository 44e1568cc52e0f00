"""Predict: draw a digit or photograph one, see the 28x28 the model sees, its answer, doubts and reasons."""

import streamlit as st

from mnist_core.charts import probabilities_figure
from mnist_core.doubt import doubts
from mnist_core.links import parse_run_id
from mnist_core.catalogue import (ModelChoice, available_models, best_model, bundled_model, load_predictor,
                                  unavailable_reason)
from mnist_core.photo import MAX_BYTES, read_photo
from mnist_core.reading import ImageError, Reading, enlarge, read_canvas
from mnist_core.spec import SpecError
from mnist_core.db import StoreError
from mnist_core.weights import ModelFileError
from mnist_core.words import plural, share
from ui import common, drawing, insight, samples

DRAW, PHOTO = "Draw", "Photo"
PHOTO_READING = "photo_reading"  # (the uploaded file's id, its reading or why it cannot be read)
COMPACT_BARS = 210  # px: the bars end above a 768 px screen's bottom, beside the canvas


@st.cache_resource(max_entries=8, show_spinner="Loading the model...")
def predictor(choice: ModelChoice, modified: float):
    """Loaded once per model file version, then shared by every session."""
    return load_predictor(choice)


def load(choice: ModelChoice):
    return predictor(choice, choice.path.stat().st_mtime if choice.path.exists() else 0.0)


def read_once(photo) -> Reading:
    """The photo read once per uploaded file, refusals included: the page's every rerun reuses the reading."""
    kept = st.session_state.get(PHOTO_READING)
    if kept is None or kept[0] != photo.file_id:
        try:
            outcome = read_photo(photo.getvalue())
        except ImageError as err:
            outcome = str(err)  # the sentence alone: the error's traceback would hold the decoded pixels
        st.session_state[PHOTO_READING] = kept = (photo.file_id, outcome)
    if isinstance(kept[1], str):
        raise ImageError(kept[1])
    return kept[1]


def remember_model() -> None:
    """Keep the chosen run in the link, so a reload or a shared link predicts with the same model."""
    choice = st.session_state["model_choice"]
    st.query_params["model"] = str(choice.run_id) if choice.run_id is not None else "bundled"


notices = common.begin_page()
st.title("Predict")
lab = common.get_lab()
choices = []
if lab is not None:
    try:
        choices = available_models(lab.store)
    except StoreError as err:
        st.error(str(err))
choices = choices or [bundled_model()]
wanted = st.query_params.get("model")
linked = parse_run_id(wanted)
# A study's many runs and runs that did not learn wait behind a toggle; a model the link names is always listed.
hidden = [c for c in choices if (c.from_study or not c.learned) and c.run_id != linked]
# One row (the canvas must fit 768 px): the picker, where the digit comes from, and the toggle when it is needed.
row = st.columns([2, 1, 1] if hidden else [2, 1], vertical_alignment="bottom")
if hidden and not row[2].toggle(f"Show {len(hidden)} more", key="show_hidden_models",  # fits the column at 1024 px
                                help=f"{plural(len(hidden), 'more model')}: runs of ablation studies, and runs whose "
                                     f"test accuracy is within noise of always answering one digit (they did not "
                                     f"learn)."):
    choices = [c for c in choices if c not in hidden]
default = next((c for c in choices if (linked is not None and c.run_id == linked)
                or (wanted == "bundled" and c.run_id is None)), best_model(choices))
if linked is not None and default.run_id != linked:
    reason = unavailable_reason(lab.store, linked) if lab is not None else f"Run {linked}'s model is not available."
    st.info(f"{reason} Showing {common.plain(default.title)}.")
elif wanted and wanted != "bundled" and linked is None:  # the link's text itself is never shown
    st.info(f"The link's model is not a run number: showing {common.plain(default.title)}.")
picker, source_picker = row[:2]
choice = picker.selectbox("Model", choices, index=choices.index(default), format_func=lambda c: c.label,
                          key="model_choice", on_change=remember_model,
                          help="Default: the most accurate model so far; the bundled model works before any training.")
st.caption(choice.description)
try:
    model = load(choice)
except (ModelFileError, SpecError) as err:
    st.error(f"This model cannot be used: {common.plain(err)} Pick another model.")
    common.stop(notices)

source = source_picker.segmented_control(
    "Digit from", [DRAW, PHOTO], default=DRAW, key="digit_source", required=True,
    help="Draw with the mouse, or photograph a digit written on paper. Either is cropped, scaled and centred "
         "like MNIST.")
left, right = st.columns([1.15, 1])  # at 1024 px with the sidebar open the left one still holds 280 px
reading = problem = None
with left:
    try:
        if source == DRAW:
            st.caption("Draw one digit, any size, anywhere.")  # one line: the canvas must fit a 768 px screen
            image = drawing.canvas().image_data
            if image is not None:
                reading = read_canvas(image)
        else:
            # The widget's limit is above the photo cap, so a too-big photo reaches read_photo, which says why.
            upload = st.file_uploader(f"A photo of one digit on paper (PNG or JPEG, up to {MAX_BYTES / 1e6:.0f} MB)",
                                      type=["png", "jpg", "jpeg"], max_upload_size=common.UPLOAD_CEILING_MB)
            # The browser asks for the camera only once the user turns it on, never on opening the tab.
            camera_on = st.toggle("Use the camera", key="use_camera")
            shot = st.camera_input("Take a photo", help="Dark ink on light paper, the digit filling most of the "
                                                        "frame.") if camera_on else None
            photo = shot or upload
            if photo is not None:
                reading = read_once(photo)
                st.image([step_image for _, step_image in reading.steps],
                         caption=[name for name, _ in reading.steps], width=110)
    except ImageError as err:
        problem = f"This image cannot be read: {err}"
digit28 = reading.digit28 if reading is not None else None

with right:  # the answer beside the input, where the eye is: refusals too
    if problem:
        st.error(problem)
    elif digit28 is None:
        st.info("Draw a digit on the black square to see what the model thinks." if source == DRAW else
                "Upload or take a photo of one digit to see what the model thinks.")
    else:
        probabilities = model.probabilities(digit28)
        digit = int(probabilities.argmax())
        reasons = doubts(reading.ink, probabilities)
        answer = st.columns([1, 2], vertical_alignment="center")
        answer[0].image(enlarge(digit28, 3), caption="What the model sees (28x28)")
        answer[1].metric("Best guess" if reasons else "Prediction", str(digit))
        answer[1].write(f"{share(probabilities[digit])} confident")
        for reason in reasons:  # right under the answer: on a 768 px projector the bars' end may be cut, not this
            st.warning(reason)
        st.plotly_chart(probabilities_figure(probabilities, height=COMPACT_BARS), width="stretch",
                        config={"displayModeBar": False})
        if reading.strokes is not None:
            st.caption(reading.strokes.text())

if digit28 is not None:
    if lab is not None:
        samples.save_form(lab, digit28, digit, "canvas" if source == DRAW else "photo")
    st.subheader("What the model sees")
    others = [c for c in choices if c != choice]
    compare = st.selectbox("Side by side with", [None, *others], key="compare_choice",
                           format_func=lambda c: "no second model" if c is None else c.label)
    columns = st.columns(2)
    insight.answer(columns[0], choice.title, model, digit28)
    if compare is not None:
        try:
            insight.answer(columns[1], compare.title, load(compare), digit28)
        except (ModelFileError, SpecError) as err:
            columns[1].error(f"{common.plain(compare.title)} cannot be used: {err}")
    with st.expander("Feature maps of every conv layer"):
        insight.feature_maps(model, digit28)
common.end_page(notices)
