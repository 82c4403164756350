"""Ensembles of echo-state networks: many reservoirs, one input, one kernel call."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from . import config as config_mod
from . import device as device_mod
from .devices import checked_device
from .errors import ConfigError, InputError, ShapeError
from .network import Network
from .plugins import get_plugins


@dataclass
class EnsembleResult:
    """What ``run_ensemble`` returns: states (T, M, N) and readouts y (T, M, m) or None."""

    states: np.ndarray
    y: np.ndarray | None


def ensemble(config, members: Sequence[Mapping]) -> list:
    """One ``Network`` per member: ``config`` with the member's ``seed`` and layer-0 keys.

    members : e.g. ``[{"seed": 1, "leak_rate": 0.3}, {"seed": 2, "leak_rate": 0.5}]``
    """
    base = config_mod.parse(config, get_plugins().cells).dump()
    nets = []
    for member in members:
        data = {"network": dict(base["network"]), "run": base["run"]}
        layer = dict(data["network"]["layers"][0])
        for key, value in member.items():
            if key == "seed":
                data["network"]["seed"] = value
            else:
                layer[key] = value
        data["network"]["layers"] = [layer] + data["network"]["layers"][1:]
        nets.append(Network.from_config(data))
    return nets


def run_ensemble(nets: Sequence, u, device: str | None = None) -> EnsembleResult:
    """Run many single-layer echo-state networks on the same input in one parallel kernel call.

    nets : networks of one ``esn`` layer each, with equal units, input size, activation,
        dtype and storage (all dense or all sparse); seeds and other options may differ
    u : (T, k) input shared by every member
    device : 'cpu' or 'cuda' (one GPU launch for all members); default: member 0's device
    """
    if not nets:
        raise InputError("run_ensemble needs at least one network.")
    first = nets[0].layers[0] if len(nets[0].layers) == 1 else None
    if first is None or not first.reservoir:
        raise ConfigError("run_ensemble: every member must have exactly one esn layer.")
    u = np.ascontiguousarray(u, dtype=nets[0].dtype)
    if u.ndim != 2 or u.shape[1] != nets[0].input_size:
        raise ShapeError(f"run_ensemble: u has shape {u.shape}; expected (T, "
                         f"{nets[0].input_size}).")
    for i, net in enumerate(nets):
        layer = net.layers[0] if len(net.layers) == 1 else None
        same = layer is not None and type(layer) is type(first) and (
            layer.units, layer.input_size, net.dtype, layer.sparse, layer.feedback_size,
            [a.entry for a in layer.activations], [a.params for a in layer.activations]) == (
            first.units, first.input_size, nets[0].dtype, first.sparse, first.feedback_size,
            [a.entry for a in first.activations], [a.params for a in first.activations])
        if not same:
            raise ConfigError(f"run_ensemble: member {i} differs from member 0 in its layers, "
                              "units, input size, dtype, activation, sparse storage or output "
                              "feedback; only seeds, leak rates, scalings, noise and weights "
                              "may differ.")
    # With output feedback the readout runs inside the loop: it needs each member's head.
    params = [net.layer_params(0) for net in nets]
    members = [net.layers[0] for net in nets]
    on_gpu = checked_device(device or nets[0].device, "run_ensemble: device") == "cuda"
    if on_gpu and first.feedback_size:
        raise ConfigError("run_ensemble: output feedback runs on the CPU only; use device "
                          "'cpu'.")
    if on_gpu:
        states = device_mod.run_members(first, members, params, u)
    else:
        states = first.run_members(members, params, u)
    ys = None
    if all(net.head is not None for net in nets):
        ys = np.stack([net.head.forward({k[5:]: v for k, v in net.params.items()
                                         if k.startswith("head.")}, states[:, m])
                       for m, net in enumerate(nets)], axis=1)
    return EnsembleResult(states, ys)
