"""The model's checked kernel: the rules a checked (DBG) kernel or Driver Verifier enforces on a HAL's calls.

Each rule (``specs/bugchecks.toml`` ``[[checked]]``, with its source) names the bug check it raises and what its
parameters hold; a target lists the rules its kernel enforces (``[kernel.checked] rules``): Windows 7's is a kernel
under Driver Verifier with DDI compliance checking, ReactOS's a checked (DBG) build, whose kernel routines do not
check the DDI rules (its KeReleaseSpinLock lowers to any IRQL).  A call above a declaration's highest IRQL raises the declaration's rule when it has one; without
a documented rule the call ends the run as a checked kernel's failed assertion would (``fault`` kind
``checked-assert``: an ASSERT breaks into the debugger, there is no bug-check code to report).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from specs import SPECS_DIR, SpecError

from ..cpu import RunStop


@dataclass(frozen=True)
class Rule:
    """One checked-kernel rule: the bug check it raises and the meaning of its parameters."""

    rule: str
    code: int
    p1: int | None
    params: tuple[str, ...]
    source: str


_RULES: dict[str, Rule] | None = None


def rules() -> dict[str, Rule]:
    """The ``[[checked]]`` rules of ``specs/bugchecks.toml`` by name."""
    global _RULES
    if _RULES is None:
        path = SPECS_DIR / "bugchecks.toml"
        try:
            entries = tomllib.loads(path.read_text(encoding="utf-8")).get("checked", [])
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SpecError(f"{path}: {exc}") from None
        out: dict[str, Rule] = {}
        for i, e in enumerate(entries):
            name, code, source = e.get("rule"), e.get("code"), e.get("source")
            params = e.get("params")
            if not (isinstance(name, str) and isinstance(code, int) and isinstance(source, str)
                    and isinstance(params, list) and len(params) == 4) or name in out:
                raise SpecError(f"{path}: [[checked]] #{i + 1} needs a unique rule, an integer code, four params and "
                                f"a source, got {e!r}")
            p1 = e.get("p1")
            if p1 is not None and not isinstance(p1, int):
                raise SpecError(f"{path}: [[checked]] {name}: p1 should be an integer")
            out[name] = Rule(name, code, p1, tuple(params), source)
        _RULES = out
    return _RULES


def enabled(k, rule: str) -> bool:
    """Whether the target's kernel enforces ``rule`` (``[kernel.checked] rules``; every rule when not given)."""
    names = k.kernel_data("checked").get("rules")
    return names is None or rule in names


def violation(k, rule: str, params: list[int], detail: str) -> None:
    """Raise the bug check of ``rule`` through the kernel's bug-check path (when the target's kernel enforces the
    rule; otherwise nothing happens); ``params`` are parameters 2-4 when the rule fixes parameter 1, else all four."""
    r = rules().get(rule)
    if r is None:
        raise SpecError(f"specs/bugchecks.toml: no [[checked]] rule {rule!r}")
    if not enabled(k, rule):
        return
    full = ([r.p1] + list(params)) if r.p1 is not None else list(params)
    full = (full + [0, 0, 0, 0])[:4]
    k.trace.record("note", device="kernel", detail=f"checked kernel: {rule}: {detail}")
    k.bugcheck(r.code, full, reported_via=f"checked kernel ({rule})", checked={"rule": rule, "detail": detail,
                                                                              "source": r.source})


def assertion(k, detail: str) -> RunStop:
    """The ``checked-assert`` fault: a checked kernel's ASSERT failed (no bug-check code exists for it)."""
    return RunStop({"verdict": "fault", "fault": {"kind": "checked-assert", "function": k.caller_function,
                                                  "address": k.caller_address, "detail": detail}})


def check_irql(k, exp) -> None:
    """Enforce ``exp.max_irql`` at the current IRQL (CR8)."""
    limit = k.irql_level(exp.max_irql)
    now = k.irql
    if now <= limit:
        return
    detail = f"{exp.name} called at IRQL {now}, above {exp.max_irql.upper()}_LEVEL ({limit})"
    if exp.rule and enabled(k, exp.rule):
        violation(k, exp.rule, [0, 0, 0], detail)
    raise assertion(k, detail)
