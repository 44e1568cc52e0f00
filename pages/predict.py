"""Predict: draw a digit, see the 28x28 the model sees and its ten probabilities."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mnist_core.charts import probabilities_figure
from mnist_core.predict import (
    ImageError,
    ModelChoice,
    ModelFileError,
    available_models,
    bundled_model,
    enlarge,
    load_predictor,
)
from mnist_core.spec import SpecError
from mnist_core.store import StoreError
from pages import common

CANVAS = 280  # 10x MNIST's 28 pixels
BRUSH = 20  # MNIST strokes are about 2 px of 28, so 20 px of 280


@st.cache_resource(max_entries=8, show_spinner="Loading the model...")
def predictor(choice: ModelChoice, modified: float):
    """Loaded once per model file version, then shared by every session."""
    return load_predictor(choice)


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
choice = st.selectbox("Model", choices, format_func=lambda c: c.label,
                      help="Default: the most recent completed run; the bundled model works before any training.")
try:
    model = predictor(choice, choice.path.stat().st_mtime if choice.path.exists() else 0.0)
except (ModelFileError, SpecError) as err:
    st.error(f"This model cannot be used: {err} Pick another model.")
    common.stop(notices)

st.session_state.setdefault("canvas_version", 0)
left, middle, right = st.columns([1.2, 0.8, 1.5])
with left:
    st.caption("Draw one digit, large and centred or not: it is cropped, scaled and centred like MNIST.")
    canvas = st_canvas(stroke_width=BRUSH, stroke_color="#FFFFFF", background_color="#000000", height=CANVAS,
                       width=CANVAS, drawing_mode="freedraw", return_image_data=True,
                       key=f"canvas_{st.session_state.canvas_version}")
    if st.button("Clear"):
        st.session_state.canvas_version += 1
        st.rerun()

try:
    prediction = model.predict(canvas.image_data) if canvas.image_data is not None else None
except ImageError as err:
    st.error(f"The canvas image could not be read: {err}")
    common.stop(notices)
if prediction is None:
    middle.info("Draw a digit on the black square to see what the model thinks.")
else:
    middle.image(enlarge(prediction.image), caption="What the model sees (28x28)", width=140)
    middle.metric("Prediction", str(prediction.digit), f"{prediction.confidence:.1%} confident",
                  delta_color="off")
    right.plotly_chart(probabilities_figure(prediction.probabilities), width="stretch",
                       config={"displayModeBar": False})
common.end_page(notices)
