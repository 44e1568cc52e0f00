"""The network picture: DOT that parses, every layer with its count and marks, shares adding up to 100%."""

import re
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_core.budget import Budget, summarize
from mnist_core.diagram import FONT_SIZE, network_dot, percentages
from mnist_core.spec import PRESETS, Architecture
from tests.unit.test_spec import architectures

FINAL = PRESETS["seed-final"]
TOKEN = re.compile(r'\s+|(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>->|[{}\[\];,=])'
                   r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*|-?\d*\.?\d+)")


def tokens(dot: str) -> list[tuple[str, str]]:
    """(kind, text) of each DOT token; fails on anything DOT's lexer would refuse (a stray quote, say)."""
    found, position = [], 0
    while position < len(dot):
        match = TOKEN.match(dot, position)
        assert match, f"not DOT at {position}: {dot[position:position + 30]!r}"
        if match.lastgroup:
            found.append((match.lastgroup, match.group()))
        position = match.end()
    return found


def parse_dot(dot: str) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The digraph's statements: {node or 'graph'/'node'/'edge': attributes, unescaped} and its edge chain.

    A small parser for the subset of DOT the diagram writes; the graphviz package is not a dependency.
    """
    stream = tokens(dot)
    assert [text for _, text in stream[:3]] == ["digraph", "network", "{"] and stream[-1][1] == "}"
    attrs: dict[str, dict[str, str]] = {}
    chain: list[str] = []
    statement: list[tuple[str, str]] = []
    for kind, text in stream[3:-1]:
        if text != ";":
            statement.append((kind, text))
            continue
        name = statement[0][1]
        assert statement[0][0] == "id", statement
        if len(statement) > 1 and statement[1][1] == "->":
            assert not chain and all(text == "->" for _, text in statement[1::2])
            assert all(kind == "id" for kind, _ in statement[::2])
            chain = [t for _, t in statement[::2]]
        else:
            assert statement[1][1] == "[" and statement[-1][1] == "]", statement
            pairs = [part for part in statement[2:-1] if part[1] != ","]
            assert len(pairs) % 3 == 0 and all(eq == "=" for _, eq in pairs[1::3]), statement
            attrs[name] = {key: unquote(value) for (_, key), (_, value) in zip(pairs[::3], pairs[2::3])}
        statement = []
    assert not statement, "a statement without its ';'"
    return attrs, chain


def unquote(text: str) -> str:
    """A DOT value as Graphviz shows it, with '\\n' as a real line break."""
    if not text.startswith('"'):
        return text
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text[1:-1])


def labels(arch: Architecture, budget: Budget = Budget()) -> list[str]:
    attrs, chain = parse_dot(network_dot(arch, budget))
    assert chain == ["input"] + [f"layer{number}" for number in range(1, len(arch.layers) + 1)]
    return [attrs[node]["label"] for node in chain[1:]]


def test_seed_final_reads_like_the_architecture_page():
    """Each block: the page's name, output shape, params with the fixed ones, marks and share."""
    blocks = labels(FINAL)
    assert blocks[0] == "conv 1 · 3x3  +BN  +Dropout 0.1\n26x26x16 · 208 params (32 fixed) · 1.4%"
    assert blocks[1] == "conv 2 · 3x3  +BN  +Dropout 0.1\n24x24x32 · 4,736 params (64 fixed) · 31.7%"
    assert blocks[2] == "conv 3 · 1x1\n24x24x16 · 512 params · 3.4%"
    assert blocks[3] == "MaxPool 2x2 · 12x12x16 · no params"
    assert blocks[6] == "conv 6 · 3x3  +Dropout 0.1\n6x6x16 · 2,304 params · 15.4%"
    assert blocks[-3:] == ["conv 8 · 1x1\n4x4x10 · 160 params · 1.1%", "GlobalAvgPool · 10 · no params",
                           "Softmax · 10 · no params"]
    attrs, _ = parse_dot(network_dot(FINAL))
    assert attrs["input"]["label"] == "input · 28x28x1"
    assert attrs["graph"]["label"] == "seed-final\n14,960 total params < 15,000: 39 to spare\n" \
                                      "% = share of the total params"


@settings(max_examples=40, deadline=None, database=None)
@given(architectures(), st.sampled_from(("total", "trainable")))
def test_every_layer_appears_with_its_count_and_the_shares_add_up(arch, counting):
    """Any spec: every layer's params and shape in its block, BatchNorm/Dropout marked, shares sum to 100%."""
    blocks = labels(arch, Budget(counting=counting))
    for layer, stats, block in zip(arch.layers, summarize(arch).layers, blocks):
        assert stats.shape_text in block
        assert (f"{stats.total:,} params" if stats.total else "no params") in block
        if layer.is_conv:
            assert ("+BN" in block) == layer.batchnorm and ("+Dropout" in block) == layer.dropout
    shares = [float(share) for block in blocks for share in re.findall(r"(\d+\.\d)%", block)]
    assert round(sum(shares), 1) == 100.0


def test_percentages_round_to_exactly_100():
    """Largest remainders: thirds are 33.4 + 33.3 + 33.3, and zeros stay zero."""
    assert percentages([1, 1, 1]) == [33.4, 33.3, 33.3]
    assert percentages([0, 7, 0]) == [0.0, 100.0, 0.0]
    assert sum(percentages([208, 4736, 512, 0, 2368])) == 100.0


def test_trainable_counting_shares_only_trainable_params():
    """With trainable counting, conv 2's share is 4,672 of seed-final's 14,800 trainable params."""
    blocks = labels(FINAL, Budget(counting="trainable"))
    assert blocks[1].endswith(f"· {100 * 4_672 / 14_800:.1f}%")


def test_largest_share_gets_the_darkest_shade():
    """conv 2 (31.7%) is the darkest block; the parameter-free layers stay white."""
    attrs, chain = parse_dot(network_dot(FINAL))
    fills = [attrs[node]["fillcolor"] for node in chain[1:]]
    brightness = [sum(int(fill[i:i + 2], 16) for i in (1, 3, 5)) for fill in fills]
    assert brightness.index(min(brightness)) == 1
    assert [fill for fill, stats in zip(fills, summarize(FINAL).layers) if not stats.total] == ["#ffffff"] * 3


def test_names_with_quotes_backslashes_and_breaks_are_escaped():
    """A spec's name is the user's text: quotes, backslashes and line breaks (a spec file refuses them, a run
    stored before that rule may hold one) cannot break the DOT."""
    arch = Architecture(FINAL.layers, name='my "best" \\N net\nv2 }; x -> y')
    attrs, _ = parse_dot(network_dot(arch))
    assert attrs["graph"]["label"].split("\n")[0] == 'my "best" \\N net v2 }; x -> y'
    long_name = Architecture.from_dict({**FINAL.to_dict(), "name": "n" * 80})
    assert len(parse_dot(network_dot(long_name))[0]["graph"]["label"].split("\n")[0]) == 40


def test_layout_is_vertical_large_and_narrow():
    """Top to bottom, 14pt or larger, and no line of any block longer than 45 characters."""
    attrs, chain = parse_dot(network_dot(PRESETS["seed-first"]))
    assert attrs["graph"]["rankdir"] == "TB"
    assert int(attrs["graph"]["fontsize"]) >= 14 and int(attrs["node"]["fontsize"]) == FONT_SIZE >= 14
    assert max(len(line) for node in chain for line in attrs[node]["label"].split("\n")) <= 45
    wide = FINAL.with_layer(1, filters=256).with_layer(0, dropout_rate=0.25)
    assert max(len(line) for line in "\n".join(labels(wide)).split("\n")) <= 45


def test_the_picture_never_imports_tensorflow_or_streamlit():
    """DOT is plain text: drawing it needs no Keras, and mnist_core never imports Streamlit."""
    code = ("import sys; from mnist_core.diagram import network_dot; from mnist_core.spec import PRESETS; "
            "network_dot(PRESETS['seed-first']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'streamlit')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
