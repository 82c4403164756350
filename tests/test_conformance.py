"""Every conformance case: PyTorch RNN/LSTM/GRU, ONNX models and reservoirpy ESNs. A case of a
kind rnnsim cannot run fails."""
import numpy as np
import pytest

import rnnsim
from conformance import arrays, assert_outputs, case_id, case_path, cases


def run_onnx_case(case, data):
    """Run the case's .onnx file on its graph inputs; outputs come back by graph-output name."""
    model = rnnsim.from_onnx(case_path(case, "model"))
    actual = model.run({name: data[name] for name in case["inputs"]})
    for name in case["outputs"]:
        assert actual[name].dtype == data[name].dtype, name
    return data, actual


def run_reservoirpy_case(case, data):
    """Build the esn from the case's dense matrices, run the states and fit the ridge readout."""
    N, k = data["Win"].shape
    lr = data["lr"]
    config = {"network": {"input_size": k, "dtype": case["dtype"], "layers": [
        {"cell": "esn", "units": N, "activation": case["config"]["activation"],
         "leak_rate": float(lr) if lr.ndim == 0 else lr.tolist()}],
        "head": {"name": "ridge", "units": 1}}}
    params = {"layers.0.W": data["W"], "layers.0.Win": data["Win"], "layers.0.b": data["bias"],
              "head.W": np.zeros((1, N)), "head.b": np.zeros(1)}
    net = rnnsim.Network(rnnsim.config.parse(config), params)
    net.fit(data["u"], data["y"], washout=case["config"]["washout"],
            ridge=case["config"]["ridge"])
    result = net.run(data["u"])
    assert result.output.dtype == np.dtype(case["dtype"])
    return data, {"states": result.output, "Wout": net.params["head.W"].T,
                  "bout": net.params["head.b"], "prediction": result.y}


def run_case(case):
    data = arrays(case)
    if case["kind"] == "reservoirpy":
        return run_reservoirpy_case(case, data)
    if case["kind"] == "onnx":
        return run_onnx_case(case, data)
    if case["kind"] != "torch":
        raise NotImplementedError(f"{case_id(case)}: unknown case kind {case['kind']!r}")
    state = {k[len("state."):]: v for k, v in data.items() if k.startswith("state.")}
    net = rnnsim.from_torch(state, mode=case["module"], dtype=case["dtype"], **case["config"])
    result = net.run(data["x"], h0=data.get("h0"), c0=data.get("c0"))
    assert result.output.dtype == np.dtype(case["dtype"])
    actual = {"output": result.output, "h_n": result.h_n}
    if "c_n" in case["outputs"]:
        actual["c_n"] = result.c_n
    return data, actual


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_conformance(case):
    expected, actual = run_case(case)
    assert_outputs(case, actual, expected)


def test_extra_folders_add_to_the_project_cases(tmp_path, monkeypatch):
    """RNNSIM_CONFORMANCE_DIR adds folders (an os.pathsep list); the project's cases stay."""
    import json
    import os
    import shutil

    import conformance
    own = conformance.cases()
    extra = [tmp_path / "a", tmp_path / "b"]
    for folder, case in zip(extra, own[:2]):
        folder.mkdir()
        shutil.copy(case_path(case), folder / case["file"])
        plain = {k: v for k, v in case.items() if k != "dir"}
        (folder / "manifest.json").write_text(json.dumps({"format": 1, "cases": [plain]}))
    monkeypatch.setenv("RNNSIM_CONFORMANCE_DIR", os.pathsep.join(map(str, extra)))
    found = conformance.cases()
    assert len(found) == len(own) + 2
    assert [case_id(c) for c in found[-2:]] == [f"a/{own[0]['id']}", f"b/{own[1]['id']}"]
    np.testing.assert_array_equal(arrays(found[-1])[own[1]["outputs"][0]],
                                  arrays(own[1])[own[1]["outputs"][0]])


def test_a_missing_extra_folder_is_an_error(tmp_path, monkeypatch):
    import conformance
    monkeypatch.setenv("RNNSIM_CONFORMANCE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        conformance.cases()
