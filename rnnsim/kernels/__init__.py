"""Kernel layer: numba code only. Kernels write into arrays the caller allocated.

``build``, ``reached`` and ``KernelCompileError`` come from ``codegen``, imported (with numba)
on first use, so that importing the layers above costs no numba import.
"""
__all__ = ["KernelCompileError", "build", "reached"]


def __getattr__(name: str):
    if name in __all__:
        from . import codegen

        return getattr(codegen, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
