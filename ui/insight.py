"""The Predict page's 'what the model sees' section: saliency, top 3, feature maps, a second model."""

import streamlit as st

from mnist_core.charts import saliency_figure
from mnist_core.explain import occlusion_saliency, tile_maps, top_classes
from ui import common

MIN_MAP_PX = 48  # feature maps are 3-26 px: each enlarged to at least this, so a projected class can see it
MAP_GAP_PX = 3


def answer(column, title: str, model, digit28) -> None:
    """One model's reading of the digit: its top three and the regions its answer relies on."""
    probabilities = model.probabilities(digit28)
    best = top_classes(probabilities)
    column.markdown(f"**{common.plain(title)}**")
    column.write(" · ".join(f"**{digit}** {p:.1%}" if rank == 0 else f"{digit} {p:.1%}"
                            for rank, (digit, p) in enumerate(best)))
    column.plotly_chart(saliency_figure(digit28, occlusion_saliency(model, digit28, best[0][0])),
                        width="stretch", config={"displayModeBar": False},
                        key=f"saliency_{title}")
    column.caption(f"Red: where blanking the input lowers the answer '{best[0][0]}' most.")


def feature_maps(model, digit28) -> None:
    """Every conv layer's output channels as small multiples, each scaled to its own range and at least
    MIN_MAP_PX a side (8 a row: 437 px at most, within the 1024 px screen's column, so shown unscaled)."""
    for layer, maps in model.feature_maps(digit28):  # the layer as the page numbers it ("conv 3"), not a user's text
        st.caption(f"{layer}: {maps.shape[2]} channels of {maps.shape[0]}x{maps.shape[1]}")
        st.image(tile_maps(maps, min_side=MIN_MAP_PX, gap=MAP_GAP_PX))
