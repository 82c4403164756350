"""The classifier head is discovered once installed and classifies each tweet."""
import numpy as np
from click.testing import CliRunner

import rnnsim
from rnnsim.cli import cli
from rnnsim.plugins import get_plugins

TWEETS = {"network": {"input_size": 8, "dtype": "float64", "seed": 0,
                      "layers": [{"units": 10}], "head": {"name": "classifier", "units": 3}},
          "run": {"timesteps": 20, "batch": 4}}


def test_discovered_through_its_entry_point():
    assert get_plugins().heads.get("classifier", "test").source.package == "rnnsim-classifier"


def test_probabilities_and_argmax_per_sequence():
    net = rnnsim.Network.from_config(TWEETS)
    result = net.run(np.random.default_rng(0).standard_normal((20, 4, 8)))
    assert result.y.shape == (4, 3)
    np.testing.assert_allclose(result.y.sum(-1), 1.0)
    z = result.output[-1] @ net.params["head.W"].T + net.params["head.b"]
    np.testing.assert_allclose(np.log(result.y) - np.log(result.y[:, :1]), z - z[:, :1],
                               atol=1e-12)
    np.testing.assert_array_equal(net.head.extra_outputs(result.y)["class"],
                                  result.y.argmax(-1))


def test_cli_writes_the_classes(tmp_path):
    import yaml

    config = tmp_path / "tweets.yaml"
    config.write_text(yaml.safe_dump(TWEETS))
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(cli, ["run", str(config), "--output", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert data["class"].shape == (4,)
        np.testing.assert_array_equal(data["class"], data["y"].argmax(-1))
