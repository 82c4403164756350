"""The CPU kernels' machinery: packed weights, threads, the fast_math activations."""
import numba
import numpy as np
import pytest

import rnnsim
from conformance import arrays, assert_outputs, case_id, case_path, cases
from rnnsim.cells import base
from rnnsim.kernels.cpu import approx, tiles
from rnnsim.kernels.options import ACTIVATION_JIT

CELLS = {
    "elman": {"cell": "elman", "units": 21},
    "lstm": {"cell": "lstm", "units": 19},
    "lstm-proj-peep": {"cell": "lstm", "units": 19, "proj_size": 7, "peepholes": True},
    "lstm-clip-coupled": {"cell": "lstm", "units": 9, "clip": 0.6, "input_forget": True},
    "gru": {"cell": "gru", "units": 18},
    "gru-reset-before": {"cell": "gru", "units": 18, "reset_after": False, "clip": 1.5},
    # a cell from a plugin package (plugins/rnnsim-ugrnn), registered through register_cells
    "ugrnn-clip": {"cell": "ugrnn", "units": 11, "clip": 0.8},
}


def network(variant, dtype, fast_math=False, bidirectional=False, k=5):
    layer = dict(CELLS[variant], bidirectional=bidirectional)
    return rnnsim.Network.from_config({"network": {
        "input_size": k, "dtype": dtype, "seed": 7, "fast_math": fast_math,
        "layers": [layer, layer]}})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_fast_activations_stay_within_their_documented_error(name, dtype):
    fast = numba.njit(**ACTIVATION_JIT)(getattr(approx, name))  # as the kernels compile it
    edges = [0.0, -0.0, 1e-30, -1e-30, 0.5, 20.0, -20.0, 87.0, -87.0, 88.7, -88.7, 700.0,
             -700.0, 1e30, -1e30, np.finfo(dtype).max, -np.finfo(dtype).max]
    x = np.concatenate([np.linspace(-40, 40, 400_001), np.geomspace(1e-12, 40, 20_001),
                        -np.geomspace(1e-12, 40, 20_001), edges]).astype(dtype)
    got = np.array([fast(v) for v in x[::97]] + [fast(v) for v in edges], dtype)
    ref_x = np.concatenate([x[::97], np.array(edges, dtype)]).astype(np.float64)
    with np.errstate(over="ignore"):
        exact = np.tanh(ref_x) if name == "tanh" else 1 / (1 + np.exp(-ref_x))
    assert got.dtype == np.dtype(dtype)
    assert np.abs(got - exact).max() <= approx.FAST_MATH_ERROR[dtype]
    assert np.isnan(fast(np.array(np.nan, dtype)[()]))
    assert fast(np.array(np.inf, dtype)[()]) == 1.0
    assert abs(fast(np.array(-np.inf, dtype)[()]) - (-1.0 if name == "tanh" else 0.0)) <= (
        approx.FAST_MATH_ERROR[dtype])
    if name == "tanh":  # odd, as libm's: tanh(-0.0) = -0.0
        assert np.signbit(fast(np.array(-0.0, dtype)[()]))


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_vectorised_activations_are_as_accurate_as_libm(name):
    """The default kernels' forms: float32 within 0.5 + 2^-6 ulp (rounded once from a float64
    approximation good to about 2^-30), float64 within 1.9 ulp and no worse than the built-in
    (libm) function."""
    from rnnsim.builtins import activations as builtins

    vectorised = numba.njit(**ACTIVATION_JIT)(getattr(approx, f"precise_{name}"))
    libm = numba.njit(**ACTIVATION_JIT)(getattr(builtins, name))
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-40, 40, 100_001), np.geomspace(1e-30, 40, 10_001),
                        -np.geomspace(1e-30, 40, 10_001), rng.uniform(-1, 1, 100_000),
                        [0.0, 88.0, -88.0, 1e30, -1e30]])
    for dtype, bound in ((np.float32, 0.5 + 2 ** -6), (np.float64, 1.9)):
        xs = x.astype(dtype)
        exact = xs.astype(np.longdouble)
        with np.errstate(over="ignore"):
            exact = np.tanh(exact) if name == "tanh" else 1 / (1 + np.exp(-exact))
        ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)

        def worst(fn):
            got = np.array([fn(v) for v in xs], dtype)
            return np.max(np.abs(got.astype(np.longdouble) - exact) / ulp)

        assert worst(vectorised) <= bound
        if dtype == np.float64:
            assert worst(vectorised) <= worst(libm)
        assert np.isnan(vectorised(dtype(np.nan)))
        assert vectorised(dtype(np.inf)) == 1.0
        if name == "tanh":
            assert np.signbit(vectorised(dtype(-0.0))) and not np.signbit(vectorised(dtype(0.0)))


@pytest.mark.parametrize("variant", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_math_stays_close_to_the_exact_kernels(variant, dtype):
    x = np.random.default_rng(3).standard_normal((30, 3, 5)).astype(dtype)
    exact = network(variant, dtype).run(x).output
    net = network(variant, dtype, fast_math=True)
    assert net.fast_math and all(layer.fast_math for layer in net.layers)
    fast = net.run(x).output
    np.testing.assert_allclose(fast, exact, rtol=0, atol=200 * approx.FAST_MATH_ERROR[dtype])
    net.fast_math = False
    np.testing.assert_array_equal(net.run(x).output, exact)


def _runnable(case):
    return case["kind"] in ("torch", "onnx")


@pytest.mark.parametrize("case", [c for c in cases() if _runnable(c)], ids=case_id)
def test_conformance_cases_pass_with_fast_math(case):
    data = arrays(case)
    if case["kind"] == "onnx":
        model = rnnsim.from_onnx(case_path(case, "model"))
        for node in model.recurrent:
            for cell in node.cells:
                cell.fast_math = True
        actual = model.run({name: data[name] for name in case["inputs"]})
    else:
        state = {k[len("state."):]: v for k, v in data.items() if k.startswith("state.")}
        net = rnnsim.from_torch(state, mode=case["module"], dtype=case["dtype"],
                                **case["config"])
        net.fast_math = True
        result = net.run(data["x"], h0=data.get("h0"), c0=data.get("c0"))
        actual = {"output": result.output, "h_n": result.h_n}
        if "c_n" in case["outputs"]:
            actual["c_n"] = result.c_n
    assert_outputs(case, actual, data)


@pytest.fixture
def threads(monkeypatch):
    """Run every call on ``n`` threads however small (``set(n)``)."""
    monkeypatch.setattr(base, "THREADED_WORK", 0)
    monkeypatch.setattr(base, "TEAM_STEP_WORK", 0)

    def set_threads(n):
        monkeypatch.setattr(base, "thread_count", lambda: n)

    return set_threads


@pytest.mark.parametrize("variant", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_give_the_bits_of_one_thread(variant, dtype, threads):
    rng = np.random.default_rng(4)
    net = network(variant, dtype, bidirectional=True)
    x = rng.standard_normal((9, 6, 5)).astype(dtype)
    lengths = np.array([9, 4, 0, 7, 9, 1])
    threads(1)
    rows = net.run(x, lengths=lengths)
    one = net.run(x[:, :1])
    # rows split over threads; one row shared by the threads' units; and all rows shared by
    # them, as for weights beyond the caches
    for n, row_work in ((2, base.TEAM_ROW_WORK), (3, base.TEAM_ROW_WORK), (2, 0), (4, 0)):
        threads(n)
        base.TEAM_ROW_WORK, saved = row_work, base.TEAM_ROW_WORK
        try:
            results = (net.run(x, lengths=lengths), net.run(x[:, :1]))
        finally:
            base.TEAM_ROW_WORK = saved
        for result, expected in zip(results, (rows, one)):
            np.testing.assert_array_equal(result.output, expected.output)
            for a, b in zip(result.final + result.final_c, expected.final + expected.final_c):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("variant", sorted(CELLS))
def test_a_row_gets_the_same_bits_alone_or_in_a_batch(variant):
    net = network(variant, "float64")
    x = np.random.default_rng(5).standard_normal((8, 7, 5))
    batched = net.run(x).output
    alone = np.stack([net.run(x[:, b:b + 1]).output[:, 0] for b in range(7)], axis=1)
    np.testing.assert_array_equal(batched, alone)


@pytest.mark.parametrize("variant", ["lstm", "lstm-proj-peep", "lstm-clip-coupled"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("members", [1, 2])
def test_a_single_row_runs_its_own_loop_with_the_bits_of_a_batch(variant, dtype, members,
                                                                 threads):
    """A lone LSTM row runs its own kernel (``lstm_row``; also when threads share its
    units): the same bits as in a batch, with lengths and in reverse."""
    layer = dict(CELLS[variant], bidirectional=True)
    if variant == "lstm-proj-peep":
        layer.pop("proj_size")  # lstm_row runs without a projection
    net = rnnsim.Network.from_config({"network": {
        "input_size": 5, "dtype": dtype, "seed": 3, "layers": [layer, layer]}})
    for name, value in net.params.items():  # nonzero biases and peepholes everywhere
        value[...] = np.random.default_rng(len(name)).uniform(-0.6, 0.6, value.shape)
    x = np.random.default_rng(9).standard_normal((37, 5, 5)).astype(dtype)
    lengths = np.array([37, 21, 16, 0, 33])
    threads(1)
    batched = net.run(x, lengths=lengths)
    threads(members)
    for b in range(5):
        alone = net.run(x[:, b:b + 1], lengths=lengths[b:b + 1])
        np.testing.assert_array_equal(alone.output[:, 0], batched.output[:, b])
        for a, c in zip(alone.final + alone.final_c, batched.final + batched.final_c):
            np.testing.assert_array_equal(a[:, 0], c[:, b])


def test_packed_weights_follow_weights_edited_in_place():
    net = network("lstm-proj-peep", "float64")
    x = np.random.default_rng(6).standard_normal((5, 2, 5))
    net.run(x)
    for name in ("layers.0.W", "layers.0.U", "layers.1.R"):
        net.params[name][1, 2] += 0.5
    fresh = rnnsim.Network(net.config, {k: v.copy() for k, v in net.params.items()})
    np.testing.assert_array_equal(net.run(x).output, fresh.run(x).output)


@pytest.mark.parametrize("variant", ["elman", "lstm-proj-peep", "gru"])
def test_read_only_weights_skip_the_check_and_new_arrays_are_packed(variant, monkeypatch):
    net = network(variant, "float64")
    x = np.random.default_rng(8).standard_normal((4, 3, 5))
    for value in net.params.values():
        value.flags.writeable = False
    first = net.run(x).output
    compared = []
    monkeypatch.setattr(tiles, "same", lambda a, b: compared.append(1) or False)
    np.testing.assert_array_equal(net.run(x).output, first)
    assert compared == []  # read-only and already packed: no comparison
    name = "layers.1.U"
    changed = net.params[name].copy()
    changed[0, 0] += 0.25
    changed.flags.writeable = False
    net.params[name] = changed  # a new array: packed again
    fresh = rnnsim.Network(net.config, {k: v.copy() for k, v in net.params.items()})
    np.testing.assert_array_equal(net.run(x).output, fresh.run(x).output)
    view = np.ones(4)[:2]
    view.flags.writeable = False  # a read-only view of writeable memory is not read-only
    assert base.read_only_mark(view) is None and base.read_only_mark(changed) is not None


def test_cli_run_fast_math_flag(tmp_path):
    from click.testing import CliRunner

    from rnnsim.cli import cli

    config = tmp_path / "net.yaml"
    config.write_text("network:\n  input_size: 3\n  layers:\n    - {cell: lstm, units: 4}\n")
    outputs = {}
    for flag in ("--exact-math", "--fast-math"):
        result = CliRunner().invoke(cli, ["run", str(config), "-T", "6", "--output",
                                          str(tmp_path / f"{flag}.npz"), flag])
        assert result.exit_code == 0, result.output
        outputs[flag] = np.load(tmp_path / f"{flag}.npz")["output"]
    np.testing.assert_allclose(outputs["--fast-math"], outputs["--exact-math"], rtol=0,
                               atol=100 * approx.FAST_MATH_ERROR["float32"])


def test_recurrent_cells_leave_numbas_threading_layer_unstarted():
    """Started before PyTorch is imported, numba's OpenMP layer makes PyTorch's threaded CPU
    ops ~100x slower; the Elman/LSTM/GRU kernels run on their own threads and never start it."""
    import subprocess
    import sys

    code = """
import numpy as np, rnnsim, numba.np.ufunc.parallel as layer
for cell in ("elman", "lstm", "gru"):
    net = rnnsim.Network.from_config({"network": {"input_size": 16, "layers": [
        {"cell": cell, "units": 256}]}})
    for B in (1, 8):
        net.run(np.ones((50, B, 16), np.float32))
print(layer._is_initialized)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"
