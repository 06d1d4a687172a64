"""Hyper-V host profiles (specs/hosts/, gen2sim.hosts): the data, what a machine presents under each, the CPU
behaviours that follow CPUID (RDTSCP, x2APIC, TSC deadline), and the verdict matrix of our HALs under every profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from unicorn import x86_const as X

from gen2sim.cpu import RunStop
from gen2sim.errors import GuestFault, ModelError
from gen2sim.hosts import DEFAULT_HOST, host_names, load_host
from gen2sim.hvspec import load_hyperv_spec
from gen2sim.machine import Machine

REPO = Path(__file__).resolve().parents[2]
REAL_HOSTS = ("host-19041", "wsl2-22610")
HV_FEATURES, HV_RECOMMENDATIONS = 0x40000003, 0x40000004
EAX, EDX = 0, 3


def test_profiles_exist_with_sources():
    names = host_names()
    assert DEFAULT_HOST in names and set(REAL_HOSTS) <= set(names)
    for name in names:
        h = load_host(name)
        assert h.name == name and h.source and h.tsc_source and h.description
    assert len({load_host(n).tsc_hz for n in names}) == len(names)  # each profile its own TSC rate


@pytest.mark.parametrize("name", REAL_HOSTS)
def test_real_host_cpuid_is_the_public_boot_logs(name):
    # Issue 11: public Gen2 boot logs (host 19041, WSL2 on 22610) print privileges 0x2e7f (0x40000003 EAX),
    # recommendations 0xc2c (0x40000004 EAX), features 0xbed7b2 (0x40000003 EDX).
    m = Machine("gen2", host=name)
    assert m.cpu.cpuid(HV_FEATURES, 0)[EAX] == 0x2E7F
    assert m.cpu.cpuid(HV_FEATURES, 0)[EDX] == 0xBED7B2
    assert m.cpu.cpuid(HV_RECOMMENDATIONS, 0)[EAX] == 0xC2C
    assert m.cpu.cpuid(0x40000002, 0)[EAX] == int(name.rsplit("-", 1)[1])  # the host build
    # no AccessResetReg privilege (bit 7): the RESET MSR raises #GP as on those hosts
    with pytest.raises(GuestFault):
        m.hyperv.rdmsr(0x40000003)


def test_default_profile_is_the_models_own_set():
    m = Machine("gen2")
    assert m.host.name == DEFAULT_HOST
    assert load_host(DEFAULT_HOST).cpuid == {}  # no overrides: specs/hyperv.toml [defaults] as they are
    defaults = load_hyperv_spec().default_cpuid()
    for leaf in range(0x40000000, 0x40000007):
        assert m.cpu.cpuid(leaf, 0) == defaults[leaf], hex(leaf)
    assert m.cpu.cpuid(HV_FEATURES, 0)[EAX] != 0x2E7F  # not the real hosts' set


@pytest.mark.parametrize("name", [DEFAULT_HOST, *REAL_HOSTS])
def test_tsc_rate_follows_the_profile(name):
    m = Machine("gen2", host=name)
    hz = load_host(name).tsc_hz
    assert m.hyperv.rdmsr(0x40000022) == hz  # TSC_FREQUENCY
    assert m.hyperv.tsc_scale() == (10**7 << 64) // hz
    m.clock.advance(10**12)  # one second
    assert m.cpu.tsc() == hz


def _profile(tmp_path, text: str) -> Path:
    (tmp_path / "bad.toml").write_text(text)
    return tmp_path


@pytest.mark.parametrize("text, expected", [
    ('name = "bad"\ndescription = "d"\nsource = "s"\ntsc_source = "t"\n', "missing field 'tsc_hz'"),
    ('name = "bad"\ndescription = "d"\nsource = "s"\ntsc_hz = 5\ntsc_source = "t"\n', "plausible TSC rate"),
    ('name = "other"\ndescription = "d"\nsource = "s"\ntsc_hz = 2000000000\ntsc_source = "t"\n',
     "expected the file's name"),
    ('name = "bad"\ndescription = "d"\nsource = "s"\ntsc_hz = 2000000000\ntsc_source = "t"\n'
     '[cpuid.0x1]\necx = 1\n', "only Hyper-V leaves"),
    ('name = "bad"\ndescription = "d"\nsource = "s"\ntsc_hz = 2000000000\ntsc_source = "t"\n'
     '[cpuid.0x40000003]\nesi = 1\n', "[cpuid.0x40000003].esi"),
    ('name = "bad"\ndescription = "d"\nsource = "s"\ntsc_hz = 2000000000\ntsc_source = "t"\n'
     '[cpuid.0x40000003]\neax = 0x100000000\n', "32-bit unsigned"),
    ('name = "bad"\n[[', "cannot read host profile"),
])
def test_bad_profile_names_file_and_field(tmp_path, text, expected):
    with pytest.raises(ModelError) as info:
        load_host("bad", _profile(tmp_path, text))
    assert expected in str(info.value) and "bad.toml" in str(info.value)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ModelError, match="unknown host profile 'nope'; known: .*host-19041"):
        Machine("gen2", host="nope")


# -- CPU behaviours that follow CPUID -----------------------------------------------------------------------------
def _harness():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import test_cpu  # the CPU tests' harness: a machine and mini kernel running assembled code

    if not test_cpu.build.toolchain_present():
        pytest.skip("mingw-w64 not installed (the harness assembles code)")
    return test_cpu.harness


@pytest.mark.parametrize("name", [DEFAULT_HOST, "wsl2-22610"])
def test_rdtscp_is_intercepted_at_the_profiles_rate(tmp_path, name):
    harness = _harness()
    m, k, va = harness(tmp_path, """
        mov ecx, 0xC0000103
        mov eax, 5
        xor edx, edx
        wrmsr
        rdtscp
        shl rdx, 32
        or rax, rdx
        mov r10, rcx
        ret""")
    m.clock.tsc_hz = load_host(name).tsc_hz
    m.clock.advance(3 * 10**12)  # 3 virtual seconds before the call
    value = m.cpu.call(va)
    # virtual time, not the host's counter: 3 s at the profile's rate plus the few instructions before it
    assert 0 <= value - 3 * m.clock.tsc_hz < m.clock.tsc_hz // 1000
    assert value <= m.cpu.tsc()
    assert m.cpu.reg(X.UC_X86_REG_R10) == 5  # ECX = TSC_AUX


def test_x2apic_and_tsc_deadline_need_cpuid(tmp_path):
    m = Machine("gen2")
    leaf1_ecx = m.cpu.cpuid(1, 0)[2]
    assert not leaf1_ecx & (1 << 21) and not leaf1_ecx & (1 << 24)  # the model offers neither
    with pytest.raises(GuestFault, match="TSC-deadline"):
        m.cpu.wrmsr(0x6E0, 1000)
    with pytest.raises(GuestFault, match="x2APIC"):
        m.cpu.rdmsr(0x802)
    base = m.cpu.rdmsr(0x1B)
    with pytest.raises(GuestFault, match="EXTD"):
        m.cpu.wrmsr(0x1B, base | (1 << 10))
    assert not m.lapic.x2apic
    m.cpu.wrmsr(0x1B, base)  # the xAPIC base write itself is fine
    # from guest code it is a #GP fault verdict naming the missing CPUID bit
    harness = _harness()
    m, k, va = harness(tmp_path, "mov ecx, 0x6E0\n xor eax, eax\n xor edx, edx\n wrmsr\n ret")
    with pytest.raises(RunStop) as info:
        m.cpu.call(va)
    assert info.value.verdict["fault"]["kind"] == "#GP" and "CPUID.1:ECX[24]" in info.value.verdict["fault"]["detail"]


# -- the CLI -------------------------------------------------------------------------------------------------------
def test_cli_host_option(tmp_path):
    gen2hal = REPO / ".venv" / "bin" / "gen2hal"
    out = subprocess.run([str(gen2hal), "boot", "--help"], capture_output=True, text=True, check=True).stdout
    for name in host_names():
        assert name in out
    assert "--rtc-interrupts" in out
    dll = tmp_path / "hal.dll"
    dll.write_bytes(b"MZ")
    proc = subprocess.run([str(gen2hal), "boot", str(dll), "--target", "reactos-amd64", "--host", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown host profile 'nope'" in proc.stderr


# -- the verdict matrix: reference and variant, both targets, both platforms, every profile -------------------------
@pytest.fixture(scope="module")
def hals(reference_build):
    sys.path.insert(0, str(REPO / "tests"))
    from test_generate import variant_dlls as fixture

    variants = fixture.__wrapped__()
    return {(t, "reference"): reference_build[t] / "hal.dll" for t in reference_build} | \
        {(t, "gen2"): dll for t, dll in variants.items()}


@pytest.mark.parametrize("host", host_names())
def test_verdict_matrix_under_every_profile(hals, host, record_property):
    from gen2sim.scenario import boot

    verdicts = {}
    for (target, kind), dll in sorted(hals.items()):
        for platform in ("gen1", "gen2"):
            r = boot(str(dll), target, platform, host=host).result
            assert r["host"] == host and r["tsc_hz"] == load_host(host).tsc_hz
            verdicts[f"{target}/{kind}/{platform}"] = r["verdict"] + (
                f" {r['bugcheck']['code']:#x}" if r["verdict"] == "bugcheck" else "")
    record_property("verdicts", verdicts)
    print(host, verdicts)
    # The main job's verdicts hold under every host: the reference boots on gen1 only (Gen2: bug check 0x79,
    # MISMATCHED_HAL, as Windows 7), the variant on both.
    for (target, kind) in hals:
        if kind == "reference":
            assert verdicts[f"{target}/reference/gen1"] == "booted", verdicts
            assert verdicts[f"{target}/reference/gen2"] == "bugcheck 0x79", verdicts
        else:
            assert verdicts[f"{target}/gen2/gen1"] == "booted", verdicts
            assert verdicts[f"{target}/gen2/gen2"] == "booted", verdicts
