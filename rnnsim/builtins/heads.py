"""Built-in output heads."""
from ..errors import ConfigError
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


class RidgeHead(Head):
    """A linear readout y_t = W_out x_t + b_out, trained by ridge regression (``Network.fit``)."""

    equation = "y_t = W_out x_t + b_out  (fit by ridge regression)"
    symbols = {"W": "W_out", "b": "b_out"}
    linear_readout = True

    def __init__(self, in_features, units, activation):
        if activation.name != "identity":
            raise ConfigError("network.head.activation: the ridge head is linear; remove the "
                              f"activation '{activation.name}' (or use head 'linear').")
        super().__init__(in_features, units, activation)

    def forward(self, params, states):
        return self.linear(params, states)

    def fit(self, states, targets, ridge):
        from ..reservoir import ridge_regression  # not imported to list or build the head

        w, b = ridge_regression(states, targets, ridge)
        return {"W": w.T, "b": b}


@hookimpl
def register_heads(register):
    register("linear", LinearHead, description="f_y(W_y a_t + b_y) at every step")
    register("softmax", SoftmaxHead, description="softmax(W_y a_t + b_y) at every step")
    register("last_step", LastStepHead, description="f_y(W_y a_T + b_y) on the last step")
    register("ridge", RidgeHead, description="W_out x_t + b_out, trained by Network.fit")
