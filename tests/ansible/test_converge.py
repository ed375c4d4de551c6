"""Converge fresh test VMs with site.yml, then run it again: nothing may change."""

from __future__ import annotations

from ansible_run import Run

from socklab.host import vms


def test_site_yml_converges_fresh_vms(converge: Run, vm_list: list[vms.Vm]) -> None:
    assert converge.returncode == 0, converge.tail()
    recap = converge.recap
    assert set(recap) == {vm.name for vm in vm_list}, converge.tail()
    for host, counts in recap.items():
        assert (counts["failed"], counts["unreachable"]) == (0, 0), (host, counts)
        assert counts["changed"] > 0, (host, counts)  # fresh VMs: Docker, limits, the lab


def test_second_run_changes_nothing(second_run: Run, vm_list: list[vms.Vm]) -> None:
    assert second_run.returncode == 0, second_run.tail()
    recap = second_run.recap
    assert set(recap) == {vm.name for vm in vm_list}, second_run.tail()
    changed = {host: counts["changed"] for host, counts in recap.items()}
    assert changed == dict.fromkeys(changed, 0), "\n".join(second_run.changed_tasks())
    assert all(counts["failed"] == 0 for counts in recap.values()), second_run.tail()
