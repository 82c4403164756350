"""Streaming: one step call at B = 1, float32, one thread, p = 16, 64, 256: rnnsim's
compiled ``net.stepper`` against a PyTorch cell (``nn.RNNCell``/``LSTMCell``/``GRUCell``) and
a one-step ONNX Runtime session, and the same ONNX model through ``rnnsim.from_onnx``
(``rnnsim.streambench``).

    python benchmarks/bench_streaming.py [--quick] [--json out.json]

Prints µs per call (the fastest of short rounds, the candidates taking turns) and the ratios
(> 1: rnnsim faster), the last ONNX Runtime / from_onnx on the same file. The same table as
``rnnsim bench --streaming``.
"""
from __future__ import annotations

import json

from timing import parse_args

from rnnsim.bench import import_peers
from rnnsim.io import write_atomic
from rnnsim.streambench import CALLS, streaming, streaming_table


def main() -> None:
    args = parse_args(__doc__)
    import_peers()
    rounds = 30 if args.quick else 300
    rows = streaming(rounds=rounds)
    print(f"One streaming step, B = 1, float32, one thread: µs per call, the fastest of "
          f"{rounds} rounds of {CALLS} calls; ratios > 1: rnnsim faster.\n")
    print(streaming_table(rows))
    if args.json:
        write_atomic(args.json, lambda tmp: tmp.write_text(json.dumps({"rows": rows},
                                                                      indent=2)))


if __name__ == "__main__":
    main()
