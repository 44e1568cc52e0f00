"""The drawing canvas with the page's own Undo and Clear (the canvas' floating toolbar is hidden)."""

from pathlib import Path

import streamlit as st
import streamlit_drawable_canvas
from streamlit_drawable_canvas import st_canvas

from mnist_core.reading import CANVAS_BRUSH

SIZE = 280  # 10x MNIST's 28 pixels
DRAWING, VERSION = "drawing_base", "canvas_version"
_CANVAS_COMPONENT = "streamlit-drawable-canvas.streamlit_drawable_canvas"


@st.cache_resource(show_spinner=False)
def _hide_canvas_toolbar() -> None:
    """Replace the canvas' definition, once per server, by one with its own stylesheet plus a rule hiding its toolbar.

    The toolbar floats invisibly over the canvas' top-right corner until hovered, so a stroke
    started there was swallowed; its Undo and Clear are the page's buttons instead. The canvas
    renders in a shadow root, so a page-level style cannot reach it. The package's own definition
    (registered on import) is removed first: declaring the name again over it logged "already
    registered. Overwriting previous definition" on the server.
    """
    from streamlit.components.v2.get_bidi_component_manager import get_bidi_component_manager

    build = Path(streamlit_drawable_canvas.__file__).parent / "frontend" / "build"
    css = next(build.glob("index-*.css")).read_text() + "\n.dc-toolbar{display:none !important}\n"  # beats its inline style
    get_bidi_component_manager().unregister(_CANVAS_COMPONENT)
    st.components.v2.component(_CANVAS_COMPONENT, js="index-*.js", css=css,
                               html='<div class="canvas-root"></div>', isolate_styles=True)


def canvas():
    """Draw the canvas and its Undo/Clear buttons; returns the canvas result (image_data may be None)."""
    _hide_canvas_toolbar()
    st.session_state.setdefault(VERSION, 0)
    result = st_canvas(stroke_width=CANVAS_BRUSH, stroke_color="#FFFFFF", background_color="#000000", height=SIZE,
                       width=SIZE, drawing_mode="freedraw", return_image_data=True,
                       initial_drawing=st.session_state.get(DRAWING), key=f"canvas_{st.session_state[VERSION]}")
    strokes = (result.json_data or {}).get("objects", [])
    buttons = st.columns(2)
    buttons[0].button("Undo", on_click=_undo, args=(strokes,), disabled=not strokes, width="stretch",
                      help="Remove the last stroke")
    buttons[1].button("Clear", on_click=_clear, disabled=not strokes, width="stretch")
    return result


def _undo(strokes: list) -> None:
    # A changed initial drawing makes the same canvas reload it and send its image back.
    undo_count = (st.session_state.get(DRAWING) or {}).get("undo", 0) + 1
    st.session_state[DRAWING] = {"objects": strokes[:-1], "undo": undo_count}


def _clear() -> None:
    st.session_state[DRAWING] = None
    st.session_state[VERSION] += 1  # a fresh canvas
