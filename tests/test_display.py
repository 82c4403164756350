"""``repr`` and Jupyter's ``_repr_html_`` of a Network and a RunResult: the layer table."""
from html.parser import HTMLParser

import numpy as np

from rnnsim import Network

STACK = {"network": {"input_size": 3, "seed": 4, "layers": [
    {"cell": "lstm", "units": 4, "bidirectional": True},
    {"cell": "esn", "units": 30, "sparse": True,
     "init": {"recurrent": {"name": "sparse_random", "connectivity": 0.1}}}],
    "head": {"name": "linear", "units": 2}}}


class Cells(HTMLParser):
    """The text of every table cell, row by row."""

    def __init__(self):
        super().__init__()
        self.rows, self.inside = [], False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        self.inside = self.inside or tag in ("td", "th")
        if tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.rows[-1][-1] += data


def test_repr_lists_every_parameter_with_its_shape_and_count():
    net = Network.from_config(STACK)
    text = repr(net)
    total = sum(row["count"] for row in net.parameter_table())
    assert text.startswith("Network(k = input_size = 3, 2 layer(s), float32, device cpu, "
                           f"{total:,} parameters)")
    for row in net.parameter_table():
        line = next(line for line in text.splitlines() if f" {row['name']} " in line)
        assert " x ".join(map(str, row["shape"])) in line
        assert line.split()[-1 if not row["sparse"] else -2] == f"{row['count']:,}"
    assert "4p x k = 16 x 3" in text and "q x p  = 2 x 30" in text
    assert "layer 0: lstm, bidirectional, p = 4 units, k = 3 inputs" in text
    assert "layer 1: esn, p = 30 units, k = 8 inputs" in text
    assert "none depends on the timesteps T" in text
    assert "sparse" in text  # the esn's CSR recurrent matrix counts its nonzeros


def test_html_table_has_a_row_per_parameter_and_the_total():
    net = Network.from_config(STACK)
    parser = Cells()
    parser.feed(net._repr_html_())
    rows = [r for r in parser.rows if len(r) == 4 and r[0] != "symbol"]
    table = net.parameter_table()
    assert [r[1] for r in rows] == [row["name"] for row in table]
    assert [r[2].split(" = ")[1] for r in rows] == [" x ".join(map(str, row["shape"]))
                                                  for row in table]
    assert [int(r[3].split()[0].replace(",", "")) for r in rows] == [row["count"] for row in table]
    assert rows[0][2] == "4p x k = 16 x 3"
    total = next(r for r in parser.rows if r[0] == "total")
    assert total[1] == f"{sum(row['count'] for row in table):,}"
    titles = [r[0] for r in parser.rows if len(r) == 1]
    assert titles[0].startswith("layer 0: lstm") and titles[-1].startswith("head: linear")
    assert "none depends on the timesteps T" in net._repr_html_()


def test_the_table_does_not_change_with_T_but_the_result_does():
    net = Network.from_config("configs/quickstart.yaml")
    before = repr(net), net._repr_html_()
    short = net.run(np.zeros((5, 3, 8), np.float32))
    long = net.run(np.zeros((50, 3, 8), np.float32))
    assert (repr(net), net._repr_html_()) == before
    assert repr(short) == ("RunResult(output (5, 3, 10) float32, y (5, 3, 2) float32, "
                           "states[0]['h'] (1, 3, 10) float32)")
    assert "output (50, 3, 10)" in repr(long)
    parser = Cells()
    parser.feed(long._repr_html_())
    assert parser.rows[1:] == [["output", "(50, 3, 10)", "float32"], ["y", "(50, 3, 2)", "float32"],
                               ["states[0]['h']", "(1, 3, 10)", "float32"]]
