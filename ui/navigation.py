"""The app's pages, listed once: app.py's navigation, and the way a page's own link reaches it."""

from __future__ import annotations

import streamlit as st

from mnist_core import config

APP_RAN = "app_navigation_ran"  # app.py sets it before running its navigation, on every run


def app_pages() -> list[st.Page]:
    """Every page of the app, in the sidebar's order (made per run: a Page resolves its file against app.py)."""
    return [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/architecture.py", title="Architecture", icon=":material/account_tree:"),
        st.Page("pages/train.py", title="Train", icon=":material/monitoring:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/draw:"),
        st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
        st.Page("pages/studies.py", title="Studies", icon=":material/science:"),
        st.Page("pages/frontier.py", title="Frontier", icon=":material/scatter_plot:"),
        st.Page("pages/handwriting.py", title="My handwriting", icon=":material/collections:"),
        *([st.Page("pages/board.py", title="Class board", icon=":material/leaderboard:")]
          if config.teacher_passcode() else []),  # a board needs a class
    ]


def ensure_app_navigation() -> None:
    """Put app.py in charge when a server's very first visitor opens a page's own link (/train).

    With a `pages/` folder beside app.py, Streamlit runs that first request's page file on its own
    (its old folder-based mode, with a sidebar listing every file in `pages/`) until some script has
    called `st.navigation`. Calling it here ends that mode for the whole server; the rerun then goes
    through app.py. Once per session: AppTest runs page files on their own after app.py's first run.
    """
    if APP_RAN in st.session_state:
        return
    st.session_state[APP_RAN] = True  # a rerun that still misses app.py must not loop
    st.navigation(app_pages(), position="hidden")
    st.rerun()
