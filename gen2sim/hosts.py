"""Hyper-V host profiles: what a Generation 2 guest's CPUID and TSC look like on one host (``specs/hosts/``).

Each ``specs/hosts/<name>.toml`` names its source and gives ``tsc_hz`` and, optionally, a ``[cpuid.<leaf>]`` table
of register values (``eax``/``ebx``/``ecx``/``edx``) that replace the Hyper-V model's defaults
(``specs/hyperv.toml`` [defaults]) for that leaf.  ``load_host(name)`` checks and returns a ``HostProfile``;
``DEFAULT_HOST`` is the profile a boot uses when none is chosen.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError

HOSTS_DIR = Path(__file__).resolve().parent.parent / "specs" / "hosts"
#: The model's own set: the verdicts of the main job were established on it (see specs/hosts/model-default.toml).
DEFAULT_HOST = "model-default"
_REGISTERS = ("eax", "ebx", "ecx", "edx")
#: Hyper-V leaves a profile may set (the model answers 0x40000000-0x40000006).
_LEAVES = range(0x40000000, 0x40000007)


@dataclass(frozen=True)
class HostProfile:
    """One host: its name, where its figures come from, its TSC rate and its CPUID register overrides."""

    name: str
    description: str
    source: str
    tsc_hz: int
    tsc_source: str
    #: ``{leaf: {register_index: value}}`` (register index 0..3 = EAX..EDX) replacing the model's defaults.
    cpuid: dict[int, dict[int, int]] = field(default_factory=dict)


def host_names() -> list[str]:
    """Names of every profile in ``specs/hosts/``, sorted."""
    return sorted(p.stem for p in HOSTS_DIR.glob("*.toml"))


def _require(data: dict, key: str, kind: type, path: Path):
    if key not in data:
        raise ModelError(f"{path}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ModelError(f"{path}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def load_host(name: str, directory: Path | None = None) -> HostProfile:
    """The checked profile ``name`` (``ModelError`` naming the file and field when it is missing or wrong)."""
    directory = directory or HOSTS_DIR
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.toml"))
        raise ModelError(f"unknown host profile {name!r}; known: {', '.join(known)} (files in {directory})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"{path}: cannot read host profile: {exc}") from None
    if _require(data, "name", str, path) != name:
        raise ModelError(f"{path}: field 'name' is {data['name']!r}, expected the file's name {name!r}")
    tsc_hz = _require(data, "tsc_hz", int, path)
    if not 100_000_000 <= tsc_hz <= 10_000_000_000:
        raise ModelError(f"{path}: field 'tsc_hz' = {tsc_hz} is not a plausible TSC rate (0.1-10 GHz)")
    cpuid: dict[int, dict[int, int]] = {}
    for key, regs in data.get("cpuid", {}).items():
        try:
            leaf = int(key, 0)
        except ValueError:
            raise ModelError(f"{path}: [cpuid.{key}]: expected a leaf number such as 0x40000003") from None
        if leaf not in _LEAVES:
            raise ModelError(f"{path}: [cpuid.{key}]: only Hyper-V leaves 0x40000000-0x40000006 may be set")
        if not isinstance(regs, dict) or not regs:
            raise ModelError(f"{path}: [cpuid.{key}] must be a table of eax/ebx/ecx/edx values")
        out = {}
        for reg, value in regs.items():
            if reg not in _REGISTERS:
                raise ModelError(f"{path}: [cpuid.{key}].{reg}: expected one of {', '.join(_REGISTERS)}")
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF_FFFF:
                raise ModelError(f"{path}: [cpuid.{key}].{reg} = {value!r}: expected a 32-bit unsigned integer")
            out[_REGISTERS.index(reg)] = value
        cpuid[leaf] = out
    return HostProfile(name, _require(data, "description", str, path), _require(data, "source", str, path),
                       tsc_hz, _require(data, "tsc_source", str, path), cpuid)
