"""Built-in output heads."""
from ..heads import Head
from ..hookspecs import hookimpl


class LinearHead(Head):
    """y_t = f_y(W_y a_t + b_y) at every step."""

    equation = "y_t = f_y(W_y a_t + b_y)"

    def forward(self, params, states):
        return self.activation(self.linear(params, states))


class SoftmaxHead(LinearHead):
    """Per-step class probabilities: softmax(W_y a_t + b_y)."""

    equation = "y_t = softmax(W_y a_t + b_y)"

    default_activation = "softmax"


class LastStepHead(Head):
    """y = f_y(W_y a_T + b_y) on the final step only: one output per sequence."""

    per_step = False
    equation = "y = f_y(W_y a_T + b_y)"

    def forward(self, params, states, lengths=None):
        last = states[-1] if lengths is None else states[lengths - 1, range(states.shape[1])]
        return self.activation(self.linear(params, last))


@hookimpl
def register_heads(register):
    register("linear", LinearHead, description="f_y(W_y a_t + b_y) at every step")
    register("softmax", SoftmaxHead, description="softmax(W_y a_t + b_y) at every step")
    register("last_step", LastStepHead, description="f_y(W_y a_T + b_y) on the last step")
