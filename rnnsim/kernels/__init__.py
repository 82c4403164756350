"""Kernel layer: numba code only. Kernels write into arrays the caller allocated."""
from .codegen import KernelCompileError, build, reached

__all__ = ["KernelCompileError", "build", "reached"]
