"""Loading the conformance cases computed by PyTorch, ONNX Runtime and reservoirpy."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT.parent / "shared" / "conformance"


def conformance_dir() -> Path:
    """``$RNNSIM_CONFORMANCE_DIR``, else ``../shared/conformance`` beside the project."""
    return Path(os.environ.get("RNNSIM_CONFORMANCE_DIR", DEFAULT_DIR))


def cases() -> list[dict]:
    """Every case in the manifest; a missing manifest fails the collection, never skips."""
    manifest = conformance_dir() / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"conformance manifest not found: {manifest} "
                                "(set RNNSIM_CONFORMANCE_DIR)")
    data = json.loads(manifest.read_text())
    assert data.get("format") == 1, f"unknown manifest format in {manifest}"
    return data["cases"]


def arrays(case: dict) -> dict[str, np.ndarray]:
    with np.load(conformance_dir() / case["file"], allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def assert_outputs(case: dict, actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]):
    for name in case["outputs"]:
        atol = case.get("output_atol", {}).get(name, case["atol"])
        np.testing.assert_allclose(actual[name], expected[name], rtol=case["rtol"], atol=atol,
                                   err_msg=f"{case['id']}: output '{name}'")


def params(supported) -> list:
    """pytest params for every case: supported ones run, the rest are strict xfails."""
    out = []
    for case in cases():
        reason = supported(case)
        marks = [] if reason is None else [pytest.mark.xfail(strict=True, reason=reason)]
        out.append(pytest.param(case, id=case["id"], marks=marks))
    return out
