"""Streamlit glue shared by the pages: the session's architecture and budget, the URL, cached resources."""

from __future__ import annotations

import atexit
import re
from urllib.parse import urlencode

import streamlit as st

from mnist_core import charts, config
from mnist_core.budget import Budget
from mnist_core.db import StoreError
from mnist_core.jobs import Lab
from mnist_core.links import parse_budget
from mnist_core.predict import limit_blas_threads
from mnist_core.recipe import Recipe
from mnist_core.spec import DEFAULT_PRESET, PRESETS, Architecture, SpecError
from mnist_core.classroom import Visitor
from ui import identity, navigation

limit_blas_threads()  # the server's numpy forward passes are small: threads only contend
# Once, while this module loads (every session's script waits for that): the first sessions of a fresh server
# once built Plotly figures at the same time and one saw "partially initialized module 'pandas'".
charts.import_lazy_parts()

# Every uploader takes what the server takes (maxUploadSize in .streamlit/config.toml): the core refuses a file
# over its own cap in words, where the uploader would only show a red mark.
UPLOAD_CEILING_MB = 25
ARCH, BUDGET, LAST_CHANGE, NOTICE, GENERATION = "arch", "budget", "last_change", "notice", "widget_generation"


# Streamlit leaves 6rem above every page's title: on a 768 px projector half of it goes to the content instead.
COMPACT_TOP = "<style>[data-testid='stMainBlockContainer'] { padding-top: 3rem; }</style>"


def begin_page():
    """Every page starts here: session state from the link, who you are in a class, a slot for messages.

    It also makes the server's Lab on the first page anyone opens, whose keeper thread then trains
    queued runs (those a restart left too) without waiting for someone to open the Train page.
    """
    navigation.ensure_app_navigation()
    init_state()
    write_url()  # early too: a quick click elsewhere must not leave with a link that lost the network
    st.html(COMPACT_TOP)
    try:
        lab = _lab(str(config.lab_home()))
    except (StoreError, config.ConfigError):
        lab = None  # the page that needs the Lab says why (get_lab)
    if lab is not None:
        identity.sidebar(lab)
    return st.container()


def end_page(notices) -> None:
    """Every page ends here: show messages its callbacks left, and mirror the state into the URL."""
    with notices:
        show_notices()
    write_url()


def stop(notices) -> None:
    """End the page early (st.stop), still showing messages and keeping the URL."""
    end_page(notices)
    st.stop()


def init_state() -> None:
    """On a session's first run, take the architecture and budget from the link, else the default."""
    if ARCH in st.session_state:
        return
    arch, budget = PRESETS[DEFAULT_PRESET], Budget()
    params = st.query_params
    if "arch" in params:
        try:
            arch = Architecture.from_code(params["arch"])
        except SpecError as err:
            notify(f"The link's architecture could not be used: {err} Showing {arch.name}.")
    linked = parse_budget(params.get("budget"), params.get("count"))
    if linked is None:
        notify("The link's budget could not be used; showing the default 15,000 total params.")
    budget = linked or budget
    st.session_state[ARCH], st.session_state[BUDGET] = arch, budget
    st.session_state.setdefault(GENERATION, 0)


def link_params() -> dict[str, str]:
    """The query parameters that reproduce the session's architecture and budget."""
    arch, budget = current_arch(), current_budget()
    return {"arch": arch.to_code(), "budget": str(budget.limit), "count": budget.counting}


def write_url() -> None:
    """Mirror the architecture and budget into the query string, so the link reproduces them."""
    # Sent on every run, not only on change: a page switch can drop the browser's query string while
    # the server still holds the same values, and a reload would then open the default network.
    st.query_params.update(link_params())


def share_link() -> str:
    """The address of the page the browser shows, with the query that reproduces the architecture and budget."""
    page = st.context.url or ""  # without a browser (AppTest) the link is relative to the page
    return f"{page}?{urlencode(link_params())}"


def current_arch() -> Architecture:
    return st.session_state[ARCH]


def current_budget() -> Budget:
    return st.session_state[BUDGET]


def set_arch(arch: Architecture, change: str | None = None) -> None:
    """Make `arch` the session's architecture; `change` describes the edit for the counter."""
    st.session_state[ARCH] = arch
    st.session_state[LAST_CHANGE] = change
    st.session_state[GENERATION] = st.session_state.get(GENERATION, 0) + 1  # fresh widgets show `arch`


def set_budget(budget: Budget) -> None:
    """Make `budget` the session's, and the Architecture page's budget fields show it."""
    st.session_state[BUDGET] = budget
    # Set, not removed: a removed value leaves the browser showing the old budget, and its next message restores it.
    st.session_state["budget_limit"], st.session_state["budget_counting"] = budget.limit, budget.counting


def plain(text: str) -> str:
    """A user's string (a spec, run or study name) made safe for Streamlit's markdown: shown literally on one
    line, never as a link, an image, emphasis, a colour or an icon."""
    text = " ".join(str(text).split())
    # Streamlit's markdown links bare addresses after the escapes are read: a zero-width space breaks them up.
    text = re.sub(r"://|www\.|@", lambda found: found[0][0] + "\u200b" + found[0][1:], text)
    # What markdown reads inside a line; a colon only where it could open ":red[" or ":material/...".
    return re.sub(r"([\\`*_{}\[\]()<>!#~$|&]|:(?=\w))", r"\\\1", text)


def notify(message: str) -> None:
    """Leave a message for the next run to show (callbacks run before the page draws)."""
    st.session_state.setdefault(NOTICE, []).append(message)


def show_notices() -> None:
    """Show, once, the messages left by earlier steps (a bad link, a refused edit)."""
    for message in st.session_state.pop(NOTICE, []):
        st.warning(message)


@st.cache_resource(show_spinner=False)
def _lab(home: str) -> Lab:
    lab = Lab(home)
    lab.keep_queue_moving()
    atexit.register(lab.shutdown)  # no worker outlives the server
    return lab


def live_figure(run_id: int, events: list, recipe: Recipe, height: int):
    """A run's training chart, built once per new event for every session watching it: a class of 30 on the
    Train page redraws it every second, and building it (~20 ms) is most of each redraw."""
    return _live_figure(run_id, len(events), recipe.epochs, recipe.learning_rate, height,
                        "validation" if recipe.validation else "test", events)


@st.cache_resource(max_entries=64, show_spinner=False)
def _live_figure(run_id: int, event_count: int, epochs: int, peak_lr: float, height: int, scored_on: str,
                 _events: list):
    # Events only ever grow (numbered per run), so the run and their count name the chart; `_events` is not hashed.
    return charts.training_figure(_events, epochs, peak_lr=peak_lr, height=height, scored_on=scored_on)


def visitor(lab: Lab) -> Visitor:
    """Who this browser is: a student or the teacher in a class, else the lab's one user."""
    return identity.visitor(lab)


def owner_names(lab: Lab) -> dict[str, str]:
    """Each student's display name by owner token; empty without a class, or while the store is busy."""
    if not lab.in_class:
        return {}
    try:
        return lab.store.roster.names()
    except StoreError:
        return {}


def get_lab() -> Lab | None:
    """The process-wide Lab, or None after showing why the run store cannot be used."""
    try:
        lab = _lab(str(config.lab_home()))
        lab.store.remake_if_deleted()  # before the notice is read: this run's page already says it
    except (StoreError, config.ConfigError) as err:
        st.error(str(err))
        return None
    notice = lab.store.recent_notice
    if notice and st.session_state.get("store_notice_shown") != notice:
        st.session_state["store_notice_shown"] = notice  # each notice once per session, not every rerun
        st.warning(notice)
    return lab
