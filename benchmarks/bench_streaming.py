"""Streaming: one step call at B = 1, float32, one thread, rnnsim's compiled ``net.stepper``
against a PyTorch cell and a one-step ONNX Runtime session (``rnnsim.streambench``).

    python benchmarks/bench_streaming.py [--quick] [--json out.json]

Prints µs per call (the fastest of short rounds) and peer / rnnsim (> 1: rnnsim faster).
The same table as ``rnnsim bench --streaming``.
"""
from __future__ import annotations

import json

from timing import parse_args

from rnnsim.bench import import_peers
from rnnsim.streambench import streaming, streaming_table


def main() -> None:
    args = parse_args(__doc__)
    import_peers()
    rows = streaming(rounds=30 if args.quick else 300)
    print(streaming_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
