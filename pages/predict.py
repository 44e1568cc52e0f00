"""Predict: draw a digit, see the 28x28 the model sees, its answer, its doubts and the ten probabilities."""

import streamlit as st

from mnist_core.charts import probabilities_figure
from mnist_core.doubt import doubts
from mnist_core.predict import (
    ImageError,
    ModelChoice,
    ModelFileError,
    available_models,
    best_model,
    bundled_model,
    enlarge,
    ink,
    load_predictor,
)
from mnist_core.spec import SpecError
from mnist_core.store import StoreError
from pages import common, drawing


@st.cache_resource(max_entries=8, show_spinner="Loading the model...")
def predictor(choice: ModelChoice, modified: float):
    """Loaded once per model file version, then shared by every session."""
    return load_predictor(choice)


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
default = next((c for c in choices if str(c.run_id) == wanted or (wanted == "bundled" and c.run_id is None)),
               best_model(choices))
choice = st.selectbox("Model", choices, index=choices.index(default), format_func=lambda c: c.label,
                      key="model_choice", on_change=remember_model,
                      help="Default: the most accurate model so far; the bundled model works before any training.")
st.caption(choice.description)
try:
    model = predictor(choice, choice.path.stat().st_mtime if choice.path.exists() else 0.0)
except (ModelFileError, SpecError) as err:
    st.error(f"This model cannot be used: {err} Pick another model.")
    common.stop(notices)

left, right = st.columns([1.15, 1])  # at 1024 px with the sidebar open the left one still holds 280 px
with left:
    st.caption("Draw one digit, large or small, anywhere: it is cropped, scaled and centred like MNIST.")
    canvas = drawing.canvas()

try:
    image = canvas.image_data
    prediction = model.predict(image) if image is not None else None
except ImageError as err:
    st.error(f"The canvas image could not be read: {err}")
    common.stop(notices)
with right:
    if prediction is None:
        st.info("Draw a digit on the black square to see what the model thinks.")
    else:
        reasons = doubts(ink(image), prediction.probabilities)
        answer = st.columns([1, 2], vertical_alignment="center")
        answer[0].image(enlarge(prediction.image, 4), caption="What the model sees (28x28)")
        answer[1].metric("Best guess" if reasons else "Prediction", str(prediction.digit))
        answer[1].write(f"{prediction.confidence:.1%} confident")
        for reason in reasons:
            st.warning(reason)
        st.plotly_chart(probabilities_figure(prediction.probabilities), width="stretch",
                        config={"displayModeBar": False})
common.end_page(notices)
