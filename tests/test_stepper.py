"""The compiled streaming step (``Network.stepper``, ``Network.stream``): the bits of ``run``
for every cell, one compiled call per step for the built-in kernels, clear errors."""
import warnings

import numba
import numpy as np
import pytest

import rnnsim
from rnnsim import ConfigError, InputError, NonfiniteError, NonfiniteWarning, ShapeError
from rnnsim.stepper import BoundStep
from test_esn import feedback_net
from test_guards import linear_stack
from test_streaming import CELLS, stack

# Cells whose step is one compiled call; the others (esn, the ugrnn plugin) add Python ops.
ONE_CALL = {"elman", "lstm", "lstm-proj-peep", "gru", "gru-reset-before"}


def assert_state_equal(state, result):
    for mine, theirs in zip(state.layers, result.states):
        assert mine.keys() == theirs.keys()
        for name in mine:
            np.testing.assert_array_equal(mine[name], theirs[name])


@pytest.mark.parametrize("variant", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_steps_give_the_bits_of_one_run(variant, dtype):
    net = stack(variant, dtype, head={"name": "linear", "units": 2})
    x = np.random.default_rng(1).standard_normal((9, 4, 3)).astype(dtype)
    whole = net.run(x)
    stepper = net.stepper(4)
    ys = np.stack([stepper(x[t]) for t in range(4)])
    np.testing.assert_array_equal(ys, whole.y[:4])
    # continue from the stepper's state with run, and from run's state with a new stepper
    rest = net.run(x[4:], stepper.state)
    np.testing.assert_array_equal(rest.y, whole.y[4:])
    again = net.stepper(4, net.run(x[:4]).state)
    np.testing.assert_array_equal(np.stack([again(x[t]) for t in range(4, 9)]), whole.y[4:])
    assert_state_equal(again.state, whole)
    headless = stack(variant, dtype)
    outputs = list(headless.stream(x))
    np.testing.assert_array_equal(np.stack(outputs), headless.run(x).output)


@pytest.mark.parametrize("variant", sorted(CELLS))
def test_the_built_in_kernels_step_in_one_compiled_call(variant):
    plan = stack(variant, "float32").stepper(2).plan
    if variant in ONE_CALL:
        assert plan == ["compiled"]
    else:  # an input projection through NumPy's BLAS, then the kernel
        assert plan[0] == "compiled" and "python" in plan


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unbatched_steps_and_mixed_inputs(dtype):
    net = stack("lstm-proj-peep", dtype, layers=3)
    x = np.random.default_rng(2).standard_normal((7, 3))
    whole = net.run(x)
    stepper = net.stepper()
    outs = [stepper(x[0].tolist())]  # a list, float64 into a float32 net: coerced
    outs += [stepper(x[t].astype(dtype)) for t in range(1, 4)]
    outs += [stepper(np.asfortranarray(x[t:t + 1])[0]) for t in range(4, 7)]
    assert outs[0].shape == (3,) and outs[0].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.stack(outs), whole.output)
    assert_state_equal(stepper.state, whole)
    stepper.reset()
    np.testing.assert_array_equal(stepper(x[0]), outs[0])
    first = stepper.state
    stepper.reset(first)
    np.testing.assert_array_equal(stepper(x[1]), outs[1])


def test_outputs_are_new_arrays_and_a_stepper_keeps_its_weights():
    net = stack("gru", "float64")
    x = np.ones((1, 3))
    stepper = net.stepper(1)
    first, second = stepper(x), stepper(x)
    assert not np.shares_memory(first, second) and not np.array_equal(first, second)
    expected = net.run(np.stack([x, x, x])).output[2]
    net.params["layers.0.U"] *= 0.5  # bound when the stepper was made
    np.testing.assert_array_equal(stepper(x), expected)
    np.testing.assert_array_equal(net.stepper(1)(x), net.run(x[None]).output[0])


def test_esn_feedback_steps_like_run():
    net = feedback_net(sparse=True)
    x = np.random.default_rng(3).standard_normal((12, 2, 2))
    whole = net.run(x)
    stepper = net.stepper(2)
    np.testing.assert_array_equal(np.stack([stepper(x[t]) for t in range(12)]), whole.y)
    assert_state_equal(stepper.state, whole)


def test_stepper_errors_say_what_to_do():
    net = stack("gru")
    stepper = net.stepper(2)
    with pytest.raises(ShapeError, match=r"x_t has shape \(3,\); this stepper takes \(2, 3\)"):
        stepper(np.zeros(3))
    with pytest.raises(ShapeError, match=r"x_t has shape \(1, 3\); .*net.stepper\(batch\)"):
        stepper(np.zeros((1, 3)))
    with pytest.raises(ShapeError, match="x_t cannot be read"):
        stepper([[1, 2], [3]])
    before = stepper.state
    bad = np.zeros((2, 3))
    bad[1, 2] = np.nan
    with pytest.raises(InputError, match=r"x_t holds 1 NaN/inf value\(s\), the first at index "
                                         r"\(1, 2\)"):
        stepper(bad)
    assert_state_equal(stepper.state, rnnsim.RunResult(None, before.layers, None))
    with pytest.raises(ShapeError, match="batch must be a positive int"):
        net.stepper(0)
    bi = rnnsim.Network.from_config({"network": {"input_size": 3, "layers": [
        {"cell": "gru", "units": 2, "bidirectional": True}]}})
    with pytest.raises(ConfigError, match="stepper: a bidirectional layer needs the whole"):
        bi.stepper(1)
    noisy = rnnsim.Network.from_config({"network": {"input_size": 3, "layers": [
        {"cell": "esn", "units": 4, "noise": 0.1}]}})
    with pytest.raises(ConfigError, match=r"network.layers\[0\].noise"):
        noisy.stepper(1)


def test_nonfinite_states_are_reported_like_run():
    net = linear_stack(4.0)
    x = np.zeros((100, 3, 1), np.float32)
    x[0, 2] = 1.0
    stepper = net.stepper(3)
    with pytest.raises(NonfiniteError) as caught:
        for t in range(100):
            stepper(x[t])
    assert t == 64
    assert str(caught.value).startswith("layer 0 (elman, activations identity) state h became "
                                        "inf at this step, unit 0, batch row 2")
    with pytest.warns(NonfiniteWarning, match="state h became inf"):
        warned = net.stepper(3, nonfinite="warn")
        for t in range(100):
            warned(x[t])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ignored = net.stepper(3, check_finite=False)
        for t in range(100):
            last = ignored(x[t])
    assert np.isinf(last[2]).all()
    x[3, 0] = np.nan
    unchecked = net.stepper(3, check_finite=False)
    assert np.isnan(unchecked(x[3])[0]).all()


@numba.njit
def negate_first(a):
    a[0] = -a[0]


def test_bound_arrays_keep_sharing_memory_whatever_the_order_of_their_owner():
    """Views of one array stay one array in the arena, also when it is in Fortran order, and
    an array whose memory is no block (strided) is copied once, however often it is used."""
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    column, row = fortran[:, 1], fortran[0]  # column: C-contiguous; row: not
    strided = np.lib.stride_tricks.as_strided(np.arange(8.0), (2, 2), (32, 8))
    seen = []

    def look(row, strided, again):
        seen.append((row.copy(), strided.copy(), np.shares_memory(strided, again)))

    x = np.zeros((1, 1, 2))
    step = BoundStep(x, [(negate_first, (column,)), (look, (row, strided, strided))], [],
                     unbatched=False)
    assert step.plan == ["compiled", "python", "compiled"]
    step(np.zeros((1, 2)))
    np.testing.assert_array_equal(seen[0][0], [0.0, -1.0, 2.0, 3.0])  # the kernel's write
    np.testing.assert_array_equal(seen[0][1], [[0.0, 1.0], [4.0, 5.0]])
    assert seen[0][2]
    np.testing.assert_array_equal(step.view(fortran)[:, 1], [-1.0, 5.0, 9.0])
    assert fortran[0, 1] == 1.0  # the caller's array is not the arena's
