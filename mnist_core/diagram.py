"""A picture of the network: Graphviz DOT source for `st.graphviz_chart`, no image files.

Top to bottom, one block per spec layer, named as the Architecture page's rows name them, with its
output shape, params and share of the counted params (as a shade and a percentage), sized to read
on a projector at 1024x768.
"""

from __future__ import annotations

from .budget import Budget, summarize
from .spec import INPUT_CHANNELS, INPUT_SIZE, Architecture

FONT_SIZE = 14  # the smallest that still reads from the back of a room
SHADE = (31, 119, 180)  # the charts' blue; the layer with the largest share is filled with MAX_SHADE of it
MAX_SHADE = 0.55  # dark enough to stand out on a washed-out projector, light enough under black text
TITLE_CHARS = 40  # a long spec name is cut so that the picture stays narrow
# White behind black text whatever the app's theme: Graphviz charts do not follow it.
GRAPH = (f"rankdir=TB, labelloc=t, fontname=Helvetica, fontsize={FONT_SIZE}, nodesep=0.1, ranksep=0.12, "
         "pad=0.1, bgcolor=white")
# width: a minimum that every conv's block reaches, so that the stack reads as one column
NODE = (f'shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica, fontsize={FONT_SIZE}, '
        'width=3.8, margin="0.1,0.04"')


def network_dot(arch: Architecture, budget: Budget = Budget()) -> str:
    """DOT source of `arch`'s layer stack on its 28x28x1 input, with the budget's share per layer."""
    summary = summarize(arch)
    verdict = budget.verdict(summary)
    counted = [stats.total if budget.counting == "total" else stats.trainable for stats in summary.layers]
    shares = percentages(counted)
    largest = max(shares) or 1.0
    name = " ".join(arch.name.split())  # a name's own line breaks would break the title
    title = [name if len(name) <= TITLE_CHARS else name[:TITLE_CHARS - 1] + "…", verdict.text,
             f"% = share of the {budget.counting} params"]
    lines = ["digraph network {", f"  graph [{GRAPH}, label={_quote(title)}];", f"  node [{NODE}];",
             "  edge [arrowsize=0.6];",
             f"  input [label={_quote([f'input · {INPUT_SIZE}x{INPUT_SIZE}x{INPUT_CHANNELS}'])}];"]
    for index, (layer, stats, share) in enumerate(zip(arch.layers, summary.layers, shares)):
        if layer.is_conv:
            marks = "  +BN" if layer.batchnorm else ""
            marks += f"  +Dropout {layer.dropout_rate:g}" if layer.dropout else ""
            fixed = f" ({stats.non_trainable:,} fixed)" if stats.non_trainable else ""
            label = [f"conv {arch.conv_number(index)} · {layer.kernel_text}{marks}",
                     f"{stats.shape_text} · {stats.total:,} params{fixed} · {share:.1f}%"]
        else:
            label = [f"{layer.label} · {stats.shape_text} · " + (f"{stats.total:,} params · {share:.1f}%"
                                                                  if stats.total else "no params")]
        lines.append(f"  layer{index + 1} [label={_quote(label)}, fillcolor=\"{_shade(share / largest)}\"];")
    chain = " -> ".join(["input"] + [f"layer{index + 1}" for index in range(len(arch.layers))])
    return "\n".join(lines + [f"  {chain};", "}"]) + "\n"


def percentages(values: list[int]) -> list[float]:
    """Each value's share of the sum in percent, to 0.1, rounded so that they add up to exactly 100.0."""
    total = sum(values)
    exact = [1000 * value / total for value in values]  # in tenths of a percent
    tenths = [int(share) for share in exact]
    # Largest remainders first: the rounding that moves each share the least while summing to 1000.
    for position in sorted(range(len(values)), key=lambda i: tenths[i] - exact[i])[:1000 - sum(tenths)]:
        tenths[position] += 1
    return [tenth / 10 for tenth in tenths]


def _shade(strength: float) -> str:
    """White mixed with SHADE by `strength` (0 to 1) of MAX_SHADE, as #rrggbb."""
    mix = MAX_SHADE * strength
    return "#" + "".join(f"{round(255 + (channel - 255) * mix):02x}" for channel in SHADE)


def _quote(lines: list[str]) -> str:
    """A DOT quoted string showing `lines` centred, one per line; backslashes and quotes are escaped."""
    return '"' + "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines) + '"'
