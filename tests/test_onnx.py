"""from_onnx against ONNX Runtime and a NumPy reference: random RNN/LSTM/GRU nodes, graphs of the
glue torch.onnx.export writes (at several opsets), errors, and the CLI."""
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import onnx_reference
import rnnsim
from rnnsim import ConfigError, InputError, ShapeError
from rnnsim.cli import cli
from rnnsim.interop.onnx import graph as onnx_graph, ops as onnx_ops, recurrent as onnx_recurrent

INPUTS = {"RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
          "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
          "LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]}
OUTPUTS = {"RNN": ["Y", "Y_h"], "GRU": ["Y", "Y_h"], "LSTM": ["Y", "Y_h", "Y_c"]}
ONNX_ACTIVATIONS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
                    "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"]
# Per-direction activation lists: the LSTM sets hold all eleven functions; gates (the first
# of LSTM's and GRU's) stay bounded, else the states grow without bound.
ACTIVATION_SETS = {
    "RNN": [["Relu"], ["Affine"], ["Elu"], ["Softplus"]],
    "LSTM": [["HardSigmoid", "Affine", "Elu"], ["Softsign", "LeakyRelu", "ScaledTanh"],
             ["ScaledTanh", "ThresholdedRelu", "Softplus"], ["Tanh", "Relu", "Sigmoid"]],
    "GRU": [["HardSigmoid", "Elu"], ["Softsign", "Affine"], ["ScaledTanh", "LeakyRelu"],
            ["Sigmoid", "Softplus"]],
}
WEIGHTS = ("W", "R", "B", "P")
ORT_TOL = dict(rtol=1e-4, atol=1e-5)
F64_TOL = dict(rtol=1e-9, atol=1e-12)


def tensor_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def make_model(nodes, inputs: dict, outputs: dict, initializers: dict, opset=14):
    """A model from nodes, {input name: (dtype, shape)}, {output name: dtype}, initializers."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, tensor_type(d), s) for n, (d, s) in inputs.items()],
        [helper.make_tensor_value_info(n, tensor_type(d), None) for n, d in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def recurrent_model(op, attrs, arrays: dict, outputs, opset=14):
    """One recurrent node: W, R, B, P as initializers, the other given arrays as inputs."""
    names = [name if name in arrays else "" for name in INPUTS[op]]
    while not names[-1]:
        names.pop()
    node = helper.make_node(op, names, list(outputs), name="rnn", **attrs)
    dtype = arrays["X"].dtype
    feeds = {n: v for n, v in arrays.items() if n not in WEIGHTS}
    model = make_model([node], {n: (v.dtype, [None] * v.ndim) for n, v in feeds.items()},
                       {o: dtype for o in outputs if o},
                       {n: v for n, v in arrays.items() if n in WEIGHTS}, opset)
    return model, feeds


def ort_run(model, feeds, outputs=None):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def random_case(op, seed, activations=True):
    """Random attributes and arrays for one node (float64, layout 0), as a dict of arrays."""
    rng = np.random.default_rng([seed, len(op)])
    direction = ["forward", "reverse", "bidirectional"][seed % 3]
    D = 2 if direction == "bidirectional" else 1
    G = onnx_reference.GATES[op]
    T, batch, k, p = rng.integers(1, 7), rng.integers(1, 5), rng.integers(1, 5), rng.integers(1, 6)
    attrs = {"hidden_size": int(p), "direction": direction}
    arrays = {"X": rng.standard_normal((T, batch, k)),
              "W": rng.standard_normal((D, G * p, k)) * 0.6,
              "R": rng.standard_normal((D, G * p, p)) * 0.6}
    if rng.random() < 0.8:
        arrays["B"] = rng.standard_normal((D, 2 * G * p)) * 0.5
    if rng.random() < 0.5:
        arrays["sequence_lens"] = rng.integers(0, T + 1, batch).astype(np.int32)
    if rng.random() < 0.6:
        arrays["initial_h"] = rng.standard_normal((D, batch, p))
    if op == "LSTM":
        if rng.random() < 0.6:
            arrays["initial_c"] = rng.standard_normal((D, batch, p))
        if rng.random() < 0.5:
            arrays["P"] = rng.standard_normal((D, 3 * p)) * 0.5
        if rng.random() < 0.3:
            attrs["input_forget"] = 1
    if op == "GRU":
        attrs["linear_before_reset"] = int(rng.integers(0, 2))
    if rng.random() < 0.3:
        attrs["clip"] = float(np.float32(rng.uniform(0.3, 2.0)))
    if activations:  # each direction its own set; few sets, as each compiles its kernels
        pool = ACTIVATION_SETS[op]
        attrs["activations"] = [name for d in range(D) for name in pool[(seed + d) % len(pool)]]
        count = len(attrs["activations"])
        for key, high in (("activation_alpha", 0.9), ("activation_beta", 1.5)):
            # random length, or none: ONNX Runtime's defaults fill the rest
            values = rng.uniform(0.1, high, rng.integers(0, count + 1))
            if len(values):
                attrs[key] = [float(np.float32(v)) for v in values]
    outputs = list(OUTPUTS[op])
    if rng.random() < 0.3:
        outputs[rng.integers(0, len(outputs))] = ""  # an optional output left unnamed
    return attrs, arrays, outputs


def as_dtype(arrays, dtype):
    return {n: v if v.dtype.kind == "i" else v.astype(dtype) for n, v in arrays.items()}


CASES = [(op, seed) for op in ("RNN", "LSTM", "GRU") for seed in range(9)]


@pytest.mark.parametrize("op,seed", CASES, ids=[f"{op}-{seed}" for op, seed in CASES])
def test_random_node_matches_onnxruntime_and_reference(op, seed):
    attrs, arrays, outputs = random_case(op, seed, activations=seed % 4 != 3)
    model, feeds = recurrent_model(op, attrs, as_dtype(arrays, np.float32), outputs)
    expected = ort_run(model, feeds)
    actual = rnnsim.from_onnx(model).run(feeds)
    reference = dict(zip(OUTPUTS[op], onnx_reference.run(op, attrs, **as_dtype(arrays, np.float32)
                                                         )))
    assert sorted(actual) == sorted(o for o in outputs if o)
    for name, value in expected.items():
        assert actual[name].dtype == np.float32
        np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)
        np.testing.assert_allclose(reference[name], value, **ORT_TOL, err_msg=f"ref {name}")


@pytest.mark.parametrize("op,seed", CASES[::2], ids=[f"{op}-{seed}" for op, seed in CASES[::2]])
@pytest.mark.parametrize("layout", [0, 1])
def test_float64_and_layouts_match_the_reference(op, seed, layout):
    """What ONNX Runtime does not run (float64, layout=1) against the NumPy reference."""
    attrs, arrays, outputs = random_case(op, seed, activations=seed % 2 == 0)
    attrs["layout"] = layout
    if layout:
        arrays = {n: v.transpose(1, 0, 2) if n in ("X", "initial_h", "initial_c") else v
                  for n, v in arrays.items()}
    model, feeds = recurrent_model(op, attrs, arrays, outputs)
    actual = rnnsim.from_onnx(model).run(feeds)
    expected = dict(zip(OUTPUTS[op], onnx_reference.run(op, attrs, **arrays)))
    for name in actual:
        assert actual[name].dtype == np.float64
        np.testing.assert_allclose(actual[name], expected[name], **F64_TOL, err_msg=name)


def test_every_onnx_activation_with_alpha_beta_in_each_direction():
    """All eleven functions, parameters consumed in list order across both directions."""
    rng = np.random.default_rng(7)
    T, batch, k, p = 5, 2, 3, 4
    for first in range(0, 11, 2):
        names = [ONNX_ACTIVATIONS[first], ONNX_ACTIVATIONS[(first + 1) % 11]]
        attrs = {"hidden_size": p, "direction": "bidirectional", "activations": names,
                 "activation_alpha": [0.7, 0.4], "activation_beta": [0.3]}
        arrays = {"X": rng.standard_normal((T, batch, k)).astype(np.float32),
                  "W": (rng.standard_normal((2, p, k)) * 0.5).astype(np.float32),
                  "R": (rng.standard_normal((2, p, p)) * 0.5).astype(np.float32)}
        model, feeds = recurrent_model("RNN", attrs, arrays, ["Y", "Y_h"])
        expected = ort_run(model, feeds)
        actual = rnnsim.from_onnx(model).run(feeds)
        for name in expected:
            np.testing.assert_allclose(actual[name], expected[name], **ORT_TOL,
                                       err_msg=f"{names} {name}")


@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_clip_matches_onnxruntime(peepholes):
    """clip bounds the gates' pre-activations; ONNX Runtime feeds h() the unclipped c_t."""
    rng = np.random.default_rng(4)
    arrays = {"X": rng.standard_normal((5, 2, 3)), "W": rng.standard_normal((1, 12, 3)),
              "R": rng.standard_normal((1, 12, 3)), "initial_c": 3 * np.ones((1, 2, 3))}
    if peepholes:
        arrays["P"] = rng.standard_normal((1, 9))
    model, feeds = recurrent_model("LSTM", {"hidden_size": 3, "clip": 0.5},
                                   as_dtype(arrays, np.float32), ["Y", "Y_h", "Y_c"])
    actual = rnnsim.from_onnx(model).run(feeds)
    for name, value in ort_run(model, feeds).items():
        np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)


def test_sequence_of_length_zero_ends_in_zero_states():
    rng = np.random.default_rng(3)
    arrays = {"X": rng.standard_normal((4, 3, 2)).astype(np.float32),
              "W": rng.standard_normal((2, 12, 2)).astype(np.float32),
              "R": rng.standard_normal((2, 12, 3)).astype(np.float32),
              "sequence_lens": np.array([0, 2, 4], np.int32),
              "initial_h": np.ones((2, 3, 3), np.float32),
              "initial_c": np.ones((2, 3, 3), np.float32)}
    model, feeds = recurrent_model("LSTM", {"hidden_size": 3, "direction": "bidirectional"},
                                   arrays, ["Y", "Y_h", "Y_c"])
    actual = rnnsim.from_onnx(model).run(feeds)
    assert not actual["Y_h"][:, 0].any() and not actual["Y_c"][:, 0].any()
    assert not actual["Y"][:, :, 0].any() and not actual["Y"][2:, :, 1].any()
    for name, value in ort_run(model, feeds).items():
        np.testing.assert_allclose(actual[name], value, **ORT_TOL)


def test_streaming_one_step_calls_equal_one_run():
    """Feeding Y_h and Y_c back as initial_h and initial_c, one step per call."""
    rng = np.random.default_rng(5)
    p, k = 6, 3
    weights = {"W": rng.standard_normal((1, 4 * p, k)).astype(np.float32),
               "R": rng.standard_normal((1, 4 * p, p)).astype(np.float32)}
    x = rng.standard_normal((9, 1, k)).astype(np.float32)
    state = {"initial_h": np.zeros((1, 1, p), np.float32),
             "initial_c": np.zeros((1, 1, p), np.float32)}
    model, _ = recurrent_model("LSTM", {"hidden_size": p}, {"X": x, **weights, **state},
                               ["Y", "Y_h", "Y_c"])
    net = rnnsim.from_onnx(model)
    whole = net.run({"X": x, **state})
    for t in range(len(x)):
        out = net.run({"X": x[t:t + 1], **state})
        np.testing.assert_array_equal(out["Y"][0], whole["Y"][t])
        state = {"initial_h": out["Y_h"], "initial_c": out["Y_c"]}
    np.testing.assert_array_equal(state["initial_c"], whole["Y_c"])


def one_step_model(op, seed, layout, states=True):
    """A one-node model of random weights for one-step calls: (model, feeds of one step, the
    ``run`` feeds of five steps, outputs)."""
    attrs, arrays, _ = random_case(op, seed, activations=False)
    attrs["layout"] = layout
    rng = np.random.default_rng(seed)
    D, (_, B, k), p = len(arrays["W"]), arrays["X"].shape, attrs["hidden_size"]
    names = ["initial_h", "initial_c"][:2 if op == "LSTM" else 1] if states else []
    state = {name: rng.standard_normal((B, D, p) if layout else (D, B, p)) for name in names}
    x = rng.standard_normal((B, 5, k) if layout else (5, B, k))
    weights = {n: v for n, v in arrays.items() if n in WEIGHTS}
    arrays = as_dtype({"X": x, **weights, **state}, np.float32)
    outputs = OUTPUTS[op]
    model, feeds = recurrent_model(op, attrs, arrays, outputs)
    one = {**feeds, "X": feeds["X"][:, :1] if layout else feeds["X"][:1]}
    return model, one, feeds, outputs


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("seed, layout, states", [(0, 0, True), (1, 1, True), (2, 0, False),
                                                  (5, 1, False)])
def test_one_step_graph_calls_skip_the_node_by_node_path(op, seed, layout, states,
                                                         monkeypatch):
    """A one-node graph called for one timestep goes straight to the compiled step: the same
    bits as the node-by-node path (taken by a feeds Mapping that is not a dict), ONNX
    Runtime's values (layout 0) and the reference's (layout 1); the outputs are the caller's
    to keep."""
    import types

    model, one, _, outputs = one_step_model(op, seed, layout, states)
    net = rnnsim.from_onnx(model)
    general = net.run(types.MappingProxyType(one))
    with monkeypatch.context() as patched:  # the general path would now fail
        patched.setattr(onnx_graph.OnnxModel, "_checked_feeds", None)
        fast = net.run(one)
        again = net.run(one, outputs=outputs[1:])
    assert list(fast) == outputs and list(again) == outputs[1:]
    for name in outputs:
        np.testing.assert_array_equal(fast[name], general[name], err_msg=name)
        assert fast[name].flags.c_contiguous and fast[name].flags.writeable
    for name in outputs[1:]:
        np.testing.assert_array_equal(again[name], general[name], err_msg=name)
    if layout:
        attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
        weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        expected = dict(zip(OUTPUTS[op], onnx_reference.run(op, attrs, **one, **weights)))
    else:
        expected = ort_run(model, one)
    for name in outputs:
        np.testing.assert_allclose(fast[name], expected[name], rtol=1e-5, atol=1e-6)
    fast[outputs[-1]][...] = 7  # the caller's copy: the next call is not affected
    np.testing.assert_array_equal(net.run(one)[outputs[-1]], general[outputs[-1]])


@pytest.mark.parametrize("path", ["one-step graph", "node by node"])
def test_one_step_calls_from_several_threads_keep_their_own_values(path):
    """Concurrent one-timestep calls of one model (a server's threads) each get the outputs
    of their own feeds, on the compiled one-step path and on the node-by-node path (a feeds
    Mapping that is not a dict) that steps a node through the same binding."""
    import types
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    p, k = 64, 8
    arrays = {"X": rng.standard_normal((1, 1, k)), "W": rng.standard_normal((1, 4 * p, k)),
              "R": 0.2 * rng.standard_normal((1, 4 * p, p)),
              "B": rng.standard_normal((1, 8 * p)), "initial_h": np.zeros((1, 1, p)),
              "initial_c": np.zeros((1, 1, p))}
    model, _ = recurrent_model("LSTM", {"hidden_size": p}, as_dtype(arrays, np.float32),
                               OUTPUTS["LSTM"])
    net = rnnsim.from_onnx(model)
    wrap = dict if path == "one-step graph" else types.MappingProxyType
    calls = [wrap({"X": rng.standard_normal((1, 1, k)).astype(np.float32),
                   "initial_h": rng.standard_normal((1, 1, p)).astype(np.float32),
                   "initial_c": rng.standard_normal((1, 1, p)).astype(np.float32)})
             for _ in range(200)]
    alone = [net.run(feeds)["Y_c"] for feeds in calls]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            together = pool.map(lambda feeds: net.run(feeds)["Y_c"], calls)
            assert all(np.array_equal(a, b) for a, b in zip(alone, together))


def test_one_step_graph_calls_report_bad_feeds_as_the_general_path_does():
    """Whatever the direct call does not expect runs the node-by-node path, which names it:
    NaN in X or in a state, another dtype or shape, a batch the declared dims refuse, a
    state that diverges; check_finite=False returns the values. A good call works after."""
    model, one, _, _ = one_step_model("LSTM", 0, 0)
    B = one["X"].shape[1]
    model.graph.input[1].CopyFrom(helper.make_tensor_value_info(  # its batch size declared
        "initial_h", TensorProto.FLOAT, [1, B, None]))
    net = rnnsim.from_onnx(model)
    good = net.run(one)
    nan_h = {**one, "initial_h": np.where(np.arange(one["initial_h"].size) == 1, np.nan,
                                          one["initial_h"].ravel()).reshape(
                                              one["initial_h"].shape).astype(np.float32)}
    with pytest.raises(InputError, match="input 'initial_h' holds NaN"):
        net.run(nan_h)
    with pytest.raises(InputError, match="input 'X' holds NaN"):
        net.run({**one, "X": np.full_like(one["X"], np.nan)})
    with pytest.raises(ShapeError, match="input 'initial_c' has dtype float64"):
        net.run({**one, "initial_c": one["initial_c"].astype(np.float64)})
    with pytest.raises(ShapeError, match=rf"axis 1 must be {B}"):
        net.run({name: np.zeros(v.shape[:1] + (B + 1,) + v.shape[2:], np.float32)
                 for name, v in one.items()})
    with pytest.raises(ShapeError, match=rf"initial_c has shape \(1, 1, 2\); expected "
                                         rf"\(1, {B}, 2\)"):
        net.run({**one, "initial_c": one["initial_c"][:, :1].copy()})
    assert not np.isfinite(net.run(nan_h, check_finite=False)["Y_h"]).all()
    for name, value in net.run(one).items():
        np.testing.assert_array_equal(value, good[name])
    growing, feeds = recurrent_model("RNN", {"hidden_size": 2, "activations": ["Relu"]}, {
        "X": np.ones((1, 1, 1), np.float32), "W": np.ones((1, 2, 1), np.float32),
        "R": 10 * np.eye(2, dtype=np.float32)[None],
        "initial_h": np.full((1, 1, 2), 1e38, np.float32)}, ["Y", "Y_h"])
    net = rnnsim.from_onnx(growing)
    with pytest.raises(rnnsim.NonfiniteError, match="output 'Y' holds NaN or inf"):
        net.run(feeds)
    assert np.isinf(net.run(feeds, check_finite=False)["Y_h"]).all()


def test_a_nan_is_named_where_it_is_made_not_where_it_is_moved():
    """Nodes that only move values (Transpose, Reshape...) are not checked: the error names
    the Div that made the inf, and a graph of moves alone passes finite feeds through."""
    nodes = [helper.make_node("Div", ["x", "d"], ["q"], name="divide"),
             helper.make_node("Transpose", ["q"], ["t"], perm=[1, 0], name="turn"),
             helper.make_node("Reshape", ["t", "shape"], ["y"], name="flat")]
    graph = helper.make_graph(
        nodes, "moves", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                         helper.make_tensor_value_info("d", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([6], np.int64), "shape")])
    net = rnnsim.from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]))
    x = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    np.testing.assert_array_equal(net.run({"x": x, "d": np.ones_like(x)})["y"], x.T.ravel())
    with pytest.raises(rnnsim.NonfiniteError, match=r"node 'divide' \(Div\) output 'q'"):
        net.run({"x": x, "d": np.zeros_like(x)})
    assert np.isinf(net.run({"x": x, "d": np.zeros_like(x)}, check_finite=False)["y"]).all()


def test_weights_computed_by_the_graph_or_fed():
    """W made by a node (folded at load) and R fed as an input (checked and mapped on every
    run)."""
    rng = np.random.default_rng(11)
    p, k = 3, 2
    W = rng.standard_normal((3 * p, k, 1)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["Wt"], ["W"], perm=[2, 0, 1]),
             helper.make_node("GRU", ["X", "W", "R"], ["Y"], name="rnn", hidden_size=p)]
    model = make_model(nodes, {"X": (np.float32, [4, 2, k]), "R": (np.float32, [1, None, None])},
                       {"Y": np.float32}, {"Wt": W})
    net = rnnsim.from_onnx(model)
    assert net.describe()["recurrent"][0]["weights"] == {"W": [1, 9, 2]}  # folded at load
    for seed in range(2):
        feeds = {"X": rng.standard_normal((4, 2, k)).astype(np.float32),
                 "R": rng.standard_normal((1, 3 * p, p)).astype(np.float32)}
        np.testing.assert_allclose(net.run(feeds)["Y"], ort_run(model, feeds)["Y"], **ORT_TOL)
    with pytest.raises(ShapeError, match=r"node 'rnn' \(GRU\): R has shape \(1, 9, 4\); "
                                         r"expected \(1, 9, 3\)"):
        net.run({**feeds, "R": np.zeros((1, 3 * p, p + 1), np.float32)})


# ---- whole graphs ----------------------------------------------------------------------------

EXPORTS = Path(__file__).parent / "data" / "onnx_exports"
EXPORT_FILES = sorted(path.name for path in EXPORTS.glob("*.onnx"))


@pytest.mark.parametrize("filename", EXPORT_FILES)
def test_torch_exports_at_several_opsets_match_torch_and_onnxruntime(filename):
    """Graphs torch.onnx.export wrote at opsets 9 to 17 (tests/data/onnx_exports/make.py), run
    on inputs of other shapes than at export, against PyTorch's outputs and ONNX Runtime."""
    model = onnx.load(EXPORTS / filename)
    with np.load(EXPORTS / (filename.rsplit("-opset", 1)[0] + ".npz")) as data:
        arrays = {name: data[name] for name in data.files}
    net = rnnsim.from_onnx(EXPORTS / filename)
    feeds = {name: arrays[name] for name in net.input_names}
    actual = net.run(feeds)
    expected = ort_run(model, feeds)
    assert list(actual) == net.output_names == list(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)
        np.testing.assert_allclose(actual[name], arrays[name], **ORT_TOL, err_msg=name)


def test_exports_cover_every_operator_of_the_fast_path():
    used = {node.op_type for name in EXPORT_FILES for node in onnx.load(EXPORTS / name).graph.node}
    used |= {node.op_type for node in glue_graph(13).graph.node}
    used |= {node.op_type for node in fast_path_graph().graph.node}
    assert set(onnx_recurrent.RECURRENT) | set(onnx_ops.OPS) <= used


NEWEST = [name for name in EXPORT_FILES if name.endswith("-opset17.onnx")]


@pytest.mark.parametrize("opset", [18, 21, 24])
@pytest.mark.parametrize("filename", NEWEST)
def test_exports_converted_to_newer_opsets(filename, opset):
    """The opset-17 exports lifted by onnx.version_converter up to the newest opsets."""
    converted = onnx.version_converter.convert_version(onnx.load(EXPORTS / filename), opset)
    assert converted.opset_import[0].version == opset
    with np.load(EXPORTS / filename.replace("-opset17.onnx", ".npz")) as data:
        arrays = {name: data[name] for name in data.files}
    net = rnnsim.from_onnx(converted)
    actual = net.run({name: arrays[name] for name in net.input_names})
    for name in net.output_names:
        np.testing.assert_allclose(actual[name], arrays[name], **ORT_TOL, err_msg=name)


def test_operators_onnx_does_not_define_are_refused_in_one_error():
    """torch writes ConstantFill (an experimental operator ONNX dropped) at opset 7; Cast runs."""
    nodes = [helper.make_node("ConstantFill", ["x"], ["h"], name="fill"),
             helper.make_node("Cast", ["h"], ["c"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Frobnicate", ["c"], ["y"], name="frob")]
    model = make_model(nodes, {"x": (np.float32, [1])}, {"y": np.float32}, {}, opset=7)
    with pytest.raises(ConfigError, match=r"not standard ONNX operators at the model's opset "
                                          r".*ConstantFill .*'fill'; Frobnicate .*'frob'"):
        rnnsim.from_onnx(model)


def glue_graph(opset):
    """ids -> embedding -> LSTM -> last step -> heads, with the exporter's glue in ``opset``'s
    forms (Slice, Squeeze, Unsqueeze axes as attributes or inputs; Softmax's axis)."""
    rng = np.random.default_rng(2)
    p, k, vocab = 5, 4, 11
    init = {"emb": rng.standard_normal((vocab, k)).astype(np.float32),
            "W": rng.standard_normal((1, 4 * p, k)).astype(np.float32),
            "R": rng.standard_normal((1, 4 * p, p)).astype(np.float32),
            "head_w": rng.standard_normal((p, 3)).astype(np.float32),
            "head_b": rng.standard_normal(3).astype(np.float32),
            "gemm_w": rng.standard_normal((2, 3)).astype(np.float32),
            "gemm_c": rng.standard_normal((1, 2)).astype(np.float32),
            "tbk": np.array([0, -1, k], np.int64), "one_shape": np.array([1, 1, p], np.int64),
            "p_vec": np.array([p], np.int64), "zero": np.array(0, np.int64),
            "last": np.array(-1, np.int64), "axes0": np.array([0], np.int64),
            "axes01": np.array([0, 1], np.int64), "starts": np.array([-1], np.int64),
            "ends": np.array([-2 ** 62], np.int64), "step": np.array([-1], np.int64),
            "one": np.array([1], np.int64)}

    def axes(node_inputs, values, name):  # axes as an attribute before opset 13, else an input
        return (dict(inputs=node_inputs, axes=values) if opset < 13
                else dict(inputs=node_inputs + [name]))

    def node(op, inputs, outputs, **attrs):
        return helper.make_node(op, inputs, outputs, **attrs)

    unsqueeze = axes(["b_dim"], [0], "axes0")
    squeeze = axes(["Y_last4"], [0, 1], "axes01")
    if opset < 12:
        ones = node("Constant", [], ["one_vec"], value=numpy_helper.from_array(init["one"]))
    else:
        ones = node("Constant", [], ["one_vec"], value_ints=[1])
    if opset < 10:
        last_step = [node("Slice", ["Y"], ["Y_last4"], starts=[-1], ends=[2 ** 62], axes=[0])]
    else:
        last_step = [node("Slice", ["Y", "starts", "ends", "axes0", "step"], ["Y_rev"]),
                     node("Slice", ["Y_rev", "zero_vec", "one", "axes0"], ["Y_last4"])]
        init["zero_vec"] = np.array([0], np.int64)
    nodes = [
        node("Gather", ["emb", "ids"], ["e"]),
        node("Transpose", ["e"], ["e_tbk"], perm=[1, 0, 2]),
        node("Reshape", ["e_tbk", "tbk"], ["x"]),
        node("Shape", ["e"], ["e_shape"]),
        node("Gather", ["e_shape", "zero"], ["b_dim"], axis=0),
        node("Unsqueeze", unsqueeze.pop("inputs"), ["b_vec"], **unsqueeze),
        ones,
        node("Concat", ["one_vec", "b_vec", "p_vec"], ["h_shape"], axis=0),
        node("ConstantOfShape", ["one_shape"], ["h_one"],
             value=numpy_helper.from_array(np.array([0.25], np.float32))),
        node("Expand", ["h_one", "h_shape"], ["h0"]),
        node("LSTM", ["x", "W", "R", "", "", "h0"], ["Y", "Y_h"], hidden_size=p),
        *last_step,
        node("Squeeze", squeeze.pop("inputs"), ["Y_last"], **squeeze),
        node("Squeeze", ["Y_h"], ["h_squeezed"]),
        node("MatMul", ["Y_last", "head_w"], ["logits0"]),
        node("Add", ["logits0", "head_b"], ["logits"]),
        node("Relu", ["logits"], ["relu"]),
        node("Tanh", ["logits"], ["tanh"]),
        node("Sigmoid", ["logits"], ["sigmoid"]),
        node("Softmax", ["logits"], ["probs"], axis=1),
        node("Softmax", ["Y"], ["y_soft"], axis=2),  # 2-D coercion before opset 13
        node("Gemm", ["relu", "gemm_w", "gemm_c"], ["gemm"], alpha=0.5, beta=2.0, transB=1),
        node("Gather", ["tanh", "last"], ["last_class"], axis=1),
    ]
    outputs = {name: np.float32 for name in ("probs", "sigmoid", "gemm", "last_class",
                                              "y_soft", "h_squeezed")}
    return make_model(nodes, {"ids": (np.int64, ["batch", "steps"])}, outputs, init, opset)


def fast_path_graph(opset=13):
    """The fast-path operators the exports above do not use, with shape arithmetic."""
    rng = np.random.default_rng(3)
    init = {"scale": rng.standard_normal(4).astype(np.float32),
            "shift": rng.standard_normal(4).astype(np.float32),
            "two": np.array([2], np.int64), "minus_one": np.array([-1], np.int64)}
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Mul", ["b", "two"], ["b2"]),
             helper.make_node("Sub", ["b2", "b"], ["b_again"]),
             helper.make_node("Concat", ["b_again", "minus_one"], ["shape2"], axis=0),
             helper.make_node("Reshape", ["x", "shape2"], ["flat"]),
             helper.make_node("Mul", ["x", "scale"], ["scaled"]),
             helper.make_node("Sub", ["scaled", "shift"], ["moved"]),
             helper.make_node("LogSoftmax", ["moved"], ["log_probs"], axis=-1 if opset >= 13
                              else 1),
             helper.make_node("Softmax", ["moved"], ["probs"], axis=1)]
    init["zero"] = np.array([0], np.int64)
    return make_model(nodes, {"x": (np.float32, ["batch", 3, 4])},
                      {"flat": np.float32, "log_probs": np.float32, "probs": np.float32},
                      init, opset)


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_fast_path_agrees_with_onnx_reference_and_onnxruntime(opset, monkeypatch):
    """Each fast-path operator against ONNX Runtime, and (opset 13 on, where onnx.reference
    implements Softmax's current form) against the same graph run by onnx.reference alone."""
    rng = np.random.default_rng(1)
    cases = [(glue_graph(opset), {"ids": rng.integers(0, 11, (2, 6))}),
             (fast_path_graph(opset), {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)})]
    for model, feeds in cases:
        fast = rnnsim.from_onnx(model).run(feeds)
        for name, value in ort_run(model, feeds).items():
            np.testing.assert_allclose(fast[name], value, **ORT_TOL, err_msg=name)
        if opset >= 13:
            monkeypatch.setattr(onnx_graph, "OPS", {})
            for name, value in rnnsim.from_onnx(model).run(feeds).items():
                np.testing.assert_allclose(fast[name], value, rtol=1e-6, atol=1e-6,
                                           err_msg=name)
            monkeypatch.undo()


@pytest.mark.parametrize("opset", [9, 11, 12, 13, 14, 17])
def test_glue_and_heads_match_onnxruntime(opset):
    model = glue_graph(opset)
    feeds = {"ids": np.random.default_rng(0).integers(0, 11, (3, 6))}
    expected = ort_run(model, feeds)
    net = rnnsim.from_onnx(model)
    actual = net.run(feeds)
    assert list(actual) == net.output_names
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)
    only = net.run(feeds, outputs=["probs"])
    assert list(only) == ["probs"]
    np.testing.assert_array_equal(only["probs"], actual["probs"])


def test_only_the_nodes_an_asked_output_needs_run():
    nodes = [helper.make_node("Reshape", ["x", "bad_shape"], ["broken"]),
             helper.make_node("Relu", ["x"], ["fine"])]
    model = make_model(nodes, {"x": (np.float32, [2, 3])},
                       {"broken": np.float32, "fine": np.float32},
                       {"bad_shape": np.array([4, 4], np.int64)})
    net = rnnsim.from_onnx(model)
    x = -np.ones((2, 3), np.float32)
    assert not net.run({"x": x}, outputs=["fine"])["fine"].any()
    with pytest.raises(ShapeError, match=r"node '#0' \(Reshape\) failed on inputs 'x' float32 "
                                         r"\(2, 3\), 'bad_shape' int64 \(2,\)"):
        net.run({"x": x})


# ---- loading and errors ----------------------------------------------------------------------

def lstm_arrays(D=1, p=3, k=2, T=4, batch=2):
    rng = np.random.default_rng(0)
    return {"X": rng.standard_normal((T, batch, k)).astype(np.float32),
            "W": rng.standard_normal((D, 4 * p, k)).astype(np.float32),
            "R": rng.standard_normal((D, 4 * p, p)).astype(np.float32)}


def test_file_round_trip_and_session_like_api(tmp_path):
    model, feeds = recurrent_model("LSTM", {"hidden_size": 3}, lstm_arrays(), ["", "Y_h"])
    onnx.save(model, tmp_path / "m.onnx")
    net = rnnsim.from_onnx(str(tmp_path / "m.onnx"))
    assert net.input_names == ["X"] and net.output_names == ["Y_h"]
    out = net.run(feeds)
    assert list(out) == ["Y_h"]
    np.testing.assert_allclose(out["Y_h"], ort_run(model, feeds)["Y_h"], **ORT_TOL)
    info = net.describe()
    assert info["recurrent"][0]["weights"] == {"W": [1, 12, 2], "R": [1, 12, 3]}
    assert info["recurrent"][0]["activations"] == [["Sigmoid", "Tanh", "Tanh"]]


def test_operators_of_other_domains_are_listed_in_one_error():
    ms = "com.microsoft"
    nodes = [helper.make_node("FusedMatMul", ["x", "x"], ["a"], name="fm_a", domain=ms),
             helper.make_node("Mul", ["a", "a"], ["b"], name="square"),
             helper.make_node("FusedMatMul", ["b", "b"], ["c"], name="fm_c", domain=ms),
             helper.make_node("Gelu", ["c"], ["y"], name="gelu", domain="custom")]
    model = make_model(nodes, {"x": (np.float32, [2, 2])}, {"y": np.float32}, {})
    model.opset_import.extend([helper.make_opsetid("com.microsoft", 1),
                               helper.make_opsetid("custom", 1)])
    with pytest.raises(ConfigError) as error:
        rnnsim.from_onnx(model)
    message = str(error.value)
    assert ("com.microsoft.FusedMatMul (nodes 'fm_a', 'fm_c'); custom.Gelu (node 'gelu')"
            in message)
    assert "'square'" not in message and "standard ONNX domains" in message


def test_missing_onnx_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(InputError, match=r"pip install 'rnnsim\[onnx\]'"):
        rnnsim.from_onnx(tmp_path / "m.onnx")


def test_external_data_only_from_inside_the_model_folder(tmp_path):
    model, feeds = recurrent_model("LSTM", {"hidden_size": 3}, lstm_arrays(), ["Y"])
    inside = tmp_path / "model"
    inside.mkdir()
    expected = ort_run(model, feeds)["Y"]
    onnx.save(onnx.ModelProto.FromString(model.SerializeToString()), inside / "m.onnx",
              save_as_external_data=True,
              all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert (inside / "weights.bin").is_file()
    np.testing.assert_allclose(rnnsim.from_onnx(inside / "m.onnx").run(feeds)["Y"], expected,
                               **ORT_TOL)
    (tmp_path / "secret.bin").write_bytes((inside / "weights.bin").read_bytes())
    escaped = onnx.load(inside / "m.onnx", load_external_data=False)
    for tensor in escaped.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    onnx.save(escaped, inside / "escaped.onnx")
    with pytest.raises(InputError, match=r"tensor 'W' keeps its data in external file "
                                         r"'../secret.bin', outside the model's folder"):
        rnnsim.from_onnx(inside / "escaped.onnx")


@pytest.mark.parametrize("attrs,message", [
    ({"direction": "sideways"}, "direction 'sideways' is not one of"),
    ({"layout": 2}, "layout 2 must be 0"),
    ({"clip": -1.0}, "clip -1.0 must be positive"),
    ({"activations": ["Sigmoid", "Tanh"]}, r"must list 3 function\(s\) per direction"),
    ({"activations": ["Sigmoid", "Tanh", "Swish"]}, r"activations\[2\] 'Swish' is not an ONNX"),
    ({"output_sequence": 1}, r"unknown attribute\(s\) \['output_sequence'\]"),
    ({"hidden_size": 4}, r"W has shape \(1, 12, 2\); expected \(num_directions=1, "
                         r"4\*hidden_size=16, input_size\) for hidden_size=4"),
])
def test_bad_attributes_are_refused_at_load(attrs, message):
    model, _ = recurrent_model("LSTM", {"hidden_size": 3, **attrs}, lstm_arrays(), ["Y"])
    with pytest.raises((ConfigError, ShapeError), match=message):
        rnnsim.from_onnx(model)


def test_weight_dtypes_and_shapes_are_checked_at_load():
    arrays = lstm_arrays()
    arrays["B"] = np.zeros((1, 20))
    model, _ = recurrent_model("LSTM", {"hidden_size": 3}, arrays, ["Y"])
    with pytest.raises(ShapeError, match=r"node 'rnn' \(LSTM\): B has dtype float64, but W has "
                                         "float32"):
        rnnsim.from_onnx(model)
    arrays["B"] = np.zeros((1, 20), np.float32)
    model, _ = recurrent_model("LSTM", {"hidden_size": 3}, arrays, ["Y"])
    with pytest.raises(ShapeError, match=r"B has shape \(1, 20\); expected \(1, 24\)"):
        rnnsim.from_onnx(model)


def test_feeds_are_checked_with_the_tensor_named():
    arrays = lstm_arrays()
    arrays["sequence_lens"] = np.array([4, 2], np.int32)
    arrays["initial_h"] = np.zeros((1, 2, 3), np.float32)
    model, feeds = recurrent_model("LSTM", {"hidden_size": 3}, arrays, ["Y"])
    net = rnnsim.from_onnx(model)
    with pytest.raises(InputError, match=r"missing input\(s\) \['initial_h'\]"):
        net.run({"X": feeds["X"], "sequence_lens": feeds["sequence_lens"]})
    with pytest.raises(InputError, match=r"unknown input\(s\) \['x'\]"):
        net.run({**feeds, "x": feeds["X"]})
    with pytest.raises(ShapeError, match=r"input 'X' has dtype float64; the model declares "
                                         "float32"):
        net.run({**feeds, "X": feeds["X"].astype(np.float64)})
    with pytest.raises(ShapeError, match=r"X has shape \(4, 2, 5\); expected \(seq_length, "
                                         r"batch_size, input_size=2\)"):
        net.run({**feeds, "X": np.zeros((4, 2, 5), np.float32)})
    with pytest.raises(ShapeError, match=r"initial_h has shape \(2, 1, 3\); expected "
                                         r"\(1, 2, 3\)"):
        net.run({**feeds, "initial_h": np.zeros((2, 1, 3), np.float32)})
    with pytest.raises(InputError, match=r"sequence_lens holds \[5, 2\]; every length must lie "
                                         r"in \[0, 4\]"):
        net.run({**feeds, "sequence_lens": np.array([5, 2], np.int32)})
    with pytest.raises(InputError, match="input 'X' holds NaN"):
        net.run({**feeds, "X": np.full((4, 2, 2), np.nan, np.float32)})
    with pytest.raises(InputError, match=r"unknown output\(s\) \['Y_h'\]"):
        net.run(feeds, outputs=["Y_h"])


def test_declared_input_shapes_are_enforced():
    node = helper.make_node("Relu", ["x"], ["y"])
    model = make_model([node], {"x": (np.float32, ["batch", 3])}, {"y": np.float32}, {})
    net = rnnsim.from_onnx(model)
    with pytest.raises(ShapeError, match=r"input 'x' has shape \(2, 4\); the model declares "
                                         r"\(batch, 3\) \(axis 1 must be 3\)"):
        net.run({"x": np.zeros((2, 4), np.float32)})
    with pytest.raises(ShapeError, match="declares 2 axes"):
        net.run({"x": np.zeros(3, np.float32)})


def test_unreadable_models(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00 not protobuf \xff" * 10)
    with pytest.raises(InputError, match="cannot be read as an ONNX model"):
        rnnsim.from_onnx(tmp_path / "junk.onnx")
    with pytest.raises(InputError, match="does not exist"):
        rnnsim.from_onnx(tmp_path / "none.onnx")
    old, _ = recurrent_model("RNN", {"hidden_size": 2}, {
        "X": np.zeros((1, 1, 1), np.float32), "W": np.zeros((1, 2, 1), np.float32),
        "R": np.zeros((1, 2, 2), np.float32)}, ["Y"], opset=6)
    with pytest.raises(ConfigError, match="opset 6 is older than 7"):
        rnnsim.from_onnx(old)
    unordered = make_model([helper.make_node("Relu", ["a"], ["y"]),
                            helper.make_node("Relu", ["x"], ["a"])],
                           {"x": (np.float32, [1])}, {"y": np.float32}, {})
    with pytest.raises(ConfigError, match="reads 'a', which no earlier node"):
        rnnsim.from_onnx(unordered)


# ---- CLI -------------------------------------------------------------------------------------

@pytest.fixture
def saved_model(tmp_path):
    arrays = lstm_arrays(D=2)
    arrays["initial_h"] = np.zeros((2, 2, 3), np.float32)
    model, feeds = recurrent_model("LSTM", {"hidden_size": 3, "direction": "bidirectional"},
                                   arrays, ["Y", "Y_h"])
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "feeds.npz", **feeds)
    return tmp_path, model, feeds


def test_cli_run_writes_every_output(saved_model):
    folder, model, feeds = saved_model
    result = CliRunner().invoke(cli, ["run", str(folder / "m.onnx"), "--input",
                                      str(folder / "feeds.npz"), "--output",
                                      str(folder / "out.npz")])
    assert result.exit_code == 0, result.output
    assert "Y_h" in result.output and "(2, 2, 3)" in result.output
    expected = ort_run(model, feeds)
    with np.load(folder / "out.npz") as out:
        assert sorted(out.files) == ["Y", "Y_h"]
        for name in out.files:
            np.testing.assert_allclose(out[name], expected[name], **ORT_TOL)
    as_json = CliRunner().invoke(cli, ["run", str(folder / "m.onnx"), "--input",
                                       str(folder / "feeds.npz"), "--json"])
    summary = json.loads(as_json.output)
    assert summary["outputs"]["Y"] == {"dtype": "float32", "shape": [4, 2, 2, 3]}


def test_cli_run_errors(saved_model):
    folder, _, feeds = saved_model
    runner = CliRunner()
    no_input = runner.invoke(cli, ["run", str(folder / "m.onnx")])
    assert no_input.exit_code == 2 and "--input" in no_input.output
    other = runner.invoke(cli, ["run", str(folder / "m.onnx"), "--input",
                                str(folder / "feeds.npz"), "--timesteps", "3"])
    assert other.exit_code == 2 and "--timesteps" in other.output
    np.savez(folder / "bad.npz", X=feeds["X"])
    bad = runner.invoke(cli, ["run", str(folder / "m.onnx"), "--input", str(folder / "bad.npz"),
                              "--output", str(folder / "out.npz")])
    assert bad.exit_code == 1 and "missing input(s) ['initial_h']" in bad.output
    assert not (folder / "out.npz").exists()


def test_cli_info_lists_recurrent_nodes(saved_model):
    folder, _, _ = saved_model
    result = CliRunner().invoke(cli, ["info", str(folder / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "LSTM 'rnn'" in result.output and "bidirectional" in result.output
    assert "W (2, 12, 2)" in result.output and "hidden_size 3" in result.output
    as_json = json.loads(CliRunner().invoke(cli, ["info", str(folder / "m.onnx"),
                                                  "--json"]).output)
    assert as_json["recurrent"][0]["weights"]["R"] == [2, 12, 3]
    assert as_json["inputs"][0] == {"name": "X", "dtype": "float32", "shape": [None] * 3}


def test_the_python_example_in_the_docs_runs(monkeypatch):
    text = (Path(__file__).resolve().parents[1] / "docs" / "onnx.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    scope = {}
    exec(example, scope)
    assert scope["outputs"]["probs"].shape == (3, 3)
    np.testing.assert_allclose(scope["probs"].sum(axis=1), 1, rtol=1e-6)
    assert scope["model"].output_names == ["probs"]


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("seed", [0, 1, 2])  # forward, reverse, bidirectional
def test_one_step_calls_run_a_bound_compiled_step(op, seed):
    """A call of one timestep with constant weights runs through a ``BoundStep`` made once
    per batch size; it matches ONNX Runtime, and chained calls give the bits of one run."""
    attrs, arrays, outputs = random_case(op, seed, activations=False)
    arrays.pop("sequence_lens", None)
    rng = np.random.default_rng(seed)
    D, (_, B, k), p = len(arrays["W"]), arrays["X"].shape, attrs["hidden_size"]
    x = rng.standard_normal((5, B, k))
    states = {name: rng.standard_normal((D, B, p))
              for name in ["initial_h", "initial_c"][:2 if op == "LSTM" else 1]}
    outputs = ["Y", "Y_h", "Y_c"][:len(states) + 1]
    arrays = as_dtype({**arrays, "X": x, **states}, np.float32)  # ONNX Runtime's RNNs
    x, states = arrays["X"], {name: arrays[name] for name in states}
    model, _ = recurrent_model(op, attrs, arrays, outputs)
    net = rnnsim.from_onnx(model)
    (node,) = net.recurrent
    first = net.run({"X": x[:1], **states})
    assert list(node.bindings) == [B]
    expected = ort_run(model, {"X": x[:1], **states})
    for name in outputs:
        np.testing.assert_allclose(first[name], expected[name], rtol=1e-5, atol=1e-6)
    if attrs["direction"] != "forward":
        return  # a reverse direction runs backwards: chained single steps are not one run
    whole = net.run({"X": x, **states})
    for t in range(len(x)):
        out = net.run({"X": x[t:t + 1], **states})
        np.testing.assert_array_equal(out["Y"][0], whole["Y"][t])
        states = {name: out[name.replace("initial_", "Y_")] for name in states}
    for name in states:
        np.testing.assert_array_equal(states[name], whole[name.replace("initial_", "Y_")])
