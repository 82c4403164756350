"""Threads that share the units of the same batch rows, step by step.

With fewer batch rows than threads (B = 1), rows cannot be spread over threads; instead each
of ``members`` threads runs the same rows on its share of the panels (``share``), so each core
streams only its part of the weights from its own cache, and the threads meet at a barrier
after every step (after every pass whose results the next pass reads in full). The barrier
spins on an atomic counter (with the ``pause`` hint), then yields the core after a while, so a
thread that the OS has parked costs time, never a deadlock.
"""
import platform
import sys

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..options import JIT

SPINS_BEFORE_YIELD = 1000
PAUSE = "llvm.x86.sse2.pause" if platform.machine().lower() in ("x86_64", "amd64") else None
YIELD = None if sys.platform == "win32" else "sched_yield"


@intrinsic
def _arrive_and_wait(typingctx, counter, target):
    """Add 1 to counter[0] atomically, then wait until it reaches ``target``."""
    def codegen(context, builder, signature, args):
        pointer = context.make_array(signature.args[0])(context, builder, args[0]).data
        i64 = ir.IntType(64)
        goal = context.cast(builder, args[1], signature.args[1], types.int64)
        builder.atomic_rmw("add", pointer, ir.Constant(i64, 1), "seq_cst")

        def call(name, returns):
            if name is not None:
                builder.call(cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(returns, []), name), [])

        spins = cgutils.alloca_once_value(builder, ir.Constant(i64, 0))
        check = builder.append_basic_block("barrier.check")
        spin = builder.append_basic_block("barrier.spin")
        done = builder.append_basic_block("barrier.done")
        builder.branch(check)
        builder.position_at_end(check)
        arrived = builder.load_atomic(pointer, "acquire", 8)
        builder.cbranch(builder.icmp_signed("<", arrived, goal), spin, done)
        builder.position_at_end(spin)
        count = builder.add(builder.load(spins), ir.Constant(i64, 1))
        builder.store(count, spins)
        with builder.if_else(builder.icmp_signed("<", count,
                                                 ir.Constant(i64, SPINS_BEFORE_YIELD))) as (
                short, long):
            with short:
                call(PAUSE, ir.VoidType())
            with long:
                call(YIELD, ir.IntType(32))
        builder.branch(check)
        builder.position_at_end(done)
        return context.get_dummy_value()

    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    return types.none(counter, target), codegen


@numba.njit(cache=True, **JIT)
def meet(sync, members, phase):
    """Wait for all ``members`` at barrier number ``phase`` (counted from 0 by each member);
    return the next phase. sync : (>= 1,) int64 zeros shared by the members."""
    if members > 1:
        _arrive_and_wait(sync, members * (phase + 1))
    return phase + 1


@numba.njit(cache=True, **JIT)
def share(count, members, member):
    """The range [lo, hi) of ``count`` items (panels) that ``member`` takes."""
    return count * member // members, count * (member + 1) // members
