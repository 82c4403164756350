"""Compilation options shared by every kernel (CPU and CUDA), in one place."""

# Reassociation lets LLVM vectorise reductions; NaN/inf semantics are kept ('nnan'/'ninf' off)
# so that non-finite states stay detectable, and libm accuracy is kept ('afn' off).
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

# For gather loops (CSR): with 'reassoc' LLVM vectorises the indexed reduction into AVX2
# gathers, which measured 1.4x slower than the scalar loop on this machine's EPYC.
GATHER_FASTMATH = FASTMATH - {"reassoc"}

JIT = {"fastmath": FASTMATH, "error_model": "numpy", "nogil": True, "boundscheck": False}
# Activations are scalar (nothing to vectorise by reordering) and may rely on the order of
# their operations (the split ln 2 of kernels/cpu/approx.py): no 'reassoc'. Their instructions
# keep these flags when LLVM inlines them into a kernel.
ACTIVATION_JIT = {"fastmath": FASTMATH - {"reassoc"}, "error_model": "numpy"}
VARIANTS = {"serial": {}, "parallel": {"parallel": True}}

# CUDA kernels (kernels/cuda/). fastmath would approximate division, sqrt, exp and log and
# flush subnormals to zero; it stays off so the GPU agrees with the CPU kernels.
CUDA_JIT = {"fastmath": False}
CUDA_ACTIVATION_JIT = {"fastmath": False}
