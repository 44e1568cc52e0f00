"""MNIST Budget Lab's entrypoint: `streamlit run app.py`. The pages are in pages/, listed in ui/navigation.py."""

from pathlib import Path

import streamlit as st

from ui import navigation

# Served by this server: a Material icon as the tab's icon is fetched from fonts.gstatic.com, offline it fails.
ICON = Path(__file__).parent / "assets" / "icon.png"
st.set_page_config(page_title="MNIST Budget Lab", page_icon=str(ICON), layout="wide")

st.session_state[navigation.APP_RAN] = True  # a page's first run asks whether app.py is in charge
st.navigation(navigation.app_pages()).run()
