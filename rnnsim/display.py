"""How a ``Network`` and a ``RunResult`` show themselves: plain text for ``repr`` and an HTML
table for Jupyter (``_repr_html_``), both with the layer table whose shapes name k and p only.
"""
from __future__ import annotations


NO_T = "none depends on the timesteps T: the same weights run on sequences of any length"


def dim(d: int, ref: tuple[str, int]) -> str:
    """``d`` in terms of the named size ``ref``: 'p', '4p', or the number itself."""
    name, value = ref
    if d == value:
        return name
    return f"{d // value}{name}" if value > 0 and d % value == 0 else str(d)


def symbolic(shape, fan_out: tuple[str, int], fan_in: tuple[str, int]) -> str:
    """A parameter's shape in the named sizes: ``p x k``, ``4p x p``, ``q``."""
    if len(shape) == 1:
        return dim(shape[0], fan_out)
    return f"{dim(shape[0], fan_out)} x {dim(shape[1], fan_in)}"


def sections(net) -> list[tuple[str, list[dict]]]:
    """(title, parameter rows) for every layer and the head; each row of
    ``net.parameter_table()`` gains ``symbolic``, its shape in k, p and q."""
    rows = net.parameter_table()
    out = []
    for i, layer in enumerate(net.layers):
        k, p = layer.input_size, layer.units
        acts = ", ".join(a.name for a in layer.activations)
        way = ", bidirectional" if layer.directions == 2 else ""
        mine = [dict(r, symbolic=symbolic(r["shape"], ("p", p),
                                          ("k", k) if r["role"] == "input" else ("p", p)))
                for r in rows if r["name"].startswith(f"layers.{i}.")]
        plural = "s" if len(layer.activations) > 1 else ""
        out.append((f"layer {i}: {layer.name}{way}, p = {p} units, k = {k} inputs, "
                    f"activation{plural} {acts}", mine))
    if net.head is not None:
        q, p = net.head.units, net.head.in_features
        mine = [dict(r, symbolic=symbolic(r["shape"], ("q", q), ("p", p)))
                for r in rows if r["name"].startswith("head.")]
        out.append((f"head: {net.config.network.head.name}, q = {q} outputs from p = {p}, "
                    f"activation {net.head.activation.name}", mine))
    return out


def _numeric(shape) -> str:
    return " x ".join(map(str, shape))


def network_text(net) -> str:
    """``repr(net)``: the header line and one line per parameter."""
    cfg = net.config.network
    lines = [f"Network(k = input_size = {cfg.input_size}, {len(net.layers)} layer(s), "
             f"{cfg.dtype}, device {net.device}, {net.parameter_count():,} parameters)"]
    parts = sections(net)
    rows = [r for _, mine in parts for r in mine]
    width = {key: max(len(str(r[key])) for r in rows) for key in ("symbol", "name", "symbolic")}
    numeric = max(len(_numeric(r["shape"])) for r in rows)
    for title, mine in parts:
        lines.append(f"  {title}")
        for r in mine:
            sparse = "  sparse" if r["sparse"] else ""
            lines.append(f"    {r['symbol']:<{width['symbol']}}  {r['name']:<{width['name']}}  "
                         f"{r['symbolic']:<{width['symbolic']}} = "
                         f"{_numeric(r['shape']):<{numeric}}  {r['count']:>10,}{sparse}")
    lines.append(f"  {net.parameter_count():,} parameters; {NO_T}.")
    return "\n".join(lines)


# The tables carry a class of their own, so that a documentation theme's table styles (which
# apply to tables without one) leave them compact.
_STYLE = ("<style>table.rnnsim{border-collapse:collapse}"
          "table.rnnsim td,table.rnnsim th{padding:2px 10px;text-align:left}"
          "table.rnnsim td.n{text-align:right;font-variant-numeric:tabular-nums}"
          "table.rnnsim tr.part td{font-weight:bold;border-top:1px solid #bbb}</style>")


def network_html(net) -> str:
    """``net._repr_html_()``: the layer table as HTML."""
    from html import escape  # html (its entity table) only for Jupyter, not for every import

    cfg = net.config.network
    body = []
    for title, rows in sections(net):
        body.append(f'<tr class="part"><td colspan="4">{escape(title)}</td></tr>')
        for r in rows:
            sparse = " (sparse: nonzeros)" if r["sparse"] else ""
            body.append(f"<tr><td><code>{escape(r['symbol'])}</code></td>"
                        f"<td><code>{escape(r['name'])}</code></td>"
                        f"<td>{escape(r['symbolic'])} = {_numeric(r['shape'])}</td>"
                        f'<td class="n">{r["count"]:,}{sparse}</td></tr>')
    body.append(f'<tr class="part"><td colspan="3">total</td>'
                f'<td class="n">{net.parameter_count():,}</td></tr>')
    return (f"{_STYLE}<div><p><b>Network</b>: k = input_size = {cfg.input_size}, "
            f"{len(net.layers)} layer(s), {cfg.dtype}, device {escape(net.device)}</p>"
            '<table class="rnnsim"><thead><tr><th>symbol</th><th>parameter</th><th>shape</th>'
            '<th>count</th></tr></thead><tbody>' + "".join(body) +
            f"</tbody></table><p>{net.parameter_count():,} parameters; {NO_T}.</p></div>")


def _arrays(result) -> list[tuple[str, object]]:
    """(name, array) of everything a run returned: output, y, every layer's final states."""
    named = [("output", result.output)]
    if result.y is not None:
        named.append(("y", result.y))
    named += [(f"states[{i}][{name!r}]", value) for i, states in enumerate(result.states)
              for name, value in states.items()]
    return named


def result_text(result) -> str:
    """``repr(result)``: every array's shape and dtype."""
    return "RunResult(" + ", ".join(f"{name} {tuple(a.shape)} {a.dtype}"
                                    for name, a in _arrays(result)) + ")"


def result_html(result) -> str:
    """``result._repr_html_()``: a table of the arrays a run returned."""
    from html import escape

    body = "".join(f"<tr><td><code>{escape(name)}</code></td><td>{tuple(a.shape)}</td>"
                   f"<td>{a.dtype}</td></tr>" for name, a in _arrays(result))
    return (f'{_STYLE}<div><p><b>RunResult</b>: output (and a per-step y) have '
            "a time axis of T steps, as many as the input had; the final states have none: "
            "they are where the run stopped</p><table class='rnnsim'><thead><tr><th>array</th>"
            f"<th>shape</th><th>dtype</th></tr></thead><tbody>{body}</tbody></table></div>")
