"""A classifier head: one class distribution per sequence, from its last state."""
import numpy as np

import rnnsim


class ClassifierHead(rnnsim.Head):
    """y = softmax(W_y a_T + b_y): per-class probabilities (B, classes); argmax in ``class``."""

    default_activation = "softmax"
    per_step = False
    equation = "y = softmax(W_y a_T + b_y), class = argmax y"

    def forward(self, params, states):
        return self.activation(self.linear(params, states[-1]))

    def extra_outputs(self, y):
        return {"class": np.argmax(y, axis=-1)}


@rnnsim.hookimpl
def register_heads(register):
    register("classifier", ClassifierHead,
             description="class probabilities of each sequence and their argmax")
