"""The playbook is clean: ansible-lint's production profile, a syntax check, pinned versions."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import yaml
from ansible_run import ANSIBLE_DIR, SITE, parse_recap, run_tool


def test_ansible_lint_production_profile_passes() -> None:
    result = run_tool("ansible-lint", "--profile", "production", timeout=600)
    assert result.returncode == 0, result.tail()
    assert "Profile 'production' was required, and it passed" in result.output, result.tail()


def test_syntax_check_passes(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[lab_vms]\nvm-1 ansible_host=192.0.2.1\n")
    result = run_tool("ansible-playbook", "--syntax-check", "-i", str(inventory), str(SITE),
                      timeout=300)
    assert result.returncode == 0, result.tail()


def test_example_inventory_names_the_group_site_yml_provisions() -> None:
    result = run_tool("ansible-inventory", "-i", str(ANSIBLE_DIR / "inventory" / "example.ini"),
                      "--list", timeout=120)
    assert result.returncode == 0, result.tail()
    inventory = json.loads(result.output[result.output.index("{"):])
    assert inventory["lab_vms"]["hosts"], inventory


def test_swarm_example_inventory_keeps_clients_and_servers_on_different_vms() -> None:
    result = run_tool("ansible-inventory", "-i",
                      str(ANSIBLE_DIR / "inventory" / "swarm-example.ini"), "--list", timeout=120)
    assert result.returncode == 0, result.tail()
    inventory = json.loads(result.output[result.output.index("{"):])
    hosts = {group: set(inventory[group]["hosts"]) for group in
             ("lab_vms", "swarm_managers", "swarm_workers", "lab_clients", "lab_servers")}
    assert hosts["swarm_managers"] | hosts["swarm_workers"] == hosts["lab_vms"]
    assert hosts["lab_clients"] and hosts["lab_servers"]
    assert not hosts["lab_clients"] & hosts["lab_servers"]


def test_installed_ansible_is_the_pinned_release() -> None:
    pins = dict(re.findall(r"^([\w-]+)==(\S+)$", (ANSIBLE_DIR / "requirements.txt").read_text(),
                           re.MULTILINE))
    assert set(pins) == {"ansible", "ansible-lint"}
    assert {name: metadata.version(name) for name in pins} == pins


def test_required_collections_are_installed_so_galaxy_is_not_needed() -> None:
    """requirements.yml's versions are those the pinned ansible package carries."""
    required = yaml.safe_load((ANSIBLE_DIR / "requirements.yml").read_text())["collections"]
    result = run_tool("ansible-galaxy", "collection", "list", "--format", "json", timeout=120)
    assert result.returncode == 0, result.tail()
    listed = json.loads(result.output[result.output.index("{"):])
    installed = {name: info["version"] for path in listed.values()
                 for name, info in path.items()}
    for collection in required:
        assert installed.get(collection["name"]) == collection["version"].lstrip("="), collection


def test_recap_parser_reads_every_host() -> None:
    output = """
PLAY RECAP *********************************************************************
vm-1   : ok=32   changed=13   unreachable=0    failed=0    skipped=2    rescued=0  ignored=0
vm-2   : ok=29   changed=0    unreachable=1    failed=0    skipped=2    rescued=0  ignored=0
"""
    recap = parse_recap("PLAY RECAP\nold : ok=1 changed=1\n" + output)
    assert set(recap) == {"vm-1", "vm-2"}
    assert (recap["vm-1"]["changed"], recap["vm-2"]["changed"]) == (13, 0)
    assert recap["vm-2"]["unreachable"] == 1
