"""Built-in recurrent cells, registered through the same hook as a plugin's."""
from ..cells.elman import ElmanCell
from ..cells.esn import ESNCell
from ..cells.gru import GRUCell
from ..cells.lstm import LSTMCell
from ..hookspecs import hookimpl


@hookimpl
def register_cells(register):
    register(ElmanCell, description="Elman (simple) recurrence: a_t = f(W x_t + U a_{t-1} + b)")
    register(LSTMCell, description="long short-term memory, optional peepholes and projection")
    register(GRUCell, description="gated recurrent unit (reset after or before the matmul)")
    register(ESNCell, description="leaky echo-state reservoir, dense or sparse, with feedback")
