"""What differs between the compiled variants of every CUDA kernel, bound as globals by codegen.

``step_barrier`` ends a timestep: a block barrier when one block owns every unit of its rows,
a grid barrier (cooperative launch) when the units are spread over blocks. ``ROWS`` is the
number of batch rows each thread computes at once (register blocking: a weight read once
serves ``ROWS`` rows); it must be a compile-time constant to size the accumulators.
"""
from numba import cuda


@cuda.jit(device=True)
def block_barrier():
    cuda.syncthreads()


@cuda.jit(device=True)
def grid_barrier():
    cuda.cg.this_grid().sync()


ROW_BLOCKS = (1, 4, 8)
BARRIERS = {"block": block_barrier, "grid": grid_barrier}
VARIANTS = {f"{mode}{rows}": {"step_barrier": barrier, "ROWS": rows}
            for mode, barrier in BARRIERS.items() for rows in ROW_BLOCKS}
