"""Unit tests of socklab.host.capacity: CPU arithmetic and its command lines (no Docker)."""

from __future__ import annotations

import os

import pytest

from socklab.host import capacity, hostctl


def test_cores_busy_scales_the_busy_share_by_the_cpu_count() -> None:
    cpus = os.cpu_count() or 1
    assert capacity.cores_busy((100, 1000), (150, 1100)) == pytest.approx(cpus * 0.5)
    assert capacity.cores_busy((5, 5), (5, 5)) == 0.0


def test_cpu_figures_share_the_labs_cpu_per_lab_and_the_daemons_per_machine() -> None:
    before = capacity.CpuSample(containers=1.0, shims=0.0, storage=0.0, daemons=2.0)
    after = capacity.CpuSample(containers=3.0, shims=1.0, storage=0.5, daemons=3.0)
    assert capacity.cpu_figures(before, after, labs=2, seconds=10.0) == {
        "lab_cores_containers": 0.1, "lab_cores_shims": 0.05, "lab_cores_storage": 0.025,
        "daemon_cores": 0.1}


@pytest.mark.parametrize(("main", "argv"), [(capacity.main, ["--help"]),
                                            (hostctl.main, ["capacity", "--help"])],
                         ids=["capacity", "hostctl capacity"])
def test_capacity_is_reached_on_both_command_lines(
        main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 0
    assert "--counts" in capsys.readouterr().out


def test_hostctl_refuses_capacity_s_options_on_its_other_actions() -> None:
    with pytest.raises(SystemExit) as stopped:
        hostctl.main(["labs", "--counts", "1"])
    assert stopped.value.code == 2
