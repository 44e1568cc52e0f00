"""The Runs page's error analysis of one run: confusion matrix, per-class accuracy, its worst mistakes."""

from pathlib import Path

import streamlit as st

from mnist_core import config
from mnist_core.analysis import AnalysisError, analyse_run, load_analysis
from mnist_core.charts import confusion_figure, per_class_figure
from mnist_core.data import MnistDataError, load_mnist
from mnist_core.reading import enlarge

GALLERY = 30  # the most confident mistakes shown; the rest are in the confusion matrix
COLUMNS = 10
KERAS_CACHE = Path.home() / ".keras" / "datasets"  # where Keras keeps the MNIST it downloaded


@st.cache_resource(show_spinner="Loading the MNIST test digits...")
def test_digits():
    """The verified MNIST arrays, read without TensorFlow: the configured folder, else Keras' cached copy."""
    folder = config.data_dir() or (KERAS_CACHE if (KERAS_CACHE / "mnist.npz").exists() else None)
    return load_mnist(folder) if folder is not None else None


def mistakes(lab, run, has_model: bool) -> None:
    """Where the run's model goes wrong on the test set, evaluated on demand for runs trained before."""
    st.subheader(f"Run {run.id}'s mistakes on the 10,000 test digits")
    try:
        analysis = load_analysis(lab.store, run.id)
        data = test_digits()
    except (AnalysisError, MnistDataError) as err:
        st.error(str(err))
        return
    if analysis is None:
        if not has_model:
            st.caption("No model, so nothing to analyse.")
            return
        if data is None:
            st.caption("The test digits are not on this machine yet: train once (Keras downloads MNIST), "
                       "or set MNIST_DATA_DIR.")
            return
        if not st.button("Analyse this run's mistakes", key=f"analyse_{run.id}"):
            return
        try:
            with st.spinner("Reading the 10,000 test digits with this model..."):
                analysis = analyse_run(lab.store, run.id, data)
        except (AnalysisError, OSError, ValueError) as err:
            st.error(f"The analysis failed: {err}")
            return
    wrong = analysis.total - analysis.correct
    st.write(f"{analysis.accuracy:.2%} right: {wrong:,} of {analysis.total:,} test digits misread.")
    # One above the other: side by side at 1024 px their numbers shrank to ~6 px, unreadable on a projector.
    st.plotly_chart(confusion_figure(analysis.confusion), width="stretch", key=f"confusion_{run.id}")
    st.plotly_chart(per_class_figure(analysis.per_class_accuracy), width="stretch", key=f"per_class_{run.id}")
    if data is None:
        return
    st.caption(f"The {min(GALLERY, wrong)} most confident mistakes: true digit → what the model said.")
    shown = analysis.mistakes[:GALLERY]
    for start in range(0, len(shown), COLUMNS):
        for cell, mistake in zip(st.columns(COLUMNS), shown[start:start + COLUMNS]):
            cell.image(enlarge(data.x_test[mistake.index] / 255.0, 2),
                       caption=f"{mistake.true} → {mistake.predicted} ({mistake.confidence:.0%})")
