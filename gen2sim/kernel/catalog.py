"""What the model's kernel of a target offers: every declared export and variable, with prototype and status.

``load_all()`` imports the subsystem modules, whose declarations fill ``decl.EXPORTS`` and ``decl.VARIABLES``.
``listing(target)`` answers ``gen2hal kernel-imports``: the target's HAL import list (``[kernel.imports]
hal_imports``: the stock Windows 7 HAL's 200 names, the upstream ReactOS HAL's) and every other declared name the
target's kernel exports, each with its status: ``behaviour`` (modelled), ``fails`` (declared: calling it ends the
boot naming it) or ``undeclared`` (the model knows nothing of it: also ends the boot, with less to say).
"""

from __future__ import annotations

import importlib

from specs import TARGETS_DIR, read_name_list

from .decl import EXPORTS, VARIABLES

SUBSYSTEMS = ("ke", "kesync", "ex", "mm", "io", "ob", "rtl", "crt", "zw", "kd", "inbv", "po", "data", "etw", "whea",
              "halstub")
_LOADED = False


def load_all() -> None:
    """Import every subsystem module once (their declarations register themselves)."""
    global _LOADED
    if not _LOADED:
        for name in SUBSYSTEMS:
            importlib.import_module(f"{__package__}.{name}")
        _LOADED = True


def hal_imports(target) -> tuple[str, ...]:
    """The target's HAL import list, from ``[kernel.imports] hal_imports`` (empty when not given)."""
    from .layout import Layouts

    table = Layouts(target).kernel_tables.get("imports", {})
    rel = table.get("hal_imports")
    return read_name_list(TARGETS_DIR / rel) if rel else ()


def entry(target, name: str) -> dict:
    """One name's row: kind, module, prototype, status (and why it fails, the IRQL contract)."""
    if name in VARIABLES:
        v = VARIABLES[name]
        return {"name": name, "kind": "variable", "module": v.module, "prototype": v.prototype(),
                "status": "behaviour", "note": v.note}
    exp = EXPORTS.get(name)
    if exp is None:
        return {"name": name, "kind": "data" if name in target.data_imports else "function", "module": None,
                "prototype": None, "status": "undeclared"}
    row = {"name": name, "kind": "function", "module": exp.module, "prototype": exp.prototype(),
           "status": exp.status, "max_irql": exp.max_irql.upper() + "_LEVEL"}
    if exp.rule:
        row["rule"] = exp.rule
    if exp.why:
        row["why"] = exp.why
    return row


def listing(target) -> dict:
    """Every declared import of ``target``'s kernel and its HAL import list, with counts."""
    load_all()
    hal = hal_imports(target)
    offered = sorted(n for n in set(EXPORTS) | set(VARIABLES) if n in target.allowed_imports)
    names = sorted(set(offered) | set(hal))
    rows = [dict(entry(target, n), in_hal_imports=n in hal) for n in names]

    def counts(selected: list[dict]) -> dict:
        out = {"total": len(selected)}
        for status in ("behaviour", "fails", "undeclared"):
            out[status] = sum(1 for r in selected if r["status"] == status)
        return out

    return {"target": target.name, "hal_imports_list": len(hal), "imports": rows,
            "counts": {"declared": counts([r for r in rows if r["status"] != "undeclared"]),
                       "hal_imports": counts([r for r in rows if r["in_hal_imports"]])}}


def text(listing_: dict) -> str:
    """The listing as a table and its counts."""
    lines = [f"{'name':44} {'status':10} prototype"]
    for r in listing_["imports"]:
        mark = "*" if r["in_hal_imports"] else " "
        lines.append(f"{mark}{r['name']:43} {r['status']:10} {r['prototype'] or '-'}")
    d, h = listing_["counts"]["declared"], listing_["counts"]["hal_imports"]
    lines.append("")
    lines.append(f"{listing_['target']}: {d['total']} declared ({d['behaviour']} with behaviour, {d['fails']} fail "
                 f"when called); HAL import list (* above): {h['total']} names, {h['behaviour']} behaviour, "
                 f"{h['fails']} fails, {h['undeclared']} undeclared")
    return "\n".join(lines)
