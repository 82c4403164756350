"""The PyTorch and reservoirpy conformance cases run through device="cuda".

Under the simulator (each thread a Python thread) the cases above ``SIMULATED_WORK``
multiply-adds run on a real GPU only, and the reservoirpy states are checked on their first
``SIMULATED_STEPS`` steps (a state depends only on the inputs before it); on a GPU every case
runs whole, the ridge readout fitted on the GPU's states included.
"""
import numpy as np
import pytest

import rnnsim
from rnnsim import device
from conformance import arrays, assert_outputs, cases

from cuda_helpers import needs_gpu

SIMULATED_WORK = 1_000_000
SIMULATED_STEPS = 40
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def work(case) -> int:
    """Multiply-adds of the case's recurrence."""
    shape = case["id"].split("-")
    T = int(shape[2][1:])
    B = 1 if shape[3] == "Bu" else int(shape[3][1:])
    config = case["config"]
    p = config["hidden_size"]
    return (T * B * GATES[case["module"]] * p * (p + config["input_size"])
            * config["num_layers"] * (2 if config["bidirectional"] else 1))


def selected(kind):
    out = []
    for case in cases():
        if case["kind"] != kind:
            continue
        heavy = kind == "torch" and work(case) > SIMULATED_WORK
        out.append(pytest.param(case, id=case["id"], marks=needs_gpu if heavy else []))
    return out


@pytest.mark.parametrize("case", selected("torch"))
def test_torch_case(case):
    data = arrays(case)
    state = {k[len("state."):]: v for k, v in data.items() if k.startswith("state.")}
    cpu = rnnsim.from_torch(state, mode=case["module"], dtype=case["dtype"], **case["config"])
    net = rnnsim.Network(cpu.config, cpu.params, device="cuda")
    result = net.run(data["x"], h0=data.get("h0"), c0=data.get("c0"))
    assert result.output.dtype == np.dtype(case["dtype"])
    actual = {"output": result.output, "h_n": result.h_n}
    if "c_n" in case["outputs"]:
        actual["c_n"] = result.c_n
    assert_outputs(case, actual, data)


@pytest.mark.parametrize("case", selected("reservoirpy"))
def test_reservoirpy_case(case):
    data = arrays(case)
    N, k = data["Win"].shape
    lr = data["lr"]
    config = {"network": {"input_size": k, "dtype": case["dtype"], "device": "cuda", "layers": [
        {"cell": "esn", "units": N, "activation": case["config"]["activation"],
         "leak_rate": float(lr) if lr.ndim == 0 else lr.tolist()}],
        "head": {"name": "ridge", "units": 1}}}
    params = {"layers.0.W": data["W"], "layers.0.Win": data["Win"], "layers.0.b": data["bias"],
              "head.W": np.zeros((1, N)), "head.b": np.zeros(1)}
    net = rnnsim.Network(rnnsim.config.parse(config), params)
    if device.simulated():
        states = net.run(data["u"][:SIMULATED_STEPS]).output
        np.testing.assert_allclose(states, data["states"][:SIMULATED_STEPS], rtol=case["rtol"],
                                   atol=case["atol"])
        return
    net.fit(data["u"], data["y"], washout=case["config"]["washout"],
            ridge=case["config"]["ridge"])
    result = net.run(data["u"])
    assert_outputs(case, {"states": result.output, "Wout": net.params["head.W"].T,
                          "bout": net.params["head.b"], "prediction": result.y}, data)
