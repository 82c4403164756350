"""NaN/inf states are reported where they first happened; sizes beyond the memory fail early."""
import math
import warnings
import types

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import (ConfigError, InputError, NonfiniteError, NonfiniteWarning, ShapeError, guards,
                    plugins)
from rnnsim.cli import cli


def linear_stack(*gains, bidirectional=False, head=None):
    """Layers a_t = W x_t + gain * a_{t-1} (identity activation, W of ones): each grows
    geometrically and overflows after about 128 / log2(gain) steps."""
    layers = [{"units": 2, "activation": "identity", "bidirectional": bidirectional,
               "init": {"input": "ones", "recurrent": {"name": "constant", "value": g / 2}}}
              for g in gains]
    network = {"input_size": 1, "layers": layers}
    if head is not None:
        network["head"] = head
    return rnnsim.Network.from_config({"network": network})


def test_a_diverging_run_stops_naming_layer_step_unit_and_row():
    net = linear_stack(4.0)
    x = np.zeros((100, 3, 1), np.float32)
    x[0, 2] = 1.0  # only row 2 moves
    with pytest.raises(NonfiniteError) as caught:
        net.run(x)
    fault = caught.value.fault
    assert (fault.step, fault.row, fault.unit, fault.value) == (64, 2, 0, np.inf)
    message = str(caught.value)
    assert message.startswith("layer 0 (elman, activations identity) state h became inf at "
                              "step 64, unit 0, batch row 2")
    assert "input there is finite" in message and "nonfinite='warn'" in message
    with pytest.raises(NonfiniteError, match="at step 64, unit 0:"):
        net.run(x[:, 2])  # one sequence: no batch row


def test_the_first_fault_in_time_order_wins_across_layers():
    net = linear_stack(2.0, 2.0**16)  # layer 1 overflows long before layer 0
    with pytest.raises(NonfiniteError, match=r"^layer 1 .* at step 8,") as caught:
        net.run(np.ones((200, 1, 1), np.float32))
    assert caught.value.fault.step == 8


def test_warn_and_ignore_keep_going():
    net = linear_stack(4.0)
    x = np.ones((100, 1, 1), np.float32)
    with pytest.warns(NonfiniteWarning, match="state h became inf at step 64"):
        result = net.run(x, nonfinite="warn")
    assert np.isinf(result.output[-1]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(net.run(x, nonfinite="ignore").output[-1]).all()
    with pytest.raises(InputError, match="nonfinite='loud'"):
        net.run(x, nonfinite="loud")


def test_nan_inputs_run_through_only_when_allowed():
    net = linear_stack(0.5)
    x = np.ones((10, 2, 1), np.float32)
    x[4, 1] = np.nan
    with pytest.raises(InputError, match=r"x holds 1 NaN/inf .* index \(4, 1, 0\)"):
        net.run(x)
    out = net.run(x, check_finite=False).output  # check_finite=False: nonfinite='ignore'
    assert np.isnan(out[4:, 1]).all() and np.isfinite(out[:, 0]).all()
    with pytest.raises(NonfiniteError, match="step 4, unit 0, batch row 1.*input x there holds"):
        net.run(x, check_finite=False, nonfinite="raise")
    x[4, 1] = x[5, 1] = 3e38  # finite values whose sum overflows pass; +inf and -inf are named
    net.run(x, nonfinite="ignore")
    x[2, 0], x[7, 1] = np.inf, -np.inf
    with pytest.raises(InputError, match=r"x holds 2 NaN/inf .* index \(2, 0, 0\)"):
        net.run(x)


def test_reverse_directions_steps_and_heads():
    net = linear_stack(4.0, bidirectional=True)
    x = np.zeros((100, 1, 1), np.float32)
    x[-1] = 1.0  # only the reverse direction, which starts at the last step, diverges
    with pytest.raises(NonfiniteError, match="at step 35 .in the reverse direction") as caught:
        net.run(x)
    assert caught.value.fault.reverse and caught.value.fault.step == 35
    net = linear_stack(4.0)
    state = net.initial_state(2)
    for _ in range(64):
        _, state = net.step(np.ones((2, 1), np.float32), state)
    with pytest.raises(NonfiniteError, match="state h became inf at this step, unit 0, "
                                             "batch row 0"):
        net.step(np.ones((2, 1), np.float32), state)
    huge_head = linear_stack(0.5, head={"name": "linear", "units": 1, "init": {
        "weight": {"name": "constant", "value": 3e38}}})
    with pytest.raises(NonfiniteError, match="head 'linear' output y became inf at step 0"):
        huge_head.run(np.ones((3, 1, 1), np.float32))


def test_cli_nonfinite_option(tmp_path):
    cfg = tmp_path / "diverges.yaml"
    cfg.write_text("network:\n  input_size: 1\n  layers:\n    - {units: 2, activation: identity,"
                   " init: {input: ones, recurrent: {name: constant, value: 2.0}}}\n"
                   "run: {timesteps: 100}\n")
    runner = CliRunner()
    stopped = runner.invoke(cli, ["run", str(cfg)])
    assert stopped.exit_code == 1 and "NonfiniteError: layer 0" in stopped.output
    with pytest.warns(NonfiniteWarning, match="layer 0"):
        warned = runner.invoke(cli, ["run", str(cfg), "--nonfinite", "warn"])
    assert warned.exit_code == 0
    quiet = runner.invoke(cli, ["run", str(cfg), "--nonfinite", "ignore"])
    assert quiet.exit_code == 0 and "Warning" not in quiet.output


def test_memory_limits_and_messages(monkeypatch):
    monkeypatch.setenv(guards.MEMORY_LIMIT_ENV, "1M")
    assert guards.available_bytes() == 2**20
    with pytest.raises(ConfigError, match=r"layers\[0\].units = 600.*layers.0.U \(600, 600\): "
                                          r"1.4 MiB.*more than the 1.0 MiB available"):
        rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [{"units": 600}]}})
    net = rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [{"units": 4}]}})
    with pytest.raises(ShapeError, match=r"T = 100000 steps and B = 1 sequences.*out="):
        net.run(np.zeros((100_000, 1)))
    monkeypatch.setenv(guards.MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(ConfigError, match="RNNSIM_MEMORY_LIMIT='lots'"):
        guards.available_bytes()
    monkeypatch.delenv(guards.MEMORY_LIMIT_ENV)
    assert guards.available_bytes() > 2**20
    assert [guards.format_bytes(n) for n in (512, 1536, 3 * 2**40)] == ["512 B", "1.5 KiB",
                                                                          "3.0 TiB"]


def test_small_requests_skip_reading_the_machines_memory(monkeypatch):
    """Below ALWAYS_FITS a run does not read /proc (~100 µs a call); the explicit limit still
    applies to it, and a large request still reads the machine."""
    def unreadable():
        raise AssertionError("read the machine's memory for a small request")

    net = rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [{"units": 4}]}})
    monkeypatch.delenv(guards.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(guards, "available_bytes", unreadable)
    monkeypatch.setattr(guards, "_last_room", (-math.inf, 0))
    net.run(np.zeros((50, 1)))
    with pytest.raises(AssertionError, match="small request"):
        guards.check_fits({"big": guards.ALWAYS_FITS}, "a test", "")
    monkeypatch.undo()
    monkeypatch.setenv(guards.MEMORY_LIMIT_ENV, "100")
    with pytest.raises(ShapeError, match="more than the 100 B available"):
        net.run(np.zeros((50, 1)))


def test_requests_well_below_a_recent_reading_skip_reading_again(monkeypatch):
    """For RECENT seconds after a reading, requests under a quarter of it pass without another;
    a larger or a later request reads the machine again, and one that does not fit fails."""
    reads, clock = [], [1000.0]

    def machine():
        reads.append(clock[0])
        return 400 << 20

    monkeypatch.delenv(guards.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(guards, "_machine_room", machine)
    monkeypatch.setattr(guards, "_last_room", (-math.inf, 0))
    monkeypatch.setattr(guards, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    mib = 1 << 20
    for need, expected_reads in ((64, 1), (64, 1), (99, 1), (150, 2), (64, 2)):
        guards.check_fits({"x": need * mib}, "a test", "")
        assert len(reads) == expected_reads, need
    clock[0] += guards.RECENT
    guards.check_fits({"x": 64 * mib}, "a test", "")
    assert len(reads) == 3
    with pytest.raises(ShapeError, match="x: 500.0 MiB"):
        guards.check_fits({"x": 500 * mib}, "a test", "")
    assert len(reads) == 4


def nan_above_half(x):
    """Finite up to 0.5, NaN above: an activation with a hole, not a diverging recurrence."""
    return math.nan if x > 0.5 else x


@pytest.fixture
def holey_activation():
    """A throwaway plugin registering ``nan_above_half``; always unregistered afterwards."""
    class Holey:
        @rnnsim.hookimpl
        def register_activations(self, register):
            register("nan_above_half", nan_above_half)

    plugins.register_plugin(Holey(), name="holey", package="rnnsim-holey")
    try:
        yield "nan_above_half"
    finally:
        plugins.unregister_plugin("holey")


@pytest.mark.parametrize("cell,slot", [("elman", "activation"), ("lstm", "gate_activation")])
def test_nan_from_an_activation_is_named_not_called_divergence(holey_activation, cell, slot):
    net = rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [{
        "units": 2, "cell": cell, slot: holey_activation,
        "init": {"input": "ones", "recurrent": "zeros", "bias": "zeros"}}]}})
    x = np.linspace(0, 1, 11, dtype=np.float32).reshape(-1, 1, 1)  # 0.6 at step 6
    with pytest.raises(NonfiniteError) as caught:
        net.run(x)
    message = str(caught.value)
    assert caught.value.fault.step == 6 and "became nan at step 6, unit 0" in message
    assert ("activation 'nan_above_half' (plugin 'holey', package rnnsim-holey) returns nan "
            "for the finite pre-activation value 0.6") in message
    assert "diverged" not in message and "not from a diverging recurrence" in message
    state = net.initial_state(1)
    for value in x[:6]:
        _, state = net.step(value, state)
    with pytest.raises(NonfiniteError, match="at this step.*'nan_above_half'.*returns nan"):
        net.step(x[6], state)


def test_a_diverging_recurrence_is_still_called_so():
    with pytest.raises(NonfiniteError, match="so the recurrence diverged") as caught:
        linear_stack(4.0).run(np.ones((100, 1, 1), np.float32))
    assert "returns" not in str(caught.value) and "did not diverge" not in str(caught.value)
