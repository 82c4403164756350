"""ONNX LSTM and GRU nodes: ``rnnsim.from_onnx(path).run`` against an ONNX Runtime CPU session
on the same ``.onnx`` file.

    python benchmarks/bench_onnx.py [--quick] [--json out.json] [--only rows|streaming|glue]

One-node models (opset 14, float32, weights as initializers) of the LSTM/GRU benchmark's shapes,
run on a whole sequence, and a streaming model (initial_h/initial_c as inputs) called with
batch 1 and one step per call, its states fed back. Then graphs with glue: the streaming LSTM
inside the nodes ``torch.onnx.export(dynamo=True)`` writes around a batch-first model with
state inputs (Transpose, Shape, Slice, Mul feeding Reshape...), and an Elman recurrence written
out step by step (MatMul/Add/Tanh, unrolled over T steps), which rnnsim fuses into one kernel
run. Same process, same inputs, ONNX Runtime's
``intra_op_num_threads`` equal to numba's threads. Prints µs per timestep (median of several
runs after a warm-up; for streaming, µs per call) and ONNX Runtime's time divided by rnnsim's
(> 1 means rnnsim is faster). Each row first checks that both give the same outputs.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numba
import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

import rnnsim
from timing import median_seconds, parse_args

SHAPES = [(1, 8, 16, 10000), (1, 8, 64, 10000), (1, 32, 256, 2000), (32, 32, 128, 1000),
          (64, 128, 512, 200), (16, 256, 1024, 100)]
STREAMING = [(8, 16), (8, 64), (32, 256)]
GATES = {"LSTM": 4, "GRU": 3}


def node_model(op: str, k: int, p: int, state_inputs: bool) -> onnx.ModelProto:
    """One forward ``op`` node with seeded weights; initial states as graph inputs if asked."""
    rng = np.random.default_rng(0)
    G = GATES[op]
    scale = 1 / np.sqrt(p)
    weights = {"W": rng.uniform(-scale, scale, (1, G * p, k)).astype(np.float32),
               "R": rng.uniform(-scale, scale, (1, G * p, p)).astype(np.float32),
               "B": rng.uniform(-scale, scale, (1, 2 * G * p)).astype(np.float32)}
    inputs = ["X", "W", "R", "B"]
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    states = []
    if state_inputs:
        states = ["initial_h"] + (["initial_c"] if op == "LSTM" else [])
        inputs += ["", *states]
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    node = helper.make_node(op, inputs, outputs, hidden_size=p, **attrs)
    graph = helper.make_graph(
        [node], op.lower(),
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", k])]
        + [helper.make_tensor_value_info(s, TensorProto.FLOAT, [1, "B", p]) for s in states],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v, name) for name, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def glue_stream_model(k: int, p: int) -> onnx.ModelProto:
    """A batch-first LSTM with state inputs (B, 1, p), in the glue of a dynamo export: the
    time-first transposes, and Y reshaped to (B, T, p) through shape arithmetic."""
    core = node_model("LSTM", k, p, True)
    nodes = [helper.make_node("Transpose", ["x"], ["X"], perm=[1, 0, 2]),
             helper.make_node("Transpose", ["h0"], ["initial_h"], perm=[1, 0, 2]),
             helper.make_node("Transpose", ["c0"], ["initial_c"], perm=[1, 0, 2]),
             *core.graph.node,
             helper.make_node("Shape", ["x"], ["x_shape"]),
             helper.make_node("Slice", ["x_shape", "zero", "two"], ["bt"]),
             helper.make_node("Mul", ["bt", "ones"], ["bt_again"]),
             helper.make_node("Concat", ["bt_again", "p"], ["y_shape"], axis=0),
             helper.make_node("Squeeze", ["Y", "one"], ["Y3"]),
             helper.make_node("Transpose", ["Y3"], ["Y_bf"], perm=[1, 0, 2]),
             helper.make_node("Reshape", ["Y_bf", "y_shape"], ["y"]),
             helper.make_node("Transpose", ["Y_h"], ["h"], perm=[1, 0, 2]),
             helper.make_node("Transpose", ["Y_c"], ["c"], perm=[1, 0, 2])]
    ints = {"zero": [0], "two": [2], "one": [1], "ones": [1, 1], "p": [p]}
    graph = helper.make_graph(
        nodes, "glue",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", k]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["B", 1, p]),
         helper.make_tensor_value_info("c0", TensorProto.FLOAT, ["B", 1, p])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "h", "c")],
        list(core.graph.initializer)
        + [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in ints.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def unrolled_elman_model(k: int, p: int, T: int) -> onnx.ModelProto:
    """h_t = tanh(x_t W + h_{t-1} U + b) written out for T steps on X (T, B, k); Y (T, B, p)."""
    rng = np.random.default_rng(0)
    scale = 1 / np.sqrt(p)
    weights = {"W": rng.uniform(-scale, scale, (k, p)), "U": rng.uniform(-scale, scale, (p, p)),
               "b": rng.uniform(-scale, scale, p), "axis0": np.array([0])}
    nodes = [helper.make_node("Split", ["X"], [f"x{t}_" for t in range(T)], axis=0,
                              num_outputs=T)]
    h = "h0"
    for t in range(T):
        nodes += [helper.make_node("Squeeze", [f"x{t}_", "axis0"], [f"x{t}"]),
                  helper.make_node("MatMul", [f"x{t}", "W"], [f"xw{t}"]),
                  helper.make_node("MatMul", [h, "U"], [f"hu{t}"]),
                  helper.make_node("Add", [f"xw{t}", f"hu{t}"], [f"s{t}"]),
                  helper.make_node("Add", [f"s{t}", "b"], [f"z{t}"]),
                  helper.make_node("Tanh", [f"z{t}"], [f"h{t + 1}"]),
                  helper.make_node("Unsqueeze", [f"h{t + 1}", "axis0"], [f"y{t}"])]
        h = f"h{t + 1}"
    nodes.append(helper.make_node("Concat", [f"y{t}" for t in range(T)], ["Y"], axis=0))
    graph = helper.make_graph(
        nodes, "unrolled",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, "B", k]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["B", p])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v.astype(np.int64 if n == "axis0" else np.float32), n)
         for n, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def runners(model: onnx.ModelProto, folder: Path, name: str):
    """(rnnsim run, ONNX Runtime run), both reading the same saved file."""
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = numba.get_num_threads()
    options.inter_op_num_threads = 1
    # spinning idle threads would slow rnnsim's next call in this process (rnnsim/bench.py)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    net = rnnsim.from_onnx(path)
    names = net.output_names
    return (lambda feeds: net.run(feeds),
            lambda feeds: dict(zip(names, session.run(names, feeds))))


def check(ours: dict, theirs: dict) -> None:
    for name, value in theirs.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-3, atol=1e-4, err_msg=name)


def sequence_rows(folder: Path, quick: bool) -> list[dict]:
    rows = []
    for op in GATES:
        for B, k, p, T in SHAPES:
            T = max(T // 10, 20) if quick else T
            ours, theirs = runners(node_model(op, k, p, False), folder, f"{op}-{B}-{k}-{p}")
            feeds = {"X": np.random.default_rng(1).standard_normal((T, B, k)).astype(np.float32)}
            check(ours(feeds), theirs(feeds))
            repeats = 3 if quick else 5
            row = {"op": op, "B": B, "k": k, "p": p, "T": T,
                   "rnnsim_us": median_seconds(lambda: ours(feeds), repeats) / T * 1e6,
                   "onnxruntime_us": median_seconds(lambda: theirs(feeds), repeats) / T * 1e6}
            row["ratio"] = row["onnxruntime_us"] / row["rnnsim_us"]
            rows.append(row)
            print(f"{op:>4} {B:>3} {k:>4} {p:>5} {T:>6} {row['rnnsim_us']:10.2f} "
                  f"{row['onnxruntime_us']:10.2f} {row['ratio']:6.2f}", flush=True)
    return rows


def streaming_rows(folder: Path, quick: bool) -> list[dict]:
    """Batch 1, one step per call, the final states fed back as the next initial states."""
    rows = []
    for op in GATES:
        for k, p in STREAMING:
            ours, theirs = runners(node_model(op, k, p, True), folder, f"{op}-stream-{k}-{p}")
            x = np.random.default_rng(2).standard_normal((64, 1, 1, k)).astype(np.float32)
            zeros = np.zeros((1, 1, p), np.float32)
            state_names = ["initial_h"] + (["initial_c"] if op == "LSTM" else [])

            def stream(run, steps):
                state = {name: zeros for name in state_names}
                for t in range(steps):
                    out = run({"X": x[t % len(x)], **state})
                    state = {"initial_h": out["Y_h"]}
                    if op == "LSTM":
                        state["initial_c"] = out["Y_c"]
                return out

            check(stream(ours, 20), stream(theirs, 20))
            steps = 200 if quick else 2000
            repeats = 3 if quick else 5
            row = {"op": op, "B": 1, "k": k, "p": p, "T": 1,
                   "rnnsim_us": median_seconds(lambda: stream(ours, steps), repeats) / steps * 1e6,
                   "onnxruntime_us": median_seconds(lambda: stream(theirs, steps), repeats)
                   / steps * 1e6}
            row["ratio"] = row["onnxruntime_us"] / row["rnnsim_us"]
            rows.append(row)
            print(f"{op:>4} {1:>3} {k:>4} {p:>5} {'1/call':>6} {row['rnnsim_us']:10.2f} "
                  f"{row['onnxruntime_us']:10.2f} {row['ratio']:6.2f}", flush=True)
    return rows


def glue_rows(folder: Path, quick: bool) -> list[dict]:
    """The streaming LSTM in dynamo-style glue (µs per call) and unrolled Elman chains (µs per
    step of a whole-sequence call)."""
    rows = []
    for k, p in STREAMING:
        ours, theirs = runners(glue_stream_model(k, p), folder, f"glue-stream-{k}-{p}")
        x = np.random.default_rng(2).standard_normal((64, 1, 1, k)).astype(np.float32)
        zeros = np.zeros((1, 1, p), np.float32)

        def stream(run, steps):
            state = {"h0": zeros, "c0": zeros}
            for t in range(steps):
                out = run({"x": x[t % len(x)], **state})
                state = {"h0": out["h"], "c0": out["c"]}
            return out

        check(stream(ours, 20), stream(theirs, 20))
        steps, repeats = (200, 3) if quick else (2000, 5)
        rows.append(_row("LSTM glue", 1, k, p, "1/call", steps,
                         lambda: stream(ours, steps), lambda: stream(theirs, steps), repeats))
    for B, k, p, T in [(1, 8, 64, 100), (16, 32, 128, 100)]:
        ours, theirs = runners(unrolled_elman_model(k, p, T), folder, f"unrolled-{B}-{k}-{p}")
        rng = np.random.default_rng(3)
        feeds = {"X": rng.standard_normal((T, B, k)).astype(np.float32),
                 "h0": np.zeros((B, p), np.float32)}
        check(ours(feeds), theirs(feeds))
        repeats = 3 if quick else 5
        rows.append(_row("Elman unrolled", B, k, p, T, T, lambda: ours(feeds),
                         lambda: theirs(feeds), repeats))
    return rows


def _row(op, B, k, p, shown_T, per, ours, theirs, repeats) -> dict:
    row = {"op": op, "B": B, "k": k, "p": p, "T": shown_T,
           "rnnsim_us": median_seconds(ours, repeats) / per * 1e6,
           "onnxruntime_us": median_seconds(theirs, repeats) / per * 1e6}
    row["ratio"] = row["onnxruntime_us"] / row["rnnsim_us"]
    print(f"{op:>14} {B:>3} {k:>4} {p:>5} {shown_T:>6} {row['rnnsim_us']:10.2f} "
          f"{row['onnxruntime_us']:10.2f} {row['ratio']:6.2f}", flush=True)
    return row


def main() -> None:
    sections = {"rows": sequence_rows, "streaming": streaming_rows, "glue": glue_rows}
    args = parse_args(__doc__, tuple(sections))
    print(f"threads: {numba.get_num_threads()}, onnxruntime {onnxruntime.__version__}, float32")
    print(f"{'op':>4} {'B':>3} {'k':>4} {'p':>5} {'T':>6} {'rnnsim':>10} {'ort':>10} "
          f"{'ratio':>6}   (µs per step; ratio = onnxruntime / rnnsim)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = {"threads": numba.get_num_threads(), "onnxruntime": onnxruntime.__version__}
        for section, rows in sections.items():
            if section in args.only:
                results[section] = rows(folder, args.quick)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
