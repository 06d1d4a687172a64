"""The variant's templates: one body per role for every HAL glue, and every number from the fact files.

- A role two profiles bind to different templates has one body (``templates/variant/roles/body/``); each HAL's glue
  file only extends it, imports its glue names and fills the body's blocks (checked on the Jinja syntax tree), and
  both glues' renders carry every line of the body.
- No template and no rendered file states, as a bare literal, a number a fact file holds (target descriptions,
  ``specs/x64.toml``, ``specs/acpi.toml``, ``specs/bugchecks.toml``, ``specs/hyperv.toml``).
- What the ReactOS glue renders equals the facts; our reference HAL's own headers, the local-APIC model and the ACPI
  table builder agree with the same facts.
No libclang and no compiler: these run in a second.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
from jinja2 import nodes

from generator import generate, render, rules
from specs import SpecError, bugcheck_names, bugcheck_parameters, load_facts, load_target, target_names
from conftest import REPO

VARIANT = REPO / "templates" / "variant"
BODY_DIR = "variant/roles/body/"
#: Roles both profiles bind, each through its own glue file: at least these must share one body.
SHARED_ROLES = {"stall", "stall-calibration", "clock-init", "clock-interrupt", "reboot"}
#: Below this a literal is an index, a shift, a count or a flag, whatever a fact file may also hold.
SMALLEST_CHECKED = 0x10
#: Sections of specs/hyperv.toml whose integers are interface numbers (MSRs, leaves, signatures, protocol values).
HYPERV_NUMBERS = ("meta", "signatures", "cpuid_leaves", "msrs", "reference_tsc", "synic", "synthetic_timers",
                  "crash", "message_types", "hypercalls", "hv_status", "guest_os_vendors", "microsoft_os_ids",
                  "open_source_os_types")


# ---- helpers ----------------------------------------------------------------------------------------------------

def _env() -> jinja2.Environment:
    return render.environment()


def _context(profile: str, target: str, role: str = "sample-role") -> dict:
    """What ``_plan`` renders a role with, for a function ``Sample(Arg0, Arg1)``."""
    ctx = generate.template_context(rules.load_profile(profile), sorted(rules.FEATURES), target)
    ctx.update(role=SimpleNamespace(name=role), signature="VOID\nSample(ULONG Arg0, PVOID Arg1)",
               params=["Arg0", "Arg1"], fn=None)
    return ctx


def _render(template: str, profile: str, target: str, role: str = "sample-role") -> str:
    return _env().get_template(template).render(**_context(profile, target, role))


def _role_templates() -> dict[str, dict[str, str]]:
    """role name -> {profile name: template path under templates/}."""
    out: dict[str, dict[str, str]] = {}
    for name in rules.profile_names():
        for role in rules.load_profile(name).roles:
            out.setdefault(role.name, {})[name] = f"variant/{role.template}"
    return out


def _parse(template: str) -> nodes.Template:
    env = _env()
    source = env.loader.get_source(env, template)[0]
    return env.parse(source)


def _blocks(tree: nodes.Template) -> set[str]:
    return {b.name for b in tree.find_all(nodes.Block)}


def _glue_of(template: str) -> str:
    """The glue a role template belongs to, by folder: roles/reactos/ is ReactOS's, roles/ is hal_src's."""
    return "reactos" if template.startswith("variant/roles/reactos/") else "hal_src"


def _strip_comments(text: str) -> str:
    """C (and Jinja) comments and C string literals blanked out: prose may quote numbers, code may not. A line
    that starts like a block comment's line (``/*``, ``*``) counts as comment too: in a template a Jinja branch
    may cut a comment in two."""
    text = re.sub(r"\{#.*?#\}", " ", text, flags=re.S)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*(?:/\*|\*).*$", " ", text, flags=re.M)
    return re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)


_LITERAL = re.compile(r"(?<![\w.])(0[xX][0-9A-Fa-f]+|[0-9]+)(?:[uUlL]{0,3})(?![\w.])")


def _literals(text: str) -> list[tuple[int, str]]:
    """(value, line) of every integer literal in the code of ``text``."""
    out = []
    for line in _strip_comments(text).splitlines():
        for m in _LITERAL.finditer(line):
            out.append((int(m.group(1), 0), line.strip()))
    return out


def _ints(value, path: str, into: dict[int, str]) -> None:
    """Collect every integer of a fact table (value -> where it is)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        into.setdefault(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _ints(item, f"{path}.{key}", into)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _ints(item, f"{path}[{i}]", into)


def _fact_numbers() -> dict[int, str]:
    """Every number the fact files hold, at least SMALLEST_CHECKED, with where it is held."""
    from gen2sim.hvspec import load_hyperv_spec

    found: dict[int, str] = {}
    for name in target_names():
        t = load_target(name)
        for section in ("abi", "vectors", "addresses", "bugcheck", "irql"):
            _ints(getattr(t, section), f"targets/{name}.toml [{section}]", found)
        for sname, struct in t.structs.items():
            _ints(struct.constants, f"targets/{name}.toml [{sname}]", found)
    _ints(load_facts("x64"), "x64.toml", found)
    _ints(load_facts("acpi"), "acpi.toml", found)
    _ints({name: code for code, name in bugcheck_names().items()}, "bugchecks.toml", found)
    _ints({p.define: p.p1 for p in bugcheck_parameters().values()}, "bugchecks.toml [[parameter]]", found)
    # The interface's numbers; not [defaults] (the model's choices) nor the bit positions, widths and offsets of
    # layouts and structures, which code writes as the names hv_interface.h gives them anyway.
    hv = load_hyperv_spec().raw
    for section in HYPERV_NUMBERS:
        _ints(hv[section], f"hyperv.toml [{section}]", found)
    return {v: where for v, where in found.items() if v >= SMALLEST_CHECKED}


def _defines(text: str) -> dict[str, int]:
    """``#define NAME <integer expression>`` of a C header, evaluated (literals, <<, |, parentheses only)."""
    out = {}
    for m in re.finditer(r"^#define\s+(\w+)\s+([^\n/]+?)\s*(?:/[*/].*)?$", text, flags=re.M):
        expr = re.sub(r"(?<=[0-9A-Fa-f])[uUlL]+\b", "", m.group(2))
        if re.fullmatch(r"[\s()0-9a-fA-FxX<|]+", expr):
            out[m.group(1)] = eval(expr, {"__builtins__": {}})  # digits and operators only, checked above
    return out


# ---- one body per role -------------------------------------------------------------------------------------------

def test_shared_roles_have_one_body_and_two_glue_files():
    roles = _role_templates()
    dual = {name: t for name, t in roles.items() if len(t) == 2 and len(set(t.values())) == 2}
    assert SHARED_ROLES <= set(dual), f"roles with a template per profile: {sorted(dual)}"
    for name, by_profile in sorted(dual.items()):
        parents = set()
        for template in by_profile.values():
            extends = list(_parse(template).find_all(nodes.Extends))
            assert len(extends) == 1, f"{template} (role {name}) does not extend a body"
            parents.add(extends[0].template.value)
        assert len(parents) == 1 and parents.pop().startswith(BODY_DIR), \
            f"role {name}: {by_profile} do not extend one body under {BODY_DIR}"


def _glue_files() -> list[str]:
    return sorted(f"variant/{p.relative_to(VARIANT).as_posix()}" for p in (VARIANT / "roles").rglob("*.j2")
                  if "body" not in p.parts and "{% extends" in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("template", _glue_files())
def test_glue_file_only_names_its_glue_and_fills_blocks(template):
    """A glue file is: extends a body, imports its HAL's glue names as g, fills blocks the body declares -- and
    nothing else (text outside blocks would be ignored by Jinja; a glue file has none)."""
    tree = _parse(template)
    extends = [n for n in tree.body if isinstance(n, nodes.Extends)]
    assert len(extends) == 1 and isinstance(extends[0].template, nodes.Const), template
    body = extends[0].template.value
    assert body.startswith(BODY_DIR), f"{template} extends {body}, not a body under {BODY_DIR}"
    declared = _blocks(_parse(body))
    glue = _glue_of(template)
    for node in tree.body:
        if isinstance(node, nodes.Extends):
            continue
        if isinstance(node, nodes.Import):
            assert isinstance(node.template, nodes.Const) and node.template.value == f"variant/glue/{glue}.j2" \
                and node.target == "g", f"{template}: imports {node.template!r} as {node.target}, " \
                                        f"expected variant/glue/{glue}.j2 as g"
        elif isinstance(node, nodes.Block):
            assert node.name in declared, f"{template}: block {node.name!r} is not a glue point of {body} " \
                                          f"({', '.join(sorted(declared)) or 'none'})"
        elif isinstance(node, nodes.Output):
            text = "".join(n.data for n in node.nodes if isinstance(n, nodes.TemplateData))
            assert not text.strip() and all(isinstance(n, nodes.TemplateData) for n in node.nodes), \
                f"{template}: text outside a block: {text.strip()[:60]!r}"
        else:
            raise AssertionError(f"{template}: {type(node).__name__} at line {node.lineno}; a glue file only "
                                 f"extends, imports its glue and fills blocks")


def _body_lines(body: str) -> list[str]:
    """The lines of a body that hold no template syntax: text every glue's render must carry unchanged."""
    env = _env()
    source = env.loader.get_source(env, body)[0]
    source = re.sub(r"\{#.*?#\}", "", source, flags=re.S)
    return [line for line in source.splitlines()
            if line.strip() and not any(tag in line for tag in ("{{", "{%", "%}", "}}"))]


@pytest.mark.parametrize("role", sorted(SHARED_ROLES))
def test_both_glues_render_the_whole_body(role):
    """Render the role through each profile's glue file; each render carries every template-free line of the body,
    in the body's order (so the glues can only differ where the body lets them)."""
    by_profile = _role_templates()[role]
    body = next(n.template.value for n in _parse(by_profile["hal_src"]).find_all(nodes.Extends))
    lines = _body_lines(body)
    assert len(lines) >= 3, f"{body}: too little shared text to check ({lines})"
    renders = {}
    for profile, template in by_profile.items():
        text = _render(template, profile, "reactos-amd64", role)
        at = 0
        for line in lines:
            found = text.find(line + "\n", at)
            assert found >= 0, f"{template} ({profile}) lost or moved this line of {body}: {line!r}"
            at = found + len(line)
        renders[profile] = text
    assert renders["hal_src"] != renders["reactos"], f"role {role}: both glues render the same text; no glue needed"


def test_pm_timer_read_is_one_body_for_both_glues():
    """hal_src replaces HalpReadPmTimer through the role; the ReactOS glue's hvtime.c defines it from the same body."""
    lines = _body_lines(f"{BODY_DIR}pm_timer_read.c.j2")
    hal_src = _render("variant/roles/pm_timer_read.c.j2", "hal_src", "reactos-amd64", "pm-timer-read")
    reactos = _render("variant/hyperv/hvtime.c.j2", "reactos", "reactos-amd64")
    for line in lines:
        assert line in hal_src and line in reactos, f"pm_timer_read body line missing: {line!r}"
    assert "ULONG64 HalpReadPmTimer(VOID)" in reactos


# ---- every number from the fact files -----------------------------------------------------------------------------

def _rendered_variant() -> dict[str, str]:
    """Every variant template rendered for both profiles and targets, keyed by what it is."""
    out = {}
    roles = _role_templates()
    for target in target_names():
        for profile in rules.profile_names():
            for name, by_profile in roles.items():
                if profile in by_profile:
                    out[f"{by_profile[profile]} ({profile}, {target})"] = _render(by_profile[profile], profile,
                                                                                   target, name)
            for tmpl, _where, _name in generate.NEW_FILES:
                out[f"variant/{tmpl} ({profile}, {target})"] = _render(f"variant/{tmpl}", profile, target)
    return out


def _rendered_defines() -> set[str]:
    """Names a variant template defines from an expression (``#define NAME {{ ... }}``): in a rendered file their
    value is a literal, rendered from the facts."""
    names = set(bugcheck_parameters())  # hvp.h.j2 defines these in a loop over the facts
    for path in VARIANT.rglob("*.j2"):
        names |= set(re.findall(r"^#define\s+(\w+)\s+\{\{", path.read_text(encoding="utf-8"), flags=re.M))
    return names


def test_no_bare_fact_numbers_in_templates_or_rendered_files():
    """A template states no number a fact file holds; a rendered file has one only where a template rendered it."""
    facts = _fact_numbers()
    assert {0x320, 9765, 156250, 0x5C, 0x40000022, 0xC10C4, 3579545} <= set(facts), "fact collection misses facts"
    rendered = _rendered_defines()
    bare = []
    for path in sorted(VARIANT.rglob("*.j2")):
        where = f"templates/{path.relative_to(REPO / 'templates').as_posix()}"
        bare += [f"{where}: {value:#x} ({facts[value]}) in `{line}`"
                 for value, line in _literals(path.read_text(encoding="utf-8")) if value in facts]
    for where, text in sorted(_rendered_variant().items()):
        for value, line in _literals(text):
            define = re.match(r"#define\s+(\w+)\s", line)
            if value in facts and not (define and define.group(1) in rendered):
                bare.append(f"{where}: {value:#x} ({facts[value]}) in `{line}`")
    assert not bare, "numbers stated by hand instead of rendered from the facts:\n" + "\n".join(bare)


def test_literal_scan_finds_what_it_must():
    """The scan itself: a bare literal in code is found, the same number in a comment or a string is not."""
    code = 'x = 0x320; /* 0x320 */ y = 9765UL; // 156250\nDbgPrint("0x5C");'
    assert [v for v, _ in _literals(code)] == [0x320, 9765]


def test_reactos_glue_renders_the_facts():
    """The ReactOS glue's constants are the facts (and only names upstream defines itself stay names)."""
    x64, acpi = load_facts("x64"), load_facts("acpi")
    for target in target_names():
        tgt = load_target(target)
        text = _render("variant/hyperv/hvp.h.j2", "reactos", target)
        want = {
            "CPUID_LEAF_FEATURES": x64["cpuid"]["leaf_features"], "CPUID1_EDX_TSC": x64["cpuid"]["leaf1_edx_tsc"],
            "PTE_PRESENT": x64["paging"]["pte_present"], "PTE_FRAME_MASK": x64["paging"]["pte_frame_mask"],
            "APIC_LVT_TIMER": x64["apic"]["registers"]["lvt_timer"],
            "APIC_TIMER_INITIAL_COUNT": x64["apic"]["registers"]["timer_initial_count"],
            "APIC_TIMER_CURRENT_COUNT": x64["apic"]["registers"]["timer_current_count"],
            "APIC_TIMER_DIVIDE": x64["apic"]["registers"]["timer_divide"],
            "APIC_TIMER_DIVIDE_BY_1": x64["apic"]["timer_divide"]["by_1"],
            "APIC_LVT_MASKED": x64["apic"]["lvt"]["masked"],
            "APIC_LVT_TIMER_PERIODIC": x64["apic"]["lvt"]["timer_periodic"],
            "ACPI_ADDRESS_SPACE_IO": acpi["gas_space"]["system_io"],
            "ACPI_FADT_TMR_VAL_EXT": acpi["fadt_flags"]["tmr_val_ext"],
            "ACPI_FADT_RESET_REG_SUP": acpi["fadt_flags"]["reset_reg_sup"],
            "ABI_TIME_INCREMENT_MIN": tgt.abi["time_increment_min"],
            "ABI_TIME_INCREMENT_MAX": tgt.abi["time_increment_max"],
            "HALP_BUGCHECK_HAL_INITIALIZATION_FAILED": 0x5C, "HALP_BUGCHECK_ACPI_BIOS_ERROR": 0xA5,
        }
        want.update({name: p.p1 for name, p in bugcheck_parameters().items()})
        if "clock_error_code" in tgt.structs["ktrap_frame"].constants:
            want["KTRAP_FRAME_CLOCK_ERROR_CODE"] = tgt.structs["ktrap_frame"].constants["clock_error_code"]
        assert _defines(text).items() >= want.items(), (target, sorted(set(want.items()) - set(_defines(text).items())))
        hal_src = _render("variant/hyperv/hvp.h.j2", "hal_src", target)
        assert "APIC_LVT_TIMER" not in _defines(hal_src), "hal_src brings its own APIC names (halhw.h)"


def test_tick_routine_follows_the_target():
    """The clock handler calls the kernel's tick routine with the arguments the target description lists."""
    for target in target_names():
        abi = load_target(target).abi
        for profile in rules.profile_names():
            text = _render(_role_templates()["clock-interrupt"][profile], profile, target, "clock-interrupt")
            call = re.search(rf"{abi['tick_routine']}\(([^)]*)\);", text)
            assert call and len(call.group(1).split(",")) == len(abi["tick_routine_args"]), (profile, target, text)


# ---- the facts agree with every other holder of them --------------------------------------------------------------

#: hal_src's own header names -> where specs/x64.toml or acpi.toml hold the value.
HAL_SRC_FACTS = {
    "halhw.h": {
        "APIC_ID": "x64.apic.registers.id", "APIC_VERSION": "x64.apic.registers.version",
        "APIC_TPR": "x64.apic.registers.tpr", "APIC_EOI": "x64.apic.registers.eoi",
        "APIC_SVR": "x64.apic.registers.svr", "APIC_ISR_BASE": "x64.apic.registers.isr",
        "APIC_ESR": "x64.apic.registers.esr", "APIC_ICR_LOW": "x64.apic.registers.icr_low",
        "APIC_ICR_HIGH": "x64.apic.registers.icr_high", "APIC_LVT_TIMER": "x64.apic.registers.lvt_timer",
        "APIC_LVT_THERMAL": "x64.apic.registers.lvt_thermal", "APIC_LVT_PERF": "x64.apic.registers.lvt_perf",
        "APIC_LVT_LINT0": "x64.apic.registers.lvt_lint0", "APIC_LVT_LINT1": "x64.apic.registers.lvt_lint1",
        "APIC_LVT_ERROR": "x64.apic.registers.lvt_error",
        "APIC_TIMER_INITIAL_COUNT": "x64.apic.registers.timer_initial_count",
        "APIC_TIMER_CURRENT_COUNT": "x64.apic.registers.timer_current_count",
        "APIC_TIMER_DIVIDE": "x64.apic.registers.timer_divide",
        "APIC_SVR_SOFTWARE_ENABLE": "x64.apic.svr.software_enable", "APIC_LVT_MASKED": "x64.apic.lvt.masked",
        "APIC_LVT_TIMER_PERIODIC": "x64.apic.lvt.timer_periodic", "APIC_TIMER_DIVIDE_BY_1": "x64.apic.timer_divide.by_1",
        "MSR_IA32_APIC_BASE": "x64.apic.msrs.apic_base", "CPUID_LEAF_FEATURES": "x64.cpuid.leaf_features",
        "CPUID1_EDX_TSC": "x64.cpuid.leaf1_edx_tsc", "PTE_PRESENT": "x64.paging.pte_present",
        "PTE_FRAME_MASK": "x64.paging.pte_frame_mask", "ACPI_PM_TIMER_FREQUENCY": "acpi.pm_timer.frequency_hz",
    },
    "acpi.h": {
        "ACPI_ADDRESS_SPACE_MEMORY": "acpi.gas_space.system_memory", "ACPI_ADDRESS_SPACE_IO": "acpi.gas_space.system_io",
        "ACPI_FADT_TMR_VAL_EXT": "acpi.fadt_flags.tmr_val_ext", "ACPI_FADT_RESET_REG_SUP": "acpi.fadt_flags.reset_reg_sup",
    },
}


def _fact(path: str) -> int:
    first, *rest = path.split(".")
    value = load_facts(first)
    for key in rest:
        value = value[key]
    return value


@pytest.mark.parametrize("header", sorted(HAL_SRC_FACTS))
def test_hal_src_headers_agree_with_the_facts(header):
    defined = _defines((REPO / "hal_src" / "include" / header).read_text(encoding="utf-8"))
    wrong = [f"{name} = {defined.get(name)!r}, facts say {_fact(path):#x} ({path})"
             for name, path in HAL_SRC_FACTS[header].items() if defined.get(name) != _fact(path)]
    assert not wrong, f"hal_src/include/{header} disagrees with specs/:\n" + "\n".join(wrong)


def test_bugcheck_parameters_agree_with_hal_src_and_mean_one_thing():
    """hal_src defines the parameters it shares with the generated code with the same values, and none of its other
    parameter values of the same bug check is one the generated code gives another meaning."""
    defined = _defines((REPO / "hal_src" / "include" / "halp.h").read_text(encoding="utf-8"))
    params = bugcheck_parameters()
    prefixes = {"HAL_INITIALIZATION_FAILED": "HALP_INIT_", "ACPI_BIOS_ERROR": "HALP_ACPI_"}
    for name, p in params.items():
        if name in defined:
            assert defined[name] == p.p1, f"hal_src/include/halp.h {name} = {defined[name]:#x}, specs say {p.p1:#x}"
        clash = [other for other, value in defined.items()
                 if other != name and other.startswith(prefixes[p.bugcheck]) and value == p.p1]
        assert not clash, f"{p.bugcheck} parameter {p.p1:#x} means {name} in specs/bugchecks.toml and {clash} in hal_src"


def test_models_agree_with_the_facts():
    """The local-APIC model and the ACPI table builder use the same register offsets and flag bits."""
    from gen2sim import acpi as model_acpi
    from gen2sim.devices import lapic

    regs = load_facts("x64")["apic"]["registers"]
    assert (lapic.REG_TPR, lapic.REG_EOI, lapic.LVT_TIMER, lapic.REG_TIMER_INITIAL, lapic.REG_TIMER_CURRENT,
            lapic.REG_TIMER_DIVIDE) == (regs["tpr"], regs["eoi"], regs["lvt_timer"], regs["timer_initial_count"],
                                        regs["timer_current_count"], regs["timer_divide"])
    assert lapic.LVT_MASKED == load_facts("x64")["apic"]["lvt"]["masked"]
    flags = load_facts("acpi")["fadt_flags"]
    assert 1 << model_acpi.FADT_FLAG_BITS["TMR_VAL_EXT"] == flags["tmr_val_ext"]
    assert 1 << model_acpi.FADT_FLAG_BITS["RESET_REG_SUP"] == flags["reset_reg_sup"]


# ---- bad input, and the render context ------------------------------------------------------------------------------

def test_fact_file_errors_name_file_and_key(tmp_path, monkeypatch):
    import specs

    monkeypatch.setattr(specs, "SPECS_DIR", tmp_path)
    (tmp_path / "x64.toml").write_text('[apic]\nsource = "SDM"\n[apic.registers]\nlvt_timer = "0x320"\n')
    with pytest.raises(SpecError, match=r"x64\.toml: \[apic\.registers\]\.lvt_timer should be an integer"):
        load_facts("x64")
    (tmp_path / "x64.toml").write_text("[apic]\nlvt_timer = 0x320\n")
    with pytest.raises(SpecError, match=r"x64\.toml: \[apic\] needs a source"):
        load_facts("x64")
    with pytest.raises(SpecError, match=r"acpi\.toml: cannot read"):
        load_facts("acpi")
    (tmp_path / "bugchecks.toml").write_text(
        '[[bugcheck]]\ncode = 0x5C\nname = "HAL_INITIALIZATION_FAILED"\n'
        '[[parameter]]\nbugcheck = "HAL_INITIALIZATION_FAILED"\np1 = 0x13\ndefine = "A"\nmeaning = "a"\n'
        '[[parameter]]\nbugcheck = "HAL_INITIALIZATION_FAILED"\np1 = 0x13\ndefine = "B"\nmeaning = "b"\n')
    with pytest.raises(SpecError, match=r"\[\[parameter\]\] #2: B = HAL_INITIALIZATION_FAILED 0x13 repeats A"):
        bugcheck_parameters()


def test_context_reports_a_broken_fact_file(tmp_path, monkeypatch):
    import specs

    monkeypatch.setattr(specs, "SPECS_DIR", tmp_path)
    monkeypatch.setattr(specs, "TARGETS_DIR", REPO / "specs" / "targets")
    with pytest.raises(generate.GenerateError, match="x64.toml"):
        generate.template_context(rules.load_profile("reactos"), ["apic-only"], "reactos-amd64")


@pytest.mark.parametrize("signature, params", [
    ("LARGE_INTEGER\nNTAPI\nKeQueryPerformanceCounter(\n    OUT PLARGE_INTEGER PerformanceFrequency OPTIONAL)",
     ["PerformanceFrequency"]),
    ("VOID f(_In_ ULONG A, _Out_writes_(n) PUCHAR B, struct _KTRAP_FRAME *TrapFrame, _Inout_opt_ PVOID C)",
     ["A", "B", "TrapFrame", "C"]),
    ("VOID NTAPI HalCalibratePerformanceCounter(IN volatile PLONG Count, IN ULONGLONG NewCount)",
     ["Count", "NewCount"]),
    ("VOID HalpInitializeClock(VOID)", []),
])
def test_parameter_names_skip_annotations(signature, params):
    """The names templates get as ``params``: ReactOS's IN/OUT/OPTIONAL and SAL annotations are not names."""
    data = (signature + "\n{\n}\n").encode()
    assert generate._signature(data, 0, len(data))[1] == params
