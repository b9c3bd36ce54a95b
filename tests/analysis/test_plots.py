"""Figures: each one draws from the fixture, labels its axes, and copes with small plans."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from experiments.analysis import Runs, load_runs, plots

from .conftest import RUN_NAMES

MakePlan = Callable[[Iterable[str]], Path]
ALL_PLOTS = (
    plots.throughput_over_time,
    plots.percentile_spectrum,
    plots.latency_vs_throughput,
    plots.setting_effect,
    plots.cpu_per_component,
)


def _render(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@pytest.mark.parametrize("plot", ALL_PLOTS, ids=lambda f: f.__name__)
def test_every_plot_draws_the_fixture(runs: Runs, plot: Callable[[Runs], Figure | None]) -> None:
    figure = plot(runs)
    assert isinstance(figure, Figure)
    assert _render(figure).startswith(b"\x89PNG")
    assert figure.get_suptitle() or all(axis.get_title() for axis in figure.axes)
    for axis in figure.axes:
        assert axis.get_xlabel() or axis.get_ylabel()


def test_axis_labels_carry_units(runs: Runs) -> None:
    spectrum = plots.percentile_spectrum(runs)
    assert spectrum is not None
    axis = spectrum.axes[0]
    assert axis.get_ylabel() == "latency (ms, log scale)"
    assert axis.get_yscale() == "log"
    labels = [t.get_text() for t in axis.get_xticklabels()]
    assert labels == ["50%", "90%", "99%", "99.9%", "99.99%"]
    throughput = plots.throughput_over_time(runs)
    assert throughput is not None
    assert throughput.axes[0].get_ylabel() == "events accepted per second"


def test_each_configuration_keeps_its_colour(runs: Runs) -> None:
    colours = plots.palette(runs)
    assert list(colours) == list(runs.configs)
    assert len(set(colours.values())) == 3


def test_setting_effect_is_skipped_without_a_varying_setting(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan([RUN_NAMES[0], RUN_NAMES[4]]))
    assert plots.setting_effect(runs) is None


@pytest.mark.parametrize("names", [RUN_NAMES[:1], (RUN_NAMES[0], RUN_NAMES[2])])
def test_small_plans_draw(make_plan: MakePlan, names: tuple[str, ...]) -> None:
    runs = load_runs(make_plan(names))
    for plot in ALL_PLOTS:
        figure = plot(runs)
        if figure is not None:
            _render(figure)


def test_nothing_to_draw(tmp_path: Path) -> None:
    (tmp_path / "001-x-t1").mkdir()
    runs = load_runs(tmp_path)
    assert all(plot(runs) is None for plot in ALL_PLOTS)
