"""Render the project's descriptions (``specs/``) into C headers and linker inputs through ``templates/``.

Rendering is deterministic: sorted keys, no timestamps, fixed newlines.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from specs import Target

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def _c_value(value) -> str:
    """A description value as a C constant expression."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f"0x{value:X}ULL" if value > 0xFFFFFFFF else (f"0x{value:X}" if value > 255 else str(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return '"' + ",".join(str(v) for v in value) + '"'
    raise TypeError(f"cannot render {value!r} as a C constant")


def environment() -> jinja2.Environment:
    """The Jinja2 environment every gen2hal template is rendered in (strict: an unknown name is an error)."""
    if not TEMPLATES_DIR.is_dir():
        raise FileNotFoundError(f"templates folder not found: {TEMPLATES_DIR}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["c_value"] = _c_value
    env.filters["field_mask"] = lambda f: ((1 << f["width"]) - 1) << f["lsb"]
    return env


def render(template: str, **context) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)


def target_header(target: Target) -> str:
    """``target_abi.h``: the target's structure offsets, vectors, IRQLs and addresses for the C side."""
    return render("target_abi.h.j2", target=target)


def cached_target_include(target: Target | str) -> Path:
    """A folder whose ``include/target_abi.h`` is ``target``'s rendered header, cached by its content.

    For readers of a ``unit.toml`` outside a build (analyze, generate): SCons renders into its own build folder.
    The folder is ``$GEN2HAL_CACHE/target-headers/<sha256>`` (default ``~/.cache/gen2hal/...``); written once,
    atomically, and never changed afterwards.
    """
    import hashlib
    import os
    import tempfile

    if isinstance(target, str):
        from specs import load_target
        target = load_target(target)
    text = target_header(target).encode("utf-8")
    base = Path(os.environ["GEN2HAL_CACHE"]) if os.environ.get("GEN2HAL_CACHE") else \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gen2hal"
    folder = base / "target-headers" / hashlib.sha256(text).hexdigest()[:32]
    header = folder / "include" / "target_abi.h"
    if header.is_file() and header.read_bytes() == text:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    (tmp / "include").mkdir()
    (tmp / "include" / "target_abi.h").write_bytes(text)
    try:
        os.rename(tmp, folder)
    except OSError:                  # another process made it meanwhile: same content by construction
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def export_def(target: Target, aliases: dict[str, str] | None = None) -> str:
    """The ``.def`` file that makes the linker export exactly the target's names.

    ``aliases`` maps an exported name to the HAL function implementing it (from the HAL's ``exports.toml``),
    for exports that share their name with a kernel import the HAL forwards to.
    """
    # A HAL tree serves every target; an alias for a name this target does not export does not apply to it.
    aliases = {name: impl for name, impl in (aliases or {}).items() if name in target.exports}
    return render("hal_exports.def.j2", target=target, aliases=aliases)


def import_defs(target: Target) -> dict[str, str]:
    """One ``.def`` per module the target lets a HAL import from, keyed by module name."""
    modules: dict[str, list[str]] = {}
    for name in sorted(target.allowed_imports):
        modules.setdefault(target.module_of(name), []).append(name)
    return {
        module: render("module_imports.def.j2", target=target, module=module, names=names)
        for module, names in sorted(modules.items())
    }


def hyperv_header(spec_raw: dict) -> str:
    """``hv_interface.h``: the Hyper-V guest interface of ``specs/hyperv.toml`` for the C side."""
    groups = [
        ("PRIV", spec_raw["privilege_bits"]),
        ("FEATURE", spec_raw["feature_bits"]),
        ("RECOMMEND", spec_raw["recommendation_bits"]),
    ]
    return render(
        "hv_interface.h.j2",
        meta=spec_raw["meta"],
        present=spec_raw["hypervisor_present"],
        sig=spec_raw["signatures"],
        leaves=spec_raw["cpuid_leaves"],
        bit_groups=groups,
        msrs=spec_raw["msrs"],
        layouts=spec_raw["layouts"],
        structures=spec_raw["structures"],
        reference_tsc=spec_raw["reference_tsc"],
        synic=spec_raw["synic"],
        stimers=spec_raw["synthetic_timers"],
        message_types=spec_raw["message_types"],
        hv_status=spec_raw["hv_status"],
    )
