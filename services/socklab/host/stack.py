"""The lab as a Docker Swarm stack: compose/lab.yml plus compose/swarm.yml, rendered.

``docker stack deploy`` reads Compose files, but not every key ``docker
compose up`` reads. The lab is defined once, in ``compose/lab.yml``; what
Swarm needs on top (an attachable overlay network, placement of servers and
clients on different nodes, a restart policy, DNS round robin instead of a
virtual IP) lives in ``compose/swarm.yml``. This module merges the two and
translates what the stack format spells differently, so the stack is the
learner's lab on several machines:

- ``mem_limit`` and ``pids_limit`` become ``deploy.resources.limits``; ``tmpfs``
  entries become volumes of type tmpfs (with their size); ``memswap_limit``
  is dropped: a Swarm task has no setting for swap (lab machines have none);
- ``restart`` and ``security_opt`` are dropped: Swarm restarts tasks by its
  ``restart_policy`` and has no ``no-new-privileges`` (the servers still run
  without capabilities, as an unprivileged user, on a read-only root);
- ``${VAR:-default}`` references are resolved here (the image tag, the
  network's name), so the file deploys the same from any shell;
- ``version: "3.9"``, which the Docker CLI of Debian 12 (20.10) requires.

The rendering is pure (dicts in, a dict out) and unit-tested; the output is
JSON, which every YAML reader reads. Usage (on the control node, where the
Ansible role runs it)::

    python3 -m socklab.host.stack render --stack socklab-alice --image socklab-lab:TAG > stack.yml
    docker stack deploy --resolve-image never -c stack.yml socklab-alice
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

from socklab.host.paths import REPO_ROOT

ROOT = REPO_ROOT
LAB_FILE = ROOT / "compose" / "lab.yml"
SWARM_FILE = ROOT / "compose" / "swarm.yml"

STACK_VERSION = "3.9"
DEFAULT_STACK = "socklab"
# A stack's name prefixes its services' names (socklab-alice_twisted-server), and
# a service name is at most 63 characters: 48 for the stack leaves room for the
# longest service and holds socklab-NAME for every LAB name make up accepts (38).
STACK_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")

# Keys of a Compose service that the stack format refuses or ignores and that
# have no stack equivalent: dropped (see the module's docstring).
DROPPED = ("memswap_limit", "restart", "security_opt")
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


class StackError(ValueError):
    """A stack that cannot be rendered: a bad name, a variable without a value."""


def merge(base: Any, override: Any) -> Any:
    """``override`` merged into ``base`` as Compose merges files: maps deeply, the rest replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Every ``${NAME}``/``${NAME:-default}`` in the strings of ``value`` resolved."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def resolve(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if variables.get(name):
            return variables[name]
        if default is None:
            raise StackError(f"${{{name}}} has no value and no default")
        return default

    return VARIABLE.sub(resolve, value)


SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def tmpfs_mount(entry: str) -> dict[str, Any]:
    """A short-syntax tmpfs entry (``/tmp:size=16m,mode=1777``) as a stack volume of type tmpfs.

    The stack format takes only the size; Swarm's tmpfs takes the mode of the
    image's directory below it but not its owner, which is why the image makes
    /srv/exec (the runner's scratch space) mode 1777.
    """
    target, _, options = entry.partition(":")
    mount: dict[str, Any] = {"type": "tmpfs", "target": target}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "size":
            number = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
            if not number:
                raise StackError(f"tmpfs {target}: size {value!r} is not a number of k, m or g")
            mount["tmpfs"] = {"size": int(number[1]) * SIZE_UNITS[number[2]]}
    return mount


def swarm_service(service: dict[str, Any]) -> dict[str, Any]:
    """One Compose service as the stack format takes it (see the module's docstring)."""
    spec = {key: value for key, value in service.items() if key not in DROPPED}
    tmpfs = spec.pop("tmpfs", [])
    if tmpfs:
        spec["volumes"] = [*spec.get("volumes", []), *(tmpfs_mount(entry) for entry in tmpfs)]
    pids = spec.pop("pids_limit", None)
    if pids is not None:
        limits = spec.setdefault("deploy", {}).setdefault("resources", {}).setdefault("limits", {})
        limits.setdefault("pids", pids)
    memory = spec.pop("mem_limit", None)
    if memory is not None:
        limits = spec.setdefault("deploy", {}).setdefault("resources", {}).setdefault("limits", {})
        limits.setdefault("memory", str(memory).upper().removesuffix("B"))
    return spec


def network_name(stack: str) -> str:
    """The overlay network of stack ``stack``, as Swarm names a stack's own resources.

    Not the stack's bare name: a VM that also runs the Compose lab has a
    bridge network of that name (``socklab``), and two networks of one name
    make every ``--network socklab`` ambiguous.
    """
    return f"{stack}_lab"


def check_stack_name(stack: str) -> str:
    if not STACK_NAME.fullmatch(stack):
        raise StackError(f"stack name {stack!r}: use a-z, 0-9 and '-', at most 48 characters, "
                         "starting with a letter or digit")
    return stack


def render(lab: dict[str, Any], override: dict[str, Any], stack: str,
           image: str) -> dict[str, Any]:
    """The stack file of lab ``stack``: ``lab`` (lab.yml) with ``override`` (swarm.yml).

    The lab's network is named after the stack (``network_name``), so every
    learner's stack has a network of its own and the same host names inside it.
    """
    check_stack_name(stack)
    unknown = set(override.get("services", {})) - set(lab.get("services", {}))
    if unknown:
        raise StackError(f"swarm.yml names services lab.yml lacks: {', '.join(sorted(unknown))}")
    merged = merge({k: v for k, v in lab.items() if not k.startswith("x-")},
                   {k: v for k, v in override.items() if not k.startswith("x-")})
    merged = interpolate(merged, {"SOCKLAB_IMAGE": image, "SOCKLAB_NETWORK": network_name(stack)})
    merged["services"] = {name: swarm_service(service)
                          for name, service in merged["services"].items()}
    return {"version": STACK_VERSION, **{k: v for k, v in merged.items() if k != "version"}}


def load(path: Path) -> dict[str, Any]:
    import yaml  # the venv's or Ansible's PyYAML: only the control node renders

    return yaml.safe_load(path.read_text()) or {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m socklab.host.stack",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["render"])
    parser.add_argument("--stack", default=DEFAULT_STACK, help="stack name (default: socklab)")
    parser.add_argument("--image", required=True, help="the lab image tag, e.g. socklab-lab:TAG")
    parser.add_argument("--lab-file", type=Path, default=LAB_FILE)
    parser.add_argument("--swarm-file", type=Path, default=SWARM_FILE)
    args = parser.parse_args(argv)
    try:
        stack = render(load(args.lab_file), load(args.swarm_file), args.stack, args.image)
    except (StackError, OSError) as error:
        print(f"socklab stack: {error}", file=sys.stderr)
        return 2
    json.dump(stack, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
