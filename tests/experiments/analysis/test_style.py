"""The figures' shared look: a colour per configuration, in its mode's family."""

from __future__ import annotations

from experiments.analysis import Runs
from experiments.analysis._style import palette


def test_each_configuration_keeps_its_colour(runs: Runs) -> None:
    colours = palette(runs)
    assert list(colours) == list(runs.configs)
    assert len(set(colours.values())) == 3
