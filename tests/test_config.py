"""Config dataclasses: `default()` overrides a shared field's default and
keeps its help, choices and range."""

import argparse
import dataclasses

import pytest

from dlrecipes.config import (TrainConfig, add_config_arguments, default,
                              resolve_config)
from dlrecipes.errors import UsageError


@dataclasses.dataclass(frozen=True)
class _Config(TrainConfig):
    epochs: int = default(8)
    optimizer: str = default("adamw")


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, _Config)
    return resolve_config(_Config, parser.parse_args(argv))


def test_default_keeps_the_base_fields_help_choices_and_range():
    base = TrainConfig.__dataclass_fields__
    ours = _Config.__dataclass_fields__
    assert _Config().epochs == 8 and _Config().optimizer == "adamw"
    assert ours["epochs"].metadata == base["epochs"].metadata
    assert ours["optimizer"].metadata["choices"] == \
        base["optimizer"].metadata["choices"]
    assert _parse([]).epochs == 8
    with pytest.raises(UsageError, match="Received: epochs=0"):
        _parse(["--epochs", "0"])
    with pytest.raises((UsageError, SystemExit)):
        _parse(["--optimizer", "nope"])


def test_default_of_a_field_no_base_has_is_an_error():
    with pytest.raises(TypeError, match="no base has it"):
        @dataclasses.dataclass(frozen=True)
        class Bad(TrainConfig):
            nope: int = default(1)
