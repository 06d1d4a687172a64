"""Generation rules: features, roles, profiles, and the verification of each binding against the analysis.

A *feature* (``apic-only``, ``synthetic-clock``, ``acpi-fixups``, ``crash-msrs``) is a set of *roles*. A role is
a job a HAL function does ("legacy PIC init", "clock init", "stall calibration", ...). A *profile* binds each role
to a function of a particular source tree (``generator/profiles/hal_src.toml`` for our reference HAL,
``reactos_ref/profile.toml`` for upstream ReactOS's ``hal/halx86``) and says what the analysis must show for that
binding to be trusted: the touch-point classes the function (or its call tree) must still have. A binding whose
function is missing, or no longer shows what the profile expects, is refused with a message that says which role,
which function, where, and why -- the generator then writes nothing.

Profile format (TOML)::

    [profile]
    name = "hal_src"              # must match --profile
    root = ""                     # folder of the HAL inside SRC ("hal/halx86" style layouts may give it)
    header = "include/halp.h"     # the header every C file includes first (gets the hvp.h include)
    include_dir = "include"       # where hvp.h and hv_interface.h go
    new_dir = "hyperv"            # where the new C files go
    guest_os = "open-source"      # default GUEST_OS_ID encoding (targets may override: [guest_os_by_target])
    glue = "hal_src"              # which primitives the templates use (see templates/variant/hyperv/hvp.h.j2)

    [[roles]]
    name = "legacy-pic-init"
    features = ["apic-only"]
    function = "HalpInitializeLegacyPICs"
    file = "generic/pic.c"        # relative to root; the binding is refused if the function lives elsewhere
    action = "replace"            # replace | insert-at-body-start | insert-before-guard-end
    template = "roles/legacy_pic_init.c.j2"
    required = true               # false: a missing function is skipped (said in CHANGES.md), not refused
    what = "..."                  # CHANGES.md text
    why = "..."
    [[roles.expect]]              # any one alternative must hold (none listed: existence is enough)
    class = "8259"
    transitive = false            # look in the call tree, not just the function
    rtc_use = "interrupt"         # optional: only RTC touch points of that use
    describe = "8259 ports 0x20/0xA0"
    calls = ["HalpInitializeClock"]   # optional: the function must call one of these (insert actions)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROFILE_FILES = {
    "hal_src": REPO / "generator" / "profiles" / "hal_src.toml",
    "reactos": REPO / "reactos_ref" / "profile.toml",
}
#: Every feature the generator knows, with what it is for (CLI help and CHANGES.md).
FEATURES = {
    "apic-only": "APIC-only interrupts: no 8259 programming, MADT without PC-AT compatibility accepted",
    "synthetic-clock": "Hyper-V time: reference TSC page counter, frequency MSRs, synthetic-timer clock "
                       "(with the fallbacks: TIME_REF_COUNT, PM timer at X_PM_TMR_BLK, SynIC message mode, "
                       "local-APIC timer)",
    "acpi-fixups": "ACPI fixups: SMI_CMD = 0 means ACPI is already on, PM blocks from the X_ fields, reboot "
                   "through the FADT reset register",
    "crash-msrs": "bug checks reported to the host through the Hyper-V guest crash MSRs",
}
DEFAULT_FEATURES = tuple(FEATURES)
ACTIONS = ("replace", "insert-at-body-start", "insert-before-guard-end")


class RuleError(Exception):
    """A profile is malformed or a binding is refused; ``lines`` says which and why."""

    def __init__(self, message: str, lines: list[str] | None = None):
        super().__init__(message)
        self.lines = lines or []


@dataclass(frozen=True)
class Expectation:
    """One alternative of what a role's function must show in the analysis."""

    cls: str
    describe: str
    transitive: bool = False
    rtc_use: str | None = None


@dataclass(frozen=True)
class Role:
    """A role of a profile: which function does the job, how to rewrite it and what to check first."""

    name: str
    features: tuple[str, ...]
    function: str
    file: str
    action: str
    template: str
    what: str
    why: str
    required: bool = True
    expect: tuple[Expectation, ...] = ()
    calls: tuple[str, ...] = ()


@dataclass
class Profile:
    """A profile: the layout facts of a source tree and its role map."""

    name: str
    path: Path
    root: str
    header: str
    include_dir: str
    new_dir: str
    glue: str
    guest_os: str
    guest_os_by_target: dict[str, str]
    checked_revision: str
    roles: list[Role]
    text: bytes = b""
    #: A line of the tree's own build lists (e.g. ``apic/tsc.c`` in ``apic.cmake``) after which the variant's new
    #: C files are listed, so the patched tree builds them; empty when the unit finds new files itself (a glob).
    build_list_anchor: str = ""

    def roles_for(self, features: list[str]) -> list[Role]:
        """The roles any of ``features`` needs, in profile order."""
        return [r for r in self.roles if set(r.features) & set(features)]

    def guest_os_for(self, target: str) -> str:
        """The GUEST_OS_ID encoding for ``target`` (``open-source`` or ``windows-nt``)."""
        return self.guest_os_by_target.get(target, self.guest_os)


@dataclass
class Binding:
    """A verified binding: the role, the analyzed function (None for a skipped optional role)."""

    role: Role
    function: object | None
    skipped: str = ""
    evidence: list[str] = field(default_factory=list)


def profile_names() -> list[str]:
    """Names accepted by ``--profile``."""
    return sorted(PROFILE_FILES)


def load_profile(name: str) -> Profile:
    """Load and check the profile ``name``; ``RuleError`` for an unknown or malformed profile."""
    if name not in PROFILE_FILES:
        raise RuleError(f"unknown profile {name!r}; known profiles: {', '.join(profile_names())}")
    path = PROFILE_FILES[name]
    raw_bytes = path.read_bytes()
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: {exc}") from None
    head = raw.get("profile", {})
    if head.get("name") != name:
        raise RuleError(f"{path}: [profile] name is {head.get('name')!r}, expected {name!r}")
    roles = []
    seen = set()
    for i, r in enumerate(raw.get("roles", [])):
        where = f"{path}: roles[{i}]"
        for key in ("name", "features", "function", "file", "action", "template", "what", "why"):
            if key not in r:
                raise RuleError(f"{where}: missing {key!r}")
        if r["name"] in seen:
            raise RuleError(f"{where}: role {r['name']!r} listed twice")
        seen.add(r["name"])
        unknown = sorted(set(r["features"]) - set(FEATURES))
        if unknown:
            raise RuleError(f"{where}: unknown feature(s) {', '.join(unknown)}")
        if r["action"] not in ACTIONS:
            raise RuleError(f"{where}: action {r['action']!r} not one of {', '.join(ACTIONS)}")
        expect = tuple(Expectation(e["class"], e.get("describe", e["class"]), bool(e.get("transitive", False)),
                                   e.get("rtc_use")) for e in r.get("expect", []))
        roles.append(Role(r["name"], tuple(r["features"]), r["function"], r["file"], r["action"], r["template"],
                          r["what"].strip(), r["why"].strip(), bool(r.get("required", True)), expect,
                          tuple(r.get("calls", []))))
    return Profile(name, path, head.get("root", ""), head.get("header", ""), head.get("include_dir", "include"),
                   head.get("new_dir", "hyperv"), head.get("glue", name), head.get("guest_os", "open-source"),
                   dict(raw.get("guest_os_by_target", {})), head.get("checked_revision", ""), roles, raw_bytes,
                   head.get("build_list_anchor", ""))


def parse_features(text: str | None) -> list[str]:
    """``--features`` value → sorted list; ``RuleError`` for an unknown name or an empty list."""
    if text is None:
        return sorted(DEFAULT_FEATURES)
    names = sorted({f.strip() for f in text.split(",") if f.strip()})
    if not names:
        raise RuleError("--features is empty; known features: " + ", ".join(FEATURES))
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise RuleError(f"unknown feature(s) {', '.join(unknown)}; known features: {', '.join(FEATURES)}")
    return names


def _rel_to_root(model_file: str, root: str) -> str:
    """A model path (relative to SRC) as a path relative to the profile's HAL root, or '' if outside it."""
    if not root:
        return model_file
    prefix = root.rstrip("/") + "/"
    return model_file[len(prefix):] if model_file.startswith(prefix) else ""


def _find_function(model, role: Role, root_prefix: str):
    """The model's function for ``role``: its name, defined in the role's file (names of duplicated statics
    are ``file:name`` in the model)."""
    want_file = (root_prefix + role.file) if root_prefix else role.file
    fn = model.functions.get(role.function)
    if fn is not None and fn.file == want_file:
        return fn, None
    qualified = model.functions.get(f"{want_file}:{role.function}")
    if qualified is not None:
        return qualified, None
    if fn is not None:
        return None, f"{role.function} is defined in {fn.file}:{fn.start_line}, not in {want_file}"
    return None, f"no function {role.function} is defined in {want_file}"


def _check_expectation(model, fn, exp: Expectation) -> list:
    points = model.touches(fn.name, exp.cls, transitive=exp.transitive)
    if exp.rtc_use is not None:
        points = [p for p in points if p.rtc_use == exp.rtc_use]
    return points


def bind(model, profile: Profile, features: list[str], root_prefix: str = "") -> list[Binding]:
    """Bind every role ``features`` need to a function of ``model`` and verify it.

    ``root_prefix`` is the HAL root's path relative to SRC ("" or e.g. "hal/halx86/"). Raises ``RuleError``
    listing every refused binding (all of them, so one run tells the whole story).
    """
    bindings: list[Binding] = []
    refused: list[str] = []
    for role in profile.roles_for(features):
        if role.action == "insert-before-guard-end":
            bindings.append(Binding(role, None))  # a header edit: checked when the file is read
            continue
        fn, problem = _find_function(model, role, root_prefix)
        if fn is None:
            if role.required:
                refused.append(f"role {role.name}: {problem}")
            else:
                bindings.append(Binding(role, None, skipped=problem))
            continue
        where = f"{fn.name} ({_rel_to_root(fn.file, root_prefix.rstrip('/'))}:{fn.start_line})"
        evidence: list[str] = []
        if role.expect:
            found = None
            for exp in role.expect:
                points = _check_expectation(model, fn, exp)
                if points:
                    found = (exp, points)
                    break
            if found is None:
                wanted = " or ".join(
                    e.describe + (" in its call tree" if e.transitive else "") for e in role.expect)
                first = role.expect[0]
                refused.append(f"role {role.name}: {where} no longer touches {first.describe}; expected {wanted}")
                continue
            exp, points = found
            evidence = [f"{p.cls}: {p.detail} at {p.file}:{p.line} in {p.function}" for p in points[:3]]
        if role.calls:
            callees = set(model.callees(fn.name))
            if not callees & set(role.calls):
                refused.append(f"role {role.name}: {where} no longer calls {' or '.join(role.calls)}; expected "
                               f"the phase that does (the Hyper-V set-up goes there)")
                continue
            evidence.append("calls " + ", ".join(sorted(callees & set(role.calls))))
        bindings.append(Binding(role, fn, evidence=evidence))
    if refused:
        raise RuleError(f"{len(refused)} binding(s) refused against the analysis", refused)
    return bindings
