"""Saving the current digit to the user's handwriting set, from the Predict page."""

import streamlit as st

from mnist_core.db import StoreError
from mnist_core.samples import SampleError, SampleStore
from ui import common

SAVED = "sample_saved"


def save_form(lab, digit28, predicted: int, source: str) -> None:
    """A label (the prediction, to correct) and Save: the 28x28 the model saw joins 'My handwriting'."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        label = st.selectbox("This digit is a", range(10), index=predicted, key=f"sample_label_{predicted}",
                             help="Correct the label if the model got it wrong, then save.", width=150)
        if st.button("Save to my handwriting set", icon=":material/bookmark_add:"):
            try:
                sample_id = SampleStore(lab.store, common.visitor(lab)).add(digit28, int(label), source)
            except (SampleError, StoreError) as err:
                st.error(f"Not saved: {err}")
            else:
                st.session_state[SAVED] = sample_id
        if SAVED in st.session_state:
            st.page_link("pages/handwriting.py", label=f"Saved as sample {st.session_state.pop(SAVED)}: "
                         f"see my handwriting set", icon=":material/collections:")
