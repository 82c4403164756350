"""CUDA kernel templates (numba.cuda), one file per cell family, compiled by ``codegen``.

Their free names are bound per generated module: ``act0``, ``act1``... (the activations as
device functions), and per variant (``variants.py``): ``step_barrier`` and ``ROWS``.

Every recurrent kernel is persistent: one launch runs all T steps. Block (x, y) owns a slice
of ``units_per_block`` units for ``ROWS`` consecutive batch rows (y); each thread computes whole
units (all their gates) for those rows, so a step needs no barrier between the gates. The
state h_{t-1} is read back from the output written at the previous step; in the ``grid``
variants the units of a row are spread over several blocks of one cooperative launch and
``step_barrier`` is a grid-wide sync, in the ``block`` variants one block owns all units and
it is ``cuda.syncthreads``. Recurrent weights are passed transposed, ``Ut[g, j, i]`` =
``U[g*p + i, j]``, so that the threads of a warp (consecutive units i) read consecutive
addresses, and are copied into shared memory once per launch when ``stage`` is set.
"""
