"""Every conformance case: PyTorch RNN/LSTM/GRU run now; later kinds are strict xfails until they land."""
import numpy as np
import pytest

import rnnsim
from conformance import arrays, assert_outputs, params

PENDING = {
    "onnx": "ONNX models arrive with the ONNX issue",
    "reservoirpy": "echo-state networks arrive with the reservoir issue",
}


def supported(case):
    if case["kind"] == "torch":
        return PENDING.get(case["module"])
    return PENDING.get(case["kind"], f"unknown case kind {case['kind']!r}")


def run_case(case):
    data = arrays(case)
    if case["kind"] != "torch":
        raise NotImplementedError(case["kind"])
    state = {k[len("state."):]: v for k, v in data.items() if k.startswith("state.")}
    net = rnnsim.from_torch(state, mode=case["module"], dtype=case["dtype"], **case["config"])
    result = net.run(data["x"], h0=data.get("h0"), c0=data.get("c0"))
    assert result.output.dtype == np.dtype(case["dtype"])
    actual = {"output": result.output, "h_n": result.h_n}
    if "c_n" in case["outputs"]:
        actual["c_n"] = result.c_n
    return data, actual


@pytest.mark.parametrize("case", params(supported))
def test_conformance(case):
    expected, actual = run_case(case)
    assert_outputs(case, actual, expected)
