"""Compilation options shared by every CPU kernel, in one place."""

# Reassociation lets LLVM vectorise reductions; NaN/inf semantics are kept ('nnan'/'ninf' off)
# so that non-finite states stay detectable, and libm accuracy is kept ('afn' off).
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

JIT = {"fastmath": FASTMATH, "error_model": "numpy", "nogil": True, "boundscheck": False}
ACTIVATION_JIT = {"fastmath": FASTMATH, "error_model": "numpy"}
VARIANTS = {"serial": {}, "parallel": {"parallel": True}}
