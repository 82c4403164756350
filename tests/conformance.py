"""Loading the conformance cases computed by PyTorch, ONNX Runtime and reservoirpy.

The project carries the public cases in ``tests/data/conformance/``; ``$RNNSIM_CONFORMANCE_DIR``
(an ``os.pathsep``-separated list of folders of the same format) adds further ones. Every case
found runs; a named folder without a manifest fails the collection, it never skips.
"""
import json
import os
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent / "data" / "conformance"


def conformance_dirs() -> list[Path]:
    """The project's own case folder, then each folder named in ``$RNNSIM_CONFORMANCE_DIR``."""
    extra = os.environ.get("RNNSIM_CONFORMANCE_DIR", "")
    return [PROJECT_DIR] + [Path(p) for p in extra.split(os.pathsep) if p.strip()]


def _manifest_cases(folder: Path) -> list[dict]:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"conformance manifest not found: {manifest} (a folder named in "
                                "RNNSIM_CONFORMANCE_DIR must hold a manifest.json)")
    data = json.loads(manifest.read_text())
    if data.get("format") != 1:
        raise ValueError(f"unknown manifest format {data.get('format')!r} in {manifest}")
    return [dict(case, dir=folder) for case in data["cases"]]


def cases() -> list[dict]:
    """Every case of every folder; each case's ``dir`` is the folder its files are in."""
    return [case for folder in conformance_dirs() for case in _manifest_cases(folder)]


def case_path(case: dict, key: str = "file") -> Path:
    """The path of the file the case names under ``key`` (``file`` or ``model``)."""
    return case["dir"] / case[key]


def case_id(case: dict) -> str:
    """The case's id, prefixed by its folder's name when it comes from an extra folder."""
    return case["id"] if case["dir"] == PROJECT_DIR else f"{case['dir'].name}/{case['id']}"


def arrays(case: dict) -> dict[str, np.ndarray]:
    with np.load(case_path(case), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def assert_outputs(case: dict, actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]):
    for name in case["outputs"]:
        atol = case.get("output_atol", {}).get(name, case["atol"])
        np.testing.assert_allclose(actual[name], expected[name], rtol=case["rtol"], atol=atol,
                                   err_msg=f"{case['id']}: output '{name}'")
