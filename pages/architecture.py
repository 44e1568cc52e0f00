"""Architecture: one row per layer, a live parameter counter against the budget, presets and JSON."""

import streamlit as st

from mnist_core.budget import COUNTINGS, MAX_LIMIT, Budget, describe_change, summarize
from mnist_core.charts import budget_figure
from mnist_core.layers import SeparableConv
from mnist_core.spec import DEFAULT_PRESET, MAX_FILTERS, PRESETS, Architecture, Conv, SpecError
from ui import advice, common

notices = common.begin_page()
arch, budget = common.current_arch(), common.current_budget()
generation = st.session_state[common.GENERATION]
JSON_ERROR = "json_error"


def edit_layer(index: int, field: str, key: str) -> None:
    """Apply one widget's change to the architecture, keeping the last good one on error."""
    before = common.current_arch()
    try:
        after = before.with_layer(index, **{field: st.session_state[key]})
    except SpecError as err:
        common.notify(f"Not applied: {err}")
        common.set_arch(before, st.session_state.get(common.LAST_CHANGE))
        return
    common.set_arch(after, describe_change(before, after))


def load_preset(name: str) -> None:
    common.set_arch(PRESETS[name], f"Loaded preset {name}")


def reset() -> None:
    load_preset(DEFAULT_PRESET)
    common.set_budget(Budget())


def set_budget() -> None:
    st.session_state[common.BUDGET] = Budget(int(st.session_state["budget_limit"]),
                                             st.session_state["budget_counting"])


def apply_json(key: str) -> None:
    """Load the spec held by a text area or file uploader widget; a refusal is shown beside it."""
    value = st.session_state.get(key)
    text = value.getvalue() if hasattr(value, "getvalue") else value
    if not text:
        st.session_state[JSON_ERROR] = (key, "Spec not loaded: nothing to load.")
        return
    try:
        new = Architecture.from_json(text)
    except SpecError as err:
        st.session_state[JSON_ERROR] = (key, f"Spec not loaded: {err}")
        return
    common.set_arch(new, describe_change(common.current_arch(), new))


def json_error(key: str) -> None:
    """Show, once, why the spec from this widget was refused."""
    where, message = st.session_state.get(JSON_ERROR, (None, None))
    if where == key:
        st.error(common.plain(message))  # it quotes the user's JSON
        del st.session_state[JSON_ERROR]


st.title("Architecture")
summary = summarize(arch)
verdict = budget.verdict(summary)
# The counter, bar, verdict and last change stay in view while the table scrolls under them: the keyed container's
# wrapper sticks to the top (the app's header there is see-through), on the theme's background, light or dark,
# so the rows pass under it unseen. The share link's copy button shows without a hover: a projector has none.
st.html("""<style>
[data-testid="stLayoutWrapper"]:has(> .st-key-budget_header) {
  position: sticky; top: 0; z-index: 100; background: #ffffff;
  padding: 0.75rem 0 0.5rem; border-bottom: 1px solid rgba(49, 51, 63, 0.2); }
@media (prefers-color-scheme: dark) {
  [data-testid="stLayoutWrapper"]:has(> .st-key-budget_header) { background: #0e1117; } }
.st-key-budget_header [data-testid="stMetricValue"] { font-size: 1.75rem; }
.st-key-share_link [data-testid="stCode"] div:has([data-testid="stElementToolbarButton"]) {
  opacity: 1; visibility: visible; }
</style>""")

with st.container(horizontal=True, vertical_alignment="center"):
    for name, preset in PRESETS.items():
        st.button(f"{name} ({summarize(preset).total:,})", on_click=load_preset, args=(name,))
    st.button("Reset", on_click=reset, help=f"{DEFAULT_PRESET} and the notebook's budget: 15,000 total params")
    st.caption(f"Current: **{common.plain(arch.name)}** · {summary.macs:,} multiply-adds per image")

with st.sidebar.container(key="share_link"):
    st.markdown("**Copy link** to this network and budget", help="The button at the link's right copies it; "
                                                                 "the link opens this page as it is now")
    st.code(common.share_link(), language=None, wrap_lines=True)

# The widgets read the session's budget (a link's, a reset's) through their keys, never a default the
# browser would not be told about.
st.session_state.setdefault("budget_limit", budget.limit)
st.session_state.setdefault("budget_counting", budget.counting)
limits = st.columns(3)
limits[0].number_input("Budget (params)", 1, MAX_LIMIT, step=500, key="budget_limit", on_change=set_budget)
limits[1].radio("Counts", COUNTINGS, key="budget_counting", on_change=set_budget, horizontal=True,
                help="The notebook's rule: total params (including BatchNorm's moving statistics) < 15,000.")

with st.container(key="budget_header"):
    counter = st.columns(3)
    counter[0].metric("Total params", f"{summary.total:,}")
    counter[1].metric("Trainable", f"{summary.trainable:,}", help="Total minus BatchNorm's moving mean and variance")
    counter[2].metric("Spare", f"{verdict.spare:+,}",
                      help="Params you could still add and stay strictly under the budget; below 0, params to remove")
    st.plotly_chart(budget_figure(verdict), width="stretch", config={"displayModeBar": False})
    if verdict.within:
        st.success(verdict.text)
    else:
        st.error(verdict.text)
    change = st.session_state.get(common.LAST_CHANGE)
    if change:
        st.caption(f"Last change: {change}")

# Fits a 1024 px projector with the sidebar open: each header on one line, each value whole.
WIDTHS = [1.75, 0.55, 1.05, 0.7, 1.05, 1.05, 1.25, 0.55, 1.0]
with st.container(key="layer_table"):
    header = st.columns(WIDTHS, gap="xsmall")
    for column, title in zip(header, ("Layer", "Sep", "Filters", "BN", "Dropout", "Rate", "Output", "RF", "Params")):
        column.markdown(f"**{title}**")
    head_conv = arch.convs[-1]
    for index, (layer, stats) in enumerate(zip(arch.layers, summary.layers)):
        row = st.columns(WIDTHS, gap="xsmall")
        if isinstance(layer, Conv):
            conv = f"conv {arch.conv_number(index)}"
            row[0].write(f"{conv} · {layer.kernel}x{layer.kernel}")
            if layer.kernel > 1:  # a separable 1x1 conv would only add a per-channel scale
                key = f"separable_{index}_{generation}"
                row[1].toggle(f"separable of {conv}", isinstance(layer, SeparableConv), key=key,
                              on_change=edit_layer, args=(index, "separable", key), label_visibility="collapsed",
                              help="Depthwise-separable: one filter per input channel, then a 1x1 conv mixing them: "
                                   "k x k + filters weights per input channel instead of k x k x filters")
            for column, field, widget in ((row[2], "filters", "number"), (row[3], "batchnorm", "toggle"),
                                          (row[4], "dropout", "toggle"), (row[5], "dropout_rate", "rate")):
                key = f"{field}_{index}_{generation}"
                common_args = dict(key=key, on_change=edit_layer, args=(index, field, key),
                                   label_visibility="collapsed")
                if widget == "number":
                    column.number_input(f"Filters of {conv}", 1, MAX_FILTERS, layer.filters,
                                        disabled=index == head_conv, help="10 filters, one per digit"
                                        if index == head_conv else None, **common_args)
                elif widget == "toggle":
                    column.toggle(f"{field} of {conv}", getattr(layer, field), **common_args)
                else:
                    column.number_input(f"Dropout rate of {conv}", 0.0, 0.95, layer.dropout_rate,
                                        step=0.05, format="%.2f", disabled=not layer.dropout, **common_args)
        else:
            row[0].write(layer.label)
        row[6].write(stats.shape_text)
        row[7].write(str(stats.receptive_field))
        row[8].write(f"{stats.total:,}")
        if stats.non_trainable:
            row[8].caption(f"{stats.non_trainable} fixed")

advice.advisor(arch, budget, verdict, advice.measured_effects(common.get_lab(), arch))
st.page_link("pages/studies.py", label="Measure what each BatchNorm and Dropout buys: study this architecture →",
             icon=":material/science:")
advice.picture(arch, budget)

# A fixed key keeps the section open across the reruns a refusal or an edit causes.
with st.expander("Spec as JSON: view, download, edit or upload", key="json_section"):
    st.download_button("Download spec JSON", arch.to_json(), file_name=f"{arch.name}.json", mime="application/json")
    st.text_area("Edit the spec", arch.to_json(), height=300, key=f"json_{generation}")
    st.button("Apply JSON", on_click=apply_json, args=(f"json_{generation}",))
    json_error(f"json_{generation}")
    st.file_uploader("Upload a spec JSON", type=["json"], key=f"upload_{generation}",
                     max_upload_size=common.UPLOAD_CEILING_MB)
    st.button("Load uploaded spec", on_click=apply_json, args=(f"upload_{generation}",))
    json_error(f"upload_{generation}")

st.page_link("pages/train.py", label="Train this architecture →", icon=":material/monitoring:")
common.end_page(notices)
