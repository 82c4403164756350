"""One-timestep ``from_onnx`` calls of graphs with glue around their recurrent nodes (what
``torch.onnx.export`` writes, legacy and ``dynamo=True``, and hand-built graphs) on the
compiled step: the same bits as the node-by-node path, ONNX Runtime's values, states fed
back call after call, a new binding per input shape, and the node-by-node path for what the
compiled call does not cover."""
import types
import warnings

import numpy as np
import onnx
import onnxruntime
import onnxscript  # noqa: F401 (what the dynamo exporter writes its graphs with: the test extra)
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import rnnsim
from rnnsim import InputError
from rnnsim.interop.onnx import glue, graph as onnx_graph
from test_onnx import ORT_TOL, make_model

GATES = {"LSTM": 4, "GRU": 3}
K, P = 5, 7


def ort_session(model):
    """ONNX Runtime's session of ``model``; onnx's reference evaluator for float64, which
    ONNX Runtime's LSTM does not run."""
    if any(i.type.tensor_type.elem_type == TensorProto.DOUBLE for i in model.graph.input):
        return ReferenceEvaluator(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # dynamo's declared output shapes are only hints
    return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


def no_node_by_node(monkeypatch):
    """Make the node-by-node path fail: a call that still works took the compiled one."""
    def refuse(*args, **kwargs):
        raise AssertionError("the node-by-node path ran")

    monkeypatch.setattr(onnx_graph, "_run_node", refuse)
    monkeypatch.setattr(onnx_graph.OnnxModel, "_checked_feeds", refuse)


def bound_signatures(net) -> dict:
    """The input-shape signatures of every one-step call seen, and whether each was bound."""
    return {shapes: call is not None for _, one_step in net._plans.values() if one_step
            for shapes, call in one_step._calls.items()}


def stream(net, session, feeds, xs, back: dict, monkeypatch):
    """Call ``net`` once per x in ``xs`` (the input named ``feeds``' first key) on the
    compiled path (the node-by-node path made to fail) and on the node-by-node one (feeds in
    a Mapping that is not a dict), ``back`` naming which output feeds which input next, and
    ONNX Runtime beside; the outputs must agree bit for bit, and with ONNX Runtime within
    tolerance. Returns the last outputs."""
    x_name = next(iter(feeds))
    ours, theirs = dict(feeds), dict(feeds)
    for x in xs:
        ours[x_name] = theirs[x_name] = x
        general = net.run(types.MappingProxyType(ours))
        with monkeypatch.context() as patched:
            no_node_by_node(patched)
            fast = net.run(ours)
        expected = dict(zip(net.output_names, session.run(net.output_names, theirs)))
        assert list(fast) == net.output_names
        for name in net.output_names:
            np.testing.assert_array_equal(fast[name], general[name], err_msg=name)
            np.testing.assert_allclose(fast[name], expected[name], **ORT_TOL, err_msg=name)
            assert fast[name].flags.c_contiguous and fast[name].flags.writeable
        ours.update({feed: fast[output] for output, feed in back.items()})
        theirs.update({feed: expected[output] for output, feed in back.items()})
    return fast


# ---- torch.onnx.export's graphs --------------------------------------------------------------

class Streaming(torch.nn.Module):
    """A batch-first recurrent layer whose initial states are inputs, as a streaming caller
    exports it: (x, h0[, c0]) -> (y, h[, c])."""

    def __init__(self, kind, **options):
        super().__init__()
        self.rnn = getattr(torch.nn, kind)(K, P, batch_first=True, **options)
        for parameter in self.rnn.parameters():  # weights and biases, all random
            torch.nn.init.uniform_(parameter, -0.6, 0.6)

    def forward(self, x, h0, c0=None):
        y, final = self.rnn(x, h0 if c0 is None else (h0, c0))
        return (y, *final) if isinstance(final, tuple) else (y, final)


EXPORTS = [("LSTM", {}, "dynamo"), ("GRU", {}, "dynamo"), ("LSTM", {"num_layers": 2}, "dynamo"),
           ("GRU", {"bidirectional": True}, "legacy")]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(path, module, layers) of each export, made once, on demand, with one timestep and
    a dynamic batch."""
    folder = tmp_path_factory.mktemp("streaming")
    made = {}

    def get(kind, options, exporter):
        key = (kind, tuple(options.items()), exporter)
        if key not in made:
            torch.manual_seed(len(made) + 1)
            module = Streaming(kind, **options).eval()
            layers = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
            states = 2 if kind == "LSTM" else 1
            example = (torch.randn(2, 1, K), *(torch.randn(layers, 2, P) for _ in range(states)))
            names = ["x", "h0", "c0"][:len(example)]
            path = folder / f"{kind}-{len(made)}-{exporter}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if exporter == "dynamo":
                    batch = torch.export.Dim("batch", min=1)
                    torch.onnx.export(module, example, dynamo=True, input_names=names,
                                      dynamic_shapes=({0: batch},) + ({1: batch},) * states,
                                      verbose=False).save(str(path))
                else:
                    torch.onnx.export(module, example, str(path), dynamo=False,
                                      opset_version=14, input_names=names,
                                      output_names=["y", "h", "c"][:len(example)],
                                      dynamic_axes={n: {0 if n == "x" else 1: "batch"}
                                                    for n in names})
            made[key] = (path, module, layers)
        return made[key]

    return get


@pytest.mark.parametrize("kind,options,exporter", EXPORTS,
                         ids=[f"{k}-{'-'.join(map(str, o.values())) or 1}-{e}"
                              for k, o, e in EXPORTS])
def test_exported_streaming_models_step_on_the_compiled_path(exports, kind, options, exporter,
                                                             monkeypatch):
    """torch's exports (glue: Transpose, Slice of the states, Shape/Slice/Mul/Concat feeding
    Reshape, Squeeze...; two recurrent nodes for two layers) stepped with the final states
    fed back: the compiled call's bits are the node-by-node path's, and agree with ONNX
    Runtime and with torch stepping the same module."""
    path, module, layers = exports(kind, options, exporter)
    model = onnx.load(path)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count(kind) == options.get("num_layers", 1) and len(ops) > 3 + ops.count(kind)
    net = rnnsim.from_onnx(model)
    rng = np.random.default_rng(4)
    B = 3
    states = {name: rng.standard_normal((layers, B, P)).astype(np.float32)
              for name in net.input_names[1:]}
    xs = rng.standard_normal((6, B, 1, K)).astype(np.float32)
    outputs = net.output_names
    back = dict(zip(outputs[1:], net.input_names[1:]))
    last = stream(net, ort_session(model), {net.input_names[0]: xs[0], **states}, xs, back,
                  monkeypatch)
    assert bound_signatures(net) == {((B, 1, K),) + ((layers, B, P),) * len(states): True}
    torch_states = [torch.from_numpy(s) for s in states.values()]
    with torch.no_grad():  # torch stepping the module the same way
        for x in xs:
            expected = module(torch.from_numpy(x), *torch_states)
            torch_states = expected[1:]
    for name, value in zip(outputs, expected):
        np.testing.assert_allclose(last[name], value.numpy(), **ORT_TOL, err_msg=name)


# ---- hand-built graphs --------------------------------------------------------------------

def weights(op, k, p, dtype, rng, directions=1):
    G = GATES[op]
    return {"W": rng.uniform(-0.7, 0.7, (directions, G * p, k)).astype(dtype),
            "R": rng.uniform(-0.7, 0.7, (directions, G * p, p)).astype(dtype),
            "B": rng.uniform(-0.5, 0.5, (directions, 2 * G * p)).astype(dtype)}


def dynamo_style(op, dtype, seed):
    """A batch-first ``op`` with state inputs (B, 1, p) in a dynamo export's glue: the
    time-first transposes, Y reshaped to (B, T, p) through shape arithmetic on Shape(x)."""
    rng = np.random.default_rng(seed)
    states = ["h0", "c0"][:2 if op == "LSTM" else 1]
    finals = ["Y_h", "Y_c"][:len(states)]
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    nodes = [helper.make_node("Transpose", ["x"], ["X"], perm=[1, 0, 2]),
             *(helper.make_node("Transpose", [s], [f"{s}_t"], perm=[1, 0, 2]) for s in states),
             helper.make_node(op, ["X", "W", "R", "B", "", *(f"{s}_t" for s in states)],
                              ["Y", *finals], hidden_size=P, **attrs),
             helper.make_node("Shape", ["x"], ["x_shape"]),
             helper.make_node("Slice", ["x_shape", "zero", "two"], ["bt"]),
             helper.make_node("Mul", ["bt", "ones"], ["bt_again"]),
             helper.make_node("Concat", ["bt_again", "p"], ["y_shape"], axis=0),
             helper.make_node("Squeeze", ["Y", "one"], ["Y3"]),
             helper.make_node("Transpose", ["Y3"], ["Y_bf"], perm=[1, 0, 2]),
             helper.make_node("Reshape", ["Y_bf", "y_shape"], ["y"]),
             *(helper.make_node("Transpose", [f], [o], perm=[1, 0, 2])
               for f, o in zip(finals, ["h", "c"]))]
    ints = {"zero": [0], "two": [2], "one": [1], "ones": [1, 1], "p": [P]}
    model = make_model(nodes, {"x": (dtype, ["B", "T", K]),
                             **{s: (dtype, ["B", 1, P]) for s in states}},
                     dict.fromkeys(["y", "h", "c"][:1 + len(states)], dtype),
                     {**weights(op, K, P, dtype, rng),
                      **{n: np.array(v, np.int64) for n, v in ints.items()}})
    return model, states


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dynamo_style_glue_streams_on_the_compiled_path(op, dtype, monkeypatch):
    """x fed as a strided view (not contiguous), states fed back; then only the final
    states asked for, on a plan of its own."""
    model, states = dynamo_style(op, dtype, seed=len(op))
    net = rnnsim.from_onnx(model)
    rng = np.random.default_rng(1)
    B = 2
    xs = rng.standard_normal((5, B, 1, 2 * K)).astype(dtype)[..., ::2]
    feeds = {"x": xs[0], **{s: rng.standard_normal((B, 1, P)).astype(dtype) for s in states}}
    back = {"h": "h0", "c": "c0"} if op == "LSTM" else {"h": "h0"}
    stream(net, ort_session(model), feeds, xs, back, monkeypatch)
    assert bound_signatures(net) == {((B, 1, K),) + ((B, 1, P),) * len(states): True}
    everything = net.run(types.MappingProxyType(feeds))
    with monkeypatch.context() as patched:
        no_node_by_node(patched)
        finals = net.run(feeds, outputs=list(back))
    assert list(finals) == list(back)
    for name, value in finals.items():
        np.testing.assert_array_equal(value, everything[name])


def test_a_new_input_shape_binds_again(monkeypatch):
    """Batch 1, then 3, then 1 again: one binding per shape, each call right."""
    model, _ = dynamo_style("LSTM", np.float32, seed=3)
    net = rnnsim.from_onnx(model)
    session = ort_session(model)
    rng = np.random.default_rng(2)
    for B in (1, 3, 1):
        xs = rng.standard_normal((3, B, 1, K)).astype(np.float32)
        zeros = np.zeros((B, 1, P), np.float32)
        stream(net, session, {"x": xs[0], "h0": zeros, "c0": zeros}, xs,
               {"h": "h0", "c": "c0"}, monkeypatch)
    assert bound_signatures(net) == {((B, 1, K), (B, 1, P), (B, 1, P)): True for B in (1, 3)}
    assert sorted(net.recurrent[0].bindings) == [1, 3]


def tangled(seed):
    """Glue of every kind the compiled call resolves: x fed as (k, B) (a gather from the
    feed that is no view of it), h0 the first of two stacked states (a feed read in part),
    zeros for c0 made by ConstantOfShape of the batch; outputs a permuted Gather of Y_h's
    units, Concat of Y_h and Y_c along the units (from two arrays of one arena), Concat of
    h0 and Y_h (from a feed and an arena), Split of Y, Shape of Y and the constant c0."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_bk"], perm=[1, 0]),
        helper.make_node("Unsqueeze", ["x_bk", "zero"], ["X"]),              # (1, B, k)
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Gather", ["x_shape", "one_scalar"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "zero"], ["batch_1"]),
        helper.make_node("Concat", ["one", "batch_1", "p"], ["c_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["c_shape"], ["c0"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
        helper.make_node("Slice", ["hh", "zero", "one"], ["h0"]),             # (1, B, p)
        helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y", "Y_h", "Y_c"],
                         hidden_size=P),
        helper.make_node("Gather", ["Y_h", "units"], ["h_permuted"], axis=2),
        helper.make_node("Concat", ["Y_h", "Y_c"], ["hc"], axis=2),
        helper.make_node("Concat", ["h0", "Y_h"], ["h_pair"], axis=0),
        helper.make_node("Split", ["Y", "halves"], ["y_a", "y_b"], axis=3),
        helper.make_node("Shape", ["Y"], ["y_shape"]),
        helper.make_node("Identity", ["c0"], ["c_start"]),
    ]
    initializers = {**weights("LSTM", K, P, np.float32, rng),
                    "one": np.array([1]), "zero": np.array([0]), "p": np.array([P]),
                    "one_scalar": np.array(1), "units": rng.permutation(P),
                    "halves": np.array([3, P - 3])}
    outputs = {**dict.fromkeys(["h_permuted", "hc", "h_pair", "y_a", "y_b", "c_start"],
                               np.float32),
               "y_shape": np.int64}
    return make_model(nodes, {"x": (np.float32, [K, "B"]), "hh": (np.float32, [2, "B", P])},
                    outputs, initializers, opset=18)


def test_every_kind_of_glue_resolves_and_matches(monkeypatch):
    model = tangled(seed=8)
    net = rnnsim.from_onnx(model)
    rng = np.random.default_rng(3)
    for B in (1, 4):
        xs = rng.standard_normal((3, K, B)).astype(np.float32)
        hh = rng.standard_normal((2, B, P)).astype(np.float32)
        stream(net, ort_session(model), {"x": xs[0], "hh": hh}, xs, {}, monkeypatch)
    assert bound_signatures(net) == {((K, B), (2, B, P)): True for B in (1, 4)}
    _, one_step = net._plans[tuple(net.output_names)]
    resolved = glue.resolve(one_step.nodes, one_step.recurrent_of, one_step.constants,
                            {"x": ((K, 4), np.dtype(np.float32)),
                             "hh": ((2, 4, P), np.dtype(np.float32))}, one_step.wanted)
    (step,) = resolved.steps
    assert not np.array_equal(step.x.index.ravel(), np.arange(4 * K))  # no view of the feed
    assert resolved.unread == ["hh"]  # its second state is read by no step
    outputs = dict(resolved.outputs)
    assert isinstance(outputs["y_shape"], np.ndarray) and isinstance(outputs["c_start"],
                                                                    np.ndarray)
    assert isinstance(outputs["h_pair"], glue.Pieces)
    assert [outputs[name].source for name in ("h_permuted", "hc", "y_a")] == [0, 0, 0]
    with pytest.raises(InputError, match="input 'hh' holds NaN"):  # in the unread half
        net.run({"x": xs[0], "hh": np.concatenate([hh[:1], np.full_like(hh[1:], np.nan)])})


def test_nan_fed_is_named_as_by_the_node_by_node_path():
    model, _ = dynamo_style("GRU", np.float32, seed=5)
    net = rnnsim.from_onnx(model)
    feeds = {"x": np.ones((2, 1, K), np.float32), "h0": np.zeros((2, 1, P), np.float32)}
    good = net.run(feeds)
    for name in feeds:
        bad = {**feeds, name: feeds[name].copy()}
        bad[name][1, 0, 2] = np.nan
        with pytest.raises(InputError, match=f"input '{name}' holds NaN"):
            net.run(bad)
        assert np.isnan(net.run(bad, check_finite=False)["h"][1]).any()
    for name, value in net.run(feeds).items():
        np.testing.assert_array_equal(value, good[name])


def count_node_runs(monkeypatch) -> list:
    runs = []
    original = onnx_graph._run_node

    def counted(node, inputs, values):
        runs.append(node.op)
        return original(node, inputs, values)

    monkeypatch.setattr(onnx_graph, "_run_node", counted)
    return runs


def test_what_the_compiled_call_does_not_cover_runs_node_by_node(monkeypatch):
    """An operator computing on the values fed (Mul by a scale), more than one timestep, a
    sequence_lens input: the node-by-node path runs (no binding for those shapes) and
    agrees with ONNX Runtime; the one-step call of the plain graph stays compiled."""
    model, _ = dynamo_style("LSTM", np.float32, seed=6)
    scaled = onnx.ModelProto()
    scaled.CopyFrom(model)
    scaled.graph.node[0].input[0] = "x_scaled"
    scaled.graph.node.insert(0, helper.make_node("Mul", ["x", "scale"], ["x_scaled"]))
    scaled.graph.initializer.append(numpy_helper.from_array(np.float32([1.5]), "scale"))
    lengths = onnx.ModelProto()
    lengths.CopyFrom(model)
    lstm = next(node for node in lengths.graph.node if node.op_type == "LSTM")
    lstm.input[4] = "lens"
    lengths.graph.input.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["B"]))
    rng = np.random.default_rng(4)
    one = {"x": rng.standard_normal((2, 1, K)).astype(np.float32),
           "h0": rng.standard_normal((2, 1, P)).astype(np.float32),
           "c0": rng.standard_normal((2, 1, P)).astype(np.float32)}
    cases = [(scaled, one), (model, {**one, "x": rng.standard_normal((2, 3, K)).astype(
        np.float32)}), (lengths, {**one, "lens": np.int32([1, 0])})]
    for case, feeds in cases:
        net = rnnsim.from_onnx(case)
        runs = count_node_runs(monkeypatch)
        actual = net.run(feeds)
        assert "LSTM" in runs and not any(bound_signatures(net).values())
        expected = ort_session(case).run(net.output_names, feeds)
        for name, value in zip(net.output_names, expected):
            np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)
    runs.clear()
    net.run({**one, "lens": np.int32([1, 1])}, outputs=["h"])  # lens: still node by node
    assert runs
    runs.clear()
    rnnsim.from_onnx(model).run(one)
    assert not runs
