"""Graphs built by hand around rnnsim's ONNX path: standard operators run by onnx.reference
(subgraphs included), hidden_size read from R's shape, and recurrences written out step by
step, fused into one kernel run where they are one, left alone where they are not; each
against ONNX Runtime (or the NumPy reference where ONNX Runtime does not run the model)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import onnx_reference
import rnnsim
from rnnsim import ShapeError
from rnnsim.cli import cli
from test_onnx import F64_TOL, ORT_TOL, make_model, ort_run


def unrolled_elman(T=5, k=3, p=4, dtype=np.float32, seed=0, per_step_weights=False,
                   feedback=False, leak=False, activation="Tanh", squared=False):
    """x_0..x_{T-1} (B, k) and h0 (B, p) in; h_t = act(x_t W + h_{t-1} U + b) out, every h_t
    and the last. ``per_step_weights``: each step its own U; ``feedback``: x_t for t > 0 is
    h_{t-1} V (a decoder); ``leak``: step 1's pre-activation is an output too; ``squared``:
    (h_{t-1} * h_{t-1}) U in place of h_{t-1} U, which unit probes cannot tell apart."""
    rng = np.random.default_rng(seed)
    init = {"W": rng.standard_normal((k, p)) * 0.5, "U": rng.standard_normal((p, p)) * 0.5,
            "b": rng.standard_normal(p) * 0.5, "V": rng.standard_normal((p, k))}
    nodes, inputs = [], {"h0": (dtype, ["batch", p]), "x0": (dtype, ["batch", k])}
    h = "h0"
    for t in range(T):
        x = f"x{t}"
        if t and feedback:
            nodes.append(helper.make_node("MatMul", [h, "V"], [x]))
        elif t:
            inputs[x] = (dtype, ["batch", k])
        U = f"U{t}" if per_step_weights else "U"
        if per_step_weights:
            init[U] = rng.standard_normal((p, p)) * 0.5
        if squared:
            nodes.append(helper.make_node("Mul", [h, h], [f"hh{t}"]))
        nodes += [helper.make_node("MatMul", [x, "W"], [f"xw{t}"], name=f"xw{t}"),
                  helper.make_node("MatMul", [f"hh{t}" if squared else h, U], [f"hu{t}"]),
                  helper.make_node("Add", [f"xw{t}", f"hu{t}"], [f"s{t}"]),
                  helper.make_node("Add", [f"s{t}", "b"], [f"z{t}"]),
                  helper.make_node(activation, [f"z{t}"], [f"h{t + 1}"], name=f"act{t}")]
        h = f"h{t + 1}"
    outputs = {f"h{t + 1}": dtype for t in range(T)}
    if leak:
        outputs["z1"] = dtype
    init = {name: value.astype(dtype) for name, value in init.items()}
    return make_model(nodes, inputs, outputs, init)


def feeds_for(model, batch=3, seed=1):
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        dims = [batch if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        feeds[value.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


@pytest.mark.parametrize("dtype,activation", [(np.float32, "Tanh"), (np.float64, "Relu")])
def test_unrolled_elman_chain_is_fused_and_matches_onnxruntime(dtype, activation):
    model = unrolled_elman(dtype=dtype, activation=activation)
    net = rnnsim.from_onnx(model)
    fused = net.describe()["fused"]
    assert [(f["cell"], f["activation"], f["steps"], f["input_size"], f["hidden_size"])
            for f in fused] == [("elman", activation.lower(), 5, 3, 4)]
    assert [node.op for node in net.nodes] == ["FusedElman"]
    for batch in (1, 3):
        feeds = feeds_for(model, batch)
        actual = net.run(feeds)
        tol = ORT_TOL if dtype == np.float32 else F64_TOL
        for name, value in ort_run(model, feeds).items():
            assert actual[name].dtype == dtype
            np.testing.assert_allclose(actual[name], value, **tol, err_msg=name)


@pytest.mark.parametrize("variant", ["per_step_weights", "feedback", "leak", "squared"])
def test_what_is_not_one_recurrence_is_left_alone_and_runs(variant):
    """Steps with different weights, a decoder feeding h_{t-1} back as x_t, a step whose inner
    tensor is also an output, a step that is not affine in the state (caught only by running
    it against the cell): not fused, and the same numbers."""
    model = unrolled_elman(**{variant: True})
    net = rnnsim.from_onnx(model)
    fused = net.describe()["fused"]
    assert fused == []
    feeds = feeds_for(model)
    actual = net.run(feeds)
    for name, value in ort_run(model, feeds).items():
        np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)


def test_fused_run_on_inputs_of_other_shapes_runs_the_original_nodes():
    """The fused node keeps the steps' nodes: inputs it was not fused for (here a 3-D x_t,
    which MatMul broadcasts) run through them, as the unfused graph would."""
    model = unrolled_elman(T=3)
    net = rnnsim.from_onnx(model)
    node = net.nodes[0]
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal((2, 1, 3)).astype(np.float32) for _ in range(3)]
    inputs.append(rng.standard_normal((2, 1, 4)).astype(np.float32))
    values = dict(net._constants)
    outputs = node.run(inputs, values)
    W, U, b = (onnx_value(model, name) for name in ("W", "U", "b"))
    h = inputs[3]
    for x, out in zip(inputs[:3], outputs):
        h = np.tanh(x @ W + h @ U + b)
        np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)


def onnx_value(model, name):
    from onnx import numpy_helper
    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


def test_cli_info_reports_the_fused_recurrence(tmp_path):
    import onnx
    onnx.save(unrolled_elman(), tmp_path / "unrolled.onnx")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "unrolled.onnx")])
    assert result.exit_code == 0, result.output
    assert "fused: elman (tanh) x 5 steps, input_size 3, hidden_size 4, 25 nodes" in result.output
    as_json = json.loads(CliRunner().invoke(cli, ["info", str(tmp_path / "unrolled.onnx"),
                                                  "--json"]).output)
    assert as_json["fused"][0]["steps"] == 5


# ---- every standard operator -----------------------------------------------------------------

def test_standard_operators_and_subgraphs_run_through_onnx_reference():
    """Pooling, normalisation, the variable-length glue and a Loop whose body reads a tensor
    of the outer graph, against ONNX Runtime."""
    rng = np.random.default_rng(5)
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "pooled"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("ReduceMean", ["x", "axis1"], ["pooled"], keepdims=0),
             helper.make_node("ReduceMax", ["x", "axis1"], ["maxed"], keepdims=0),
             helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["normed"], axis=-1),
             helper.make_node("Flatten", ["normed"], ["flat"], axis=1),
             helper.make_node("TopK", ["maxed", "k"], ["top", "top_index"], axis=-1),
             helper.make_node("Cast", ["top_index"], ["top_float"], to=TensorProto.FLOAT),
             helper.make_node("Range", ["start", "limit", "delta"], ["steps"]),
             helper.make_node("ReduceProd", ["steps"], ["prod"], keepdims=0),
             helper.make_node("ScatterElements", ["maxed", "index", "updates"], ["scattered"],
                              axis=1),
             helper.make_node("Greater", ["maxed", "zero"], ["positive"]),
             helper.make_node("Where", ["positive", "maxed", "zero"], ["relu"]),
             helper.make_node("HardSigmoid", ["relu"], ["hard"], alpha=0.3, beta=0.4),
             helper.make_node("Loop", ["trips", "true", "zeros"], ["looped"], body=body)]
    init = {"axis1": np.array([1], np.int64), "gamma": rng.standard_normal(4).astype(np.float32),
            "beta": rng.standard_normal(4).astype(np.float32), "k": np.array([2], np.int64),
            "start": np.array(1, np.int64), "limit": np.array(5, np.int64),
            "delta": np.array(1, np.int64), "index": np.array([[1, 0], [3, 2]], np.int64),
            "updates": np.ones((2, 2), np.float32), "zero": np.array(0, np.float32),
            "trips": np.array(3, np.int64), "true": np.array(True),
            "zeros": np.zeros(4, np.float32)}
    outputs = ["pooled", "flat", "top", "top_float", "prod", "scattered", "hard", "looped"]
    model = make_model(nodes, {"x": (np.float32, [2, 5, 4])},
                       {n: np.int64 if n == "prod" else np.float32 for n in outputs}, init,
                       opset=18)
    feeds = {"x": rng.standard_normal((2, 5, 4)).astype(np.float32)}
    actual = rnnsim.from_onnx(model).run(feeds)
    for name, value in ort_run(model, feeds).items():
        np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)


def test_hidden_size_from_r_when_the_attribute_is_absent():
    """R a graph input: its declared shape gives hidden_size at load; undeclared, R's shape
    on each run (two sizes here), against the NumPy reference of the ONNX spec."""
    rng = np.random.default_rng(6)
    k = 3
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y", "Y_h"], name="gru",
                            linear_before_reset=1)
    declared = make_model([node], {"X": (np.float32, ["T", "B", k]),
                                   "W": (np.float32, [1, 12, k]), "R": (np.float32, [1, 12, 4])},
                          {"Y": np.float32, "Y_h": np.float32}, {})
    assert rnnsim.from_onnx(declared).describe()["recurrent"][0]["hidden_size"] == 4
    free = make_model([node], {"X": (np.float32, ["T", "B", k]), "W": (np.float32, None),
                               "R": (np.float32, None)},
                      {"Y": np.float32, "Y_h": np.float32}, {})
    net = rnnsim.from_onnx(free)
    assert net.describe()["recurrent"][0]["hidden_size"] is None
    for p in (4, 2):
        arrays = {"X": rng.standard_normal((5, 2, k)).astype(np.float32),
                  "W": rng.standard_normal((1, 3 * p, k)).astype(np.float32),
                  "R": rng.standard_normal((1, 3 * p, p)).astype(np.float32)}
        actual = net.run(arrays)
        expected = onnx_reference.run("GRU", {"hidden_size": p, "linear_before_reset": 1},
                                      **arrays)
        np.testing.assert_allclose(actual["Y"], expected[0], **ORT_TOL)
        np.testing.assert_allclose(actual["Y_h"], expected[1], **ORT_TOL)
    with pytest.raises(ShapeError, match=r"node 'gru' \(GRU\): R has shape \(12, 4\); expected "
                                         r"\(num_directions=1, 3\*hidden_size, hidden_size\)"):
        net.run({**arrays, "R": np.zeros((12, 4), np.float32)})


def sequence_elman(T=4, k=3, p=4, slicing="Split"):
    """An Elman recurrence over X (T', B, k): x_t = Squeeze(Split(X)[t]) or, with ``slicing``
    "Slice", X[t + 1] (a Slice from the second step on); Y = Concat(Unsqueeze(h_t))."""
    rng = np.random.default_rng(8)
    init = {"W": rng.standard_normal((k, p)).astype(np.float32) * 0.5,
            "U": rng.standard_normal((p, p)).astype(np.float32) * 0.5,
            "axis0": np.array([0], np.int64)}
    if slicing == "Split":
        nodes = [helper.make_node("Split", ["X", "ones"], [f"x{t}_" for t in range(T)], axis=0)]
        init["ones"] = np.ones(T, np.int64)
    else:
        nodes = [helper.make_node("Slice", ["X", f"start{t}", f"end{t}", "axis0"], [f"x{t}_"])
                 for t in range(T)]
        for t in range(T):
            init[f"start{t}"], init[f"end{t}"] = np.array([t + 1]), np.array([t + 2])
    h = "h0"
    for t in range(T):
        nodes += [helper.make_node("Squeeze", [f"x{t}_", "axis0"], [f"x{t}"]),
                  helper.make_node("MatMul", [f"x{t}", "W"], [f"xw{t}"]),
                  helper.make_node("MatMul", [h, "U"], [f"hu{t}"]),
                  helper.make_node("Add", [f"xw{t}", f"hu{t}"], [f"z{t}"]),
                  helper.make_node("Tanh", [f"z{t}"], [f"h{t + 1}"]),
                  helper.make_node("Unsqueeze", [f"h{t + 1}", "axis0"], [f"y{t}"])]
        h = f"h{t + 1}"
    nodes.append(helper.make_node("Concat", [f"y{t}" for t in range(T)], ["Y"], axis=0))
    return make_model(nodes, {"X": (np.float32, ["T", "batch", k]),
                              "h0": (np.float32, ["batch", p])},
                      {"Y": np.float32, h: np.float32}, init)


@pytest.mark.parametrize("slicing", ["Split", "Slice"])
def test_fused_recurrence_reads_and_writes_whole_sequences(slicing):
    """The time slices of X and the stacking of the h_t are absorbed: one node is left."""
    model = sequence_elman(slicing=slicing)
    net = rnnsim.from_onnx(model)
    assert [node.op for node in net.nodes] == ["FusedElman"]
    fused = net.describe()["fused"][0]
    assert fused["reads_sequence"] and fused["writes_sequence"] and fused["steps"] == 4
    rng = np.random.default_rng(9)
    for T in ([4] if slicing == "Split" else [5, 9]):  # Slice reads X[1:5] of a longer X
        feeds = {"X": rng.standard_normal((T, 2, 3)).astype(np.float32),
                 "h0": rng.standard_normal((2, 4)).astype(np.float32)}
        actual = net.run(feeds)
        for name, value in ort_run(model, feeds).items():
            np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)
    if slicing == "Split":  # X longer than the Split's parts: the original nodes run
        from onnx.reference import ReferenceEvaluator
        feeds = {"X": rng.standard_normal((6, 2, 3)).astype(np.float32),
                 "h0": rng.standard_normal((2, 4)).astype(np.float32)}
        expected = ReferenceEvaluator(model).run(None, feeds)
        for name, value in zip(net.output_names, expected):
            np.testing.assert_allclose(net.run(feeds)[name], value, **ORT_TOL, err_msg=name)


def test_a_models_own_functions_are_inlined_and_run():
    """A FunctionProto of the model (a local domain) holding standard operators."""
    function = helper.make_function(
        "local", "ScaleShift", ["v", "s"], ["out"],
        [helper.make_node("Mul", ["v", "s"], ["scaled"]),
         helper.make_node("Add", ["scaled", "s"], ["out"])],
        [helper.make_opsetid("", 18)])
    nodes = [helper.make_node("ScaleShift", ["x", "two"], ["y"], domain="local"),
             helper.make_node("ReduceSum", ["y"], ["total"], keepdims=0)]
    model = make_model(nodes, {"x": (np.float32, [2, 3])}, {"y": np.float32,
                                                           "total": np.float32},
                       {"two": np.array(2, np.float32)}, opset=18)
    model.opset_import.append(helper.make_opsetid("local", 1))
    model.functions.append(function)
    feeds = {"x": np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32)}
    actual = rnnsim.from_onnx(model).run(feeds)
    for name, value in ort_run(model, feeds).items():
        np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)


def unrolled_gru(T=4, k=3, p=4):
    """A GRU written out by hand in the textbook spelling: h = (1 - z) * n + z * h_prev, with
    n = tanh(x W_n + b_n + r * (h U_n + c_n))."""
    rng = np.random.default_rng(10)
    init = {"W": rng.standard_normal((k, 3 * p)), "U": rng.standard_normal((p, 3 * p)),
            "b": rng.standard_normal(3 * p), "c": rng.standard_normal(3 * p),
            "one": np.array(1.0), "thirds": np.array([p, p, p])}
    init = {n: v.astype(np.int64 if n == "thirds" else np.float32) * (0.5 if n in "WU" else 1)
            for n, v in init.items()}
    nodes, inputs, h = [], {"h0": (np.float32, ["batch", p])}, "h0"
    for t in range(T):
        inputs[f"x{t}"] = (np.float32, ["batch", k])
        s = lambda name: f"{name}{t}"  # noqa: E731
        nodes += [helper.make_node("MatMul", [s("x"), "W"], [s("xw")]),
                  helper.make_node("Add", [s("xw"), "b"], [s("xb")]),
                  helper.make_node("MatMul", [h, "U"], [s("hu")]),
                  helper.make_node("Add", [s("hu"), "c"], [s("hc")]),
                  helper.make_node("Split", [s("xb"), "thirds"], [s("xr"), s("xz"), s("xn")],
                                   axis=1),
                  helper.make_node("Split", [s("hc"), "thirds"], [s("hr"), s("hz"), s("hn")],
                                   axis=1),
                  helper.make_node("Add", [s("xr"), s("hr")], [s("ar")]),
                  helper.make_node("Sigmoid", [s("ar")], [s("r")]),
                  helper.make_node("Add", [s("hz"), s("xz")], [s("az")]),
                  helper.make_node("Sigmoid", [s("az")], [s("z")]),
                  helper.make_node("Mul", [s("r"), s("hn")], [s("rh")]),
                  helper.make_node("Add", [s("xn"), s("rh")], [s("an")]),
                  helper.make_node("Tanh", [s("an")], [s("n")]),
                  helper.make_node("Sub", ["one", s("z")], [s("keep")]),
                  helper.make_node("Mul", [s("keep"), s("n")], [s("new")]),
                  helper.make_node("Mul", [s("z"), h], [s("old")]),
                  helper.make_node("Add", [s("new"), s("old")], [f"h{t + 1}"])]
        h = f"h{t + 1}"
    return make_model(nodes, inputs, {h: np.float32, "h2": np.float32}, init, opset=18)


def test_hand_written_gru_is_fused_and_matches_onnxruntime():
    model = unrolled_gru()
    net = rnnsim.from_onnx(model)
    assert [(f["cell"], f["steps"]) for f in net.describe()["fused"]] == [("gru", 4)]
    feeds = feeds_for(model)
    actual = net.run(feeds)
    for name, value in ort_run(model, feeds).items():
        np.testing.assert_allclose(actual[name], value, **ORT_TOL, err_msg=name)
