"""Every standard operator rnnsim does not run itself, bound to the NumPy implementations of
``onnx.reference`` (the ONNX package's own reference runtime), one instance per node."""
from __future__ import annotations

from typing import Any, Callable

from ...errors import ConfigError

# The domains onnx.reference implements: the default one and ONNX-ML.
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")

# Operators whose outputs differ from call to call: never run once at load.
RANDOM_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                        "Multinomial", "Bernoulli"})


def _domain(node) -> str:
    return "" if node.domain == "ai.onnx" else node.domain


def bind_reference(onnx, proto, nodes: list, origin: str) -> list[Callable]:
    """One ``run(inputs, values)`` per node of ``nodes`` (NodeProtos of ``proto``'s graph), each
    an ``onnx.reference`` operator instance; ``values`` (the tensors computed so far) is the
    outer scope of the nodes with subgraphs (If, Loop, Scan). Operators ONNX does not define at
    the model's opset are refused in one ConfigError listing them."""
    from onnx.reference import ReferenceEvaluator

    if not nodes:
        return []
    copies = []
    for node in nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.domain = _domain(node)
        copies.append(copy)
    graph = onnx.helper.make_graph(copies, "glue", [], [])
    opsets = {}
    for entry in proto.opset_import:
        opsets[_domain(entry)] = entry.version
    model = onnx.helper.make_model(graph, opset_imports=[
        onnx.helper.make_opsetid(domain, version) for domain, version in opsets.items()])
    model.ir_version = proto.ir_version
    try:
        evaluator = ReferenceEvaluator(model)
    except Exception:  # find every node onnx.reference cannot run, not only the first
        raise ConfigError(_unknown(onnx, model, copies, origin)) from None
    return [_runner(instance) for instance in evaluator.rt_nodes_]


def _runner(instance) -> Callable[[list, dict], Any]:
    if instance.need_context():
        return lambda inputs, values: instance.run(*inputs, context=values)
    return lambda inputs, values: instance.run(*inputs)


def _unknown(onnx, model, nodes, origin: str) -> str:
    from onnx.reference import ReferenceEvaluator

    opsets = {entry.domain: entry.version for entry in model.opset_import}
    failed: dict[str, list[str]] = {}
    for index, node in enumerate(nodes):
        single = onnx.helper.make_model(onnx.helper.make_graph([node], "one", [], []),
                                        opset_imports=list(model.opset_import))
        single.ir_version = model.ir_version
        try:
            ReferenceEvaluator(single)
        except Exception as exc:  # noqa: BLE001 (each failure is reported with its node)
            key = f"{node.op_type} (opset {opsets.get(node.domain, '?')}: {type(exc).__name__})"
            failed.setdefault(key, []).append(node.name or f"#{index}")
    listed = "; ".join(f"{op} for {', '.join(repr(n) for n in names)}"
                       for op, names in sorted(failed.items()))
    return (f"{origin}: operators that are not standard ONNX operators at the model's opset "
            f"(onnx.reference has no implementation): {listed or 'unknown'}. Check the "
            "exporter's opset, or convert the model with onnx.version_converter.")
