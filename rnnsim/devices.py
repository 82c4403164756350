"""The devices a network runs on, by name: one list for the config schema, the API and the
CLI's options, in a module light enough for `rnnsim --help` (no numpy, no numba)."""
from .errors import ConfigError, shown

DEVICES = ("cpu", "cuda")


def checked_device(device, where: str = "device") -> str:
    """``device`` if it names a device rnnsim runs on; ConfigError otherwise."""
    if device not in DEVICES:
        raise ConfigError(f"{where}: unknown device {shown(device)}; use one of "
                          f"{', '.join(DEVICES)}.")
    return device
