"""The CUDA path: a clear error where there is no GPU, and the kernel tests of ``tests/cuda/``.

numba reads NUMBA_ENABLE_CUDASIM when it is imported, so the kernel tests run in pytest
processes of their own: under numba's CUDA simulator everywhere (CI has no GPU), and on the
real GPU where numba.cuda finds one (marked ``gpu``).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import ConfigError, device
from rnnsim.cli import cli
from rnnsim.ensembles import ensemble, run_ensemble

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"network": {"input_size": 2, "device": "cuda", "layers": [{"cell": "gru",
                                                                       "units": 3}]}}


def run_python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -c code args`` from the project root, with ``env`` added and the simulator off."""
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=1500, env={**environment, **env})


def run_cuda_tests(mode: str, **env: str) -> str:
    """Run tests/cuda in a pytest process of its own; its last line (the counts) if it passed."""
    result = run_python("import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))", "tests/cuda",
                        "-q", "-p", "no:cacheprovider", RNNSIM_CUDA_TESTS=mode, **env)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    return summary


def test_cuda_kernels_under_the_simulator():
    summary = run_cuda_tests("simulator", NUMBA_ENABLE_CUDASIM="1")
    print(f"tests/cuda under the simulator: {summary}")


def real_gpu() -> bool:
    if device.simulated():
        return False
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not real_gpu(), reason="no NVIDIA GPU (numba.cuda.is_available() is false)")
def test_cuda_kernels_on_the_gpu():
    print(f"tests/cuda on the GPU: {run_cuda_tests('gpu')}")


NO_GPU = '''
import sys
import numpy as np
import rnnsim
net = rnnsim.Network.from_config({"network": {"input_size": 2, "device": "cuda",
                                               "layers": [{"cell": "gru", "units": 3}]}})
try:
    net.run(np.zeros((4, 2)))
except rnnsim.ConfigError as exc:
    print(exc)
'''


def test_device_cuda_without_a_gpu_says_so():
    message = run_python(NO_GPU, NUMBA_DISABLE_CUDA="1").stdout
    assert "device 'cuda': no usable NVIDIA GPU was found" in message
    assert "NUMBA_DISABLE_CUDA" in message and "use device: cpu" in message


def test_device_cuda_without_numba_cuda_says_how_to_install_it():
    message = run_python("import sys; sys.modules['numba.cuda'] = None\n" + NO_GPU).stdout
    assert "needs numba's CUDA target, which cannot be imported" in message
    assert "pip install 'rnnsim[cuda]'" in message


def test_the_cli_exits_1_with_the_message(tmp_path):
    config = tmp_path / "net.yaml"
    config.write_text("network:\n  input_size: 2\n  layers: [{cell: elman, units: 3}]\n")
    result = run_python("from rnnsim.cli import cli; cli()", "run", str(config), "--device",
                        "cuda", NUMBA_DISABLE_CUDA="1")
    assert result.returncode == 1
    assert "ConfigError: device 'cuda': no usable NVIDIA GPU was found" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cuda_config_is_checked_and_described_without_a_gpu(tmp_path):
    config = tmp_path / "net.yaml"
    config.write_text("network:\n  input_size: 2\n  device: cuda\n"
                      "  layers: [{cell: lstm, units: 3}]\n")
    for command in (["validate", str(config)], ["info", str(config)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, result.output
    assert rnnsim.Network.from_config(str(config)).device == "cuda"
    assert rnnsim.Network.from_config(str(config), device="cpu").device == "cpu"


def test_unknown_devices_are_config_errors():
    with pytest.raises(ConfigError, match="network.device: Input should be 'cpu' or 'cuda'"):
        rnnsim.Network.from_config({"network": dict(CONFIG["network"], device="gpu")})
    with pytest.raises(ConfigError, match="unknown device 'tpu'; use one of cpu, cuda"):
        rnnsim.Network.from_config(CONFIG, device="tpu")
    nets = ensemble({"network": {"input_size": 1, "layers": [{"cell": "esn", "units": 2}]}},
                    [{"seed": 1}])
    with pytest.raises(ConfigError, match="run_ensemble: device: unknown device 'tpu'"):
        run_ensemble(nets, np.zeros((3, 1)), device="tpu")


def test_a_saved_model_keeps_its_device(tmp_path):
    net = rnnsim.Network.from_config(CONFIG)
    net.save(tmp_path / "model")
    assert rnnsim.load(tmp_path / "model").device == "cuda"
    assert rnnsim.load(tmp_path / "model", device="cpu").device == "cpu"
    x = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(rnnsim.load(tmp_path / "model", device="cpu").run(x).output,
                                  rnnsim.Network.from_config(CONFIG, device="cpu").run(x).output)


def test_output_feedback_is_refused_on_cuda():
    """The one feature without a CUDA kernel: an esn layer's output feedback."""
    config = {"network": {"input_size": 1, "device": "cuda", "head": {"name": "ridge", "units": 1},
                          "layers": [{"cell": "esn", "units": 4, "feedback": True}]}}
    with pytest.raises(ConfigError, match=r"layers\[0\].feedback: output feedback runs on the "
                                          "CPU only; use device: cpu"):
        rnnsim.Network.from_config(config)
    net = rnnsim.Network.from_config(config, device="cpu")
    with pytest.raises(ConfigError, match="output feedback runs on the CPU only"):
        rnnsim.Network(net.config, net.params, device="cuda")


class FakeGPU:
    """What plan_launch asks of numba.cuda: the multiprocessor count (132, an H100's)."""

    @staticmethod
    def get_current_device():
        return type("Device", (), {"MULTIPROCESSOR_COUNT": 132})()


@pytest.mark.parametrize("units, batch, row_bytes, shared_weights, expected", [
    # B = 1, large p: the units spread over 32 blocks of a cooperative grid, a warp each
    (1024, 1, 4096, True, device.Plan(rows=1, unit_blocks=32, grid=True, threads=32)),
    # B = 64: 8 rows per block, 8 row blocks x 16 unit blocks <= 132 multiprocessors
    (1024, 64, 4096, True, device.Plan(rows=8, unit_blocks=16, grid=True, threads=64)),
    # B = 4096: 512 blocks of 8 rows fill the GPU; one block owns all units of its rows
    (1024, 4096, 4096, True, device.Plan(rows=8, unit_blocks=1, grid=False, threads=256)),
    # small layers stay in one block; 4 rows per block below B = 64
    (64, 10, 256, True, device.Plan(rows=4, unit_blocks=1, grid=False, threads=64)),
    # an ensemble's rows have their own weights: one row per block
    (256, 1024, 1024, False, device.Plan(rows=1, unit_blocks=1, grid=False, threads=256)),
    # 4 or 8 rows of 16 KiB of state would not fit in 48 KiB of shared memory: 1 row per block
    (4096, 4096, 16384, True, device.Plan(rows=1, unit_blocks=1, grid=False, threads=256)),
    (3072, 4096, 12288, True, device.Plan(rows=4, unit_blocks=1, grid=False, threads=256)),
])
def test_launch_plans(units, batch, row_bytes, shared_weights, expected, monkeypatch):
    monkeypatch.setattr(device, "simulated", lambda: False)
    assert device.plan_launch(FakeGPU, units, batch, row_bytes, shared_weights) == expected


def test_a_state_larger_than_shared_memory_is_a_config_error(monkeypatch):
    monkeypatch.setattr(device, "simulated", lambda: False)
    with pytest.raises(ConfigError, match="a layer of 8192 units keeps 65536 bytes of state per "
                                          "sequence in GPU shared memory, more than the 49152"):
        device.plan_launch(FakeGPU, 8192, 1, 8192 * 8)
