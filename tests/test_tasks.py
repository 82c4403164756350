"""The inputs and tasks the API draws: one definition used by the CLI, sweeps and metrics."""
import json

import numpy as np
from click.testing import CliRunner

import rnnsim
from rnnsim import tasks
from rnnsim.builtins import metrics
from rnnsim.cli import cli
from rnnsim.reservoir import fit_and_score, nrmse


def network(**network):
    return rnnsim.Network.from_config({"network": {
        "input_size": 2, "seed": 9, "layers": [{"units": 4}], **network},
        "run": {"timesteps": 7, "batch": 3}})


def test_the_drawn_input_is_the_seeded_draw_in_the_networks_layout():
    net = network()
    x = tasks.draw_input(net, seed=5)
    np.testing.assert_array_equal(
        x, np.random.default_rng([5, 1]).standard_normal((7, 3, 2)).astype(np.float32))
    np.testing.assert_array_equal(tasks.draw_input(net), tasks.draw_input(net, seed=9))
    first = tasks.draw_input(network(batch_first=True), 4, 2, 1)
    assert first.shape == (2, 4, 2)
    np.testing.assert_array_equal(tasks.draw_sequence(net, 4, 1), tasks.draw_input(net, 4, 1, 1)[:, 0])


def test_a_metric_sees_the_input_the_api_draws():
    net = network()
    expected = np.mean(np.abs(net.run(tasks.draw_input(net, seed=3)).output), dtype=np.float64)
    assert metrics.mean_abs_state(net, 3) == expected


def test_the_mackey_glass_task_and_its_score_agree_with_the_cli(tmp_path):
    net = rnnsim.Network.from_config("configs/mackey_glass.yaml")
    u, y, split = tasks.mackey_glass_task(net, 500)
    assert u.shape == y.shape == (500, 1) and split == 400
    np.testing.assert_array_equal(u[1:], y[:-1])
    assert abs(float(np.concatenate([u, y[-1:]]).mean())) < 1e-6
    scores = fit_and_score(net, u, y, split, washout=50)
    prediction = net.run(u).y
    assert scores["test_nrmse"] == nrmse(y[split:], prediction[split:])
    result = CliRunner().invoke(cli, ["fit", "configs/mackey_glass.yaml", "--task",
                                      "mackey-glass", "-T", "500", "--washout", "50", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["test_nrmse"] == scores["test_nrmse"]
    assert report["train_nrmse"] == scores["train_nrmse"]
