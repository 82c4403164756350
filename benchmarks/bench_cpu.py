"""The CPU benchmark matrix: ``rnnsim bench`` (rnnsim/bench.py) with the same options.

    python benchmarks/bench_cpu.py [--quick] [--cells lstm,gru] [--dtype float32]
        [--cold-start] [--json out.json] [--plot out.png]

Elman, LSTM and GRU at (B, k, p) = (1,8,16), (1,8,64), (1,32,256), (32,32,128), (64,128,512)
and echo-state networks, float32 and float64, against PyTorch, ONNX Runtime and reservoirpy
where installed (`pip install 'rnnsim[bench]' reservoirpy`).
"""
import sys

from rnnsim.cli import cli

if __name__ == "__main__":
    cli(["bench", *sys.argv[1:]])
