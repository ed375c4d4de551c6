"""Run ansible-playbook and ansible-lint from the test venv, and read a play recap."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from socklab.host.paths import REPO_ROOT

ROOT = REPO_ROOT
ANSIBLE_DIR = ROOT / "ansible"
SITE = ANSIBLE_DIR / "site.yml"
REPORTS = ROOT / "test-reports" / "ansible"  # the playbook runs' full output
BIN = Path(sys.executable).parent  # ansible-playbook sits beside the venv's python

# A cold converge (Docker from Debian's mirror, the lab image shipped) took
# 4-5 min on an idle 2-core machine; under other test runs' load, several times that.
PLAYBOOK_TIMEOUT = 2400

RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return parse_recap(self.output)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def changed_tasks(self) -> list[str]:
        """Each task that reported a change, with the change lines of its hosts."""
        return [f"{task} {line}" for task, line in task_lines(self.output)
                if line.startswith("changed:")]


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of ``output``: host -> {"ok": n, "changed": n, "failed": n, ...}.

    Only the last recap counts (a run has one per playbook invocation).
    """
    _, found, recap = output.rpartition("PLAY RECAP")
    if not found:
        return {}
    hosts: dict[str, dict[str, int]] = {}
    for line in recap.splitlines()[1:]:
        match = RECAP_LINE.match(line.strip())
        if match:
            counts = (pair.split("=") for pair in match["counts"].split())
            hosts[match["host"]] = {key: int(value) for key, value in counts}
    return hosts


def task_lines(output: str) -> list[tuple[str, str]]:
    """(task header, line) for each line printed under a TASK or HANDLER header."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.rstrip(" *")
        elif task and line.strip():
            found.append((task, line.strip()))
    return found


def ansible_env() -> dict[str, str]:
    """The environment of an Ansible run: ansible/ansible.cfg, no colour.

    PYTHONPATH is dropped: with tests/ on it, this directory (tests/ansible)
    could be taken for the ``ansible`` package.
    """
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}


def run_tool(tool: str, *args: str, timeout: float = PLAYBOOK_TIMEOUT) -> Run:
    """Run an Ansible tool of the venv in ansible/, stdout and stderr together."""
    done = subprocess.run([str(BIN / tool), *args], cwd=ANSIBLE_DIR, env=ansible_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)
    return Run(done.returncode, done.stdout)


def run_playbook(inventory: Path, *args: str, log_name: str = "") -> Run:
    """site.yml against ``inventory``; its output also saved as test-reports/ansible/LOG_NAME."""
    run = run_tool("ansible-playbook", "-i", str(inventory), str(SITE), *args)
    if log_name:
        REPORTS.mkdir(parents=True, exist_ok=True)
        (REPORTS / log_name).write_text(run.output)
    return run
