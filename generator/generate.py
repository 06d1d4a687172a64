"""``gen2hal generate``: the Hyper-V-aware variant of a HAL tree.

Steps: analyze SRC (``generator.analyze``) → bind each role the features need to a function through the profile
and verify it against the analysis (``generator.rules``) → render the replacement of each bound function and the
new files (``templates/variant/``) → rewrite by source extents, back to front, in a copy of SRC → drop static
functions and variables that only the replaced code used (gcc's -Werror would refuse them) → write the variant
tree, ``CHANGES.md`` (each edit: what, why, original file:line), ``variant.patch`` (unified, ``a/``/``b/`` paths
that ``git apply`` takes in the original tree) and ``manifest.json`` (sha256 of every input, features, profile,
target, tool version).

Output folder layout (``--out DIR``)::

    DIR/src/            the complete variant tree (a copy of SRC with the edits and the new files)
    DIR/CHANGES.md
    DIR/variant.patch
    DIR/analysis.json   the analysis the bindings were verified against (``gen2hal analyze --json``)
    DIR/manifest.json

Guarantees: nothing is ever written inside SRC; everything is written into a temporary folder beside DIR and
renamed into place (an existing DIR is replaced only if it is an earlier ``gen2hal generate`` output); the same
inputs give the same bytes (sorted walks, no timestamps, no absolute paths in the outputs); any bad input or
refused binding stops before anything is written.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from specs import SpecError, load_target, target_names

from . import __version__, render, rules
from .overlay import replace_folder

TOOL = "gen2hal generate"
REPO = Path(__file__).resolve().parent.parent
VARIANT_TEMPLATES = REPO / "templates" / "variant"
NEW_FILES = (  # (template under templates/variant, where it goes: "include" or "new"), in output order
    ("hyperv/hvp.h.j2", "include", "hvp.h"),
    ("hyperv/hvdetect.c.j2", "new", "hvdetect.c"),
    ("hyperv/hvtime.c.j2", "new", "hvtime.c"),
    ("hyperv/hvclock.c.j2", "new", "hvclock.c"),
    ("hyperv/hvcrash.c.j2", "new", "hvcrash.c"),
)
#: Which new files each feature needs (the header and detection come with any Hyper-V feature).
FEATURE_FILES = {
    "synthetic-clock": {"hvp.h", "hvdetect.c", "hvtime.c", "hvclock.c"},
    "crash-msrs": {"hvp.h", "hvdetect.c", "hvcrash.c"},
}
_SKIP_DIRS = {".git", "__pycache__", ".svn"}
#: Parameter annotations that expand to nothing, so that a parameter's name is the last word left: ReactOS's and the
#: DDK's IN, OUT, OPTIONAL and SAL's _In_, _Out_opt_, _Out_writes_(n), ...
_PARAM_ANNOTATION = re.compile(r"\b(?:IN|OUT|INOUT|OPTIONAL)\b|\b_[A-Z]\w*_(?!\w)\s*(?:\([^()]*\))?")
_STATIC_VAR = re.compile(
    r"^static\s+(?!inline\b|__inline)[^();{}=\n]*?\b([A-Za-z_]\w*)\s*(?:\[[^\]\n]*\]\s*)*(?:=[^;\n]*)?;[^\n]*$",
    re.MULTILINE)


class GenerateError(Exception):
    """Generation refused (bad input or a refused binding); ``lines`` gives the details. Nothing was written."""

    def __init__(self, message: str, lines: list[str] | None = None):
        super().__init__(message)
        self.lines = lines or []


@dataclass
class Edit:
    """One rewrite of an original file: bytes [start, end) become ``text``."""

    file: str           # relative to SRC
    start: int
    end: int
    text: bytes
    line: int           # original line (1-based) the edit is reported at
    kind: str           # replace | insert | remove
    what: str
    why: str
    subject: str        # function or variable name
    role: str = ""
    features: tuple[str, ...] = ()


@dataclass
class Result:
    """What a generation produced (for the CLI's summary and the tests)."""

    out: Path
    edits: list[Edit]
    new_files: list[str]
    bindings: list[rules.Binding]
    skipped: list[rules.Binding]
    analysis_seconds: float
    total_seconds: float
    files: dict[str, bytes] = field(default_factory=dict)


# ---- small helpers ----------------------------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _walk(src: Path) -> list[str]:
    """Every file of the tree, POSIX paths relative to ``src``, sorted; VCS folders skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            out.append((Path(dirpath) / name).relative_to(src).as_posix())
    return sorted(out)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _line_start(data: bytes, offset: int) -> int:
    return data.rfind(b"\n", 0, offset) + 1


def _with_leading_comment(data: bytes, start: int) -> int:
    """Extend ``start`` (the first byte of a definition) back over the block comment right above it, if any."""
    line = _line_start(data, start)
    if data[line:start].strip():
        return start  # something else on the line before the definition: leave it
    before = data[:line].rstrip(b" \t\r\n")
    if not before.endswith(b"*/") or data[len(before):line].count(b"\n") > 1:
        return line
    open_at = before.rfind(b"/*")
    if open_at < 0:
        return line
    comment_line = _line_start(data, open_at)
    if data[comment_line:open_at].strip():
        return line  # the comment trails code; it is not this definition's
    return comment_line


def _removal_range(data: bytes, start: int, end: int) -> tuple[int, int]:
    """[start, end) widened to whole lines, plus one blank line after when a blank line precedes."""
    start = _with_leading_comment(data, start)
    nl = data.find(b"\n", end)
    end = len(data) if nl < 0 else nl + 1
    blank_before = start >= 2 and data[start - 2:start] == b"\n\n"
    if blank_before and data[end:end + 1] == b"\n":
        end += 1
    elif start == 0 and data[end:end + 1] == b"\n":
        end += 1
    return start, end


def _signature(data: bytes, start: int, end: int) -> tuple[str, list[str]]:
    """The text of a function definition up to its body, and its parameter names."""
    brace = data.find(b"{", start, end)
    sig = data[start:brace].decode("utf-8").rstrip()
    params: list[str] = []
    open_at = sig.find("(")
    close_at = sig.rfind(")")
    if 0 <= open_at < close_at:
        inner = sig[open_at + 1:close_at]
        depth, part, parts = 0, "", []
        for ch in inner:
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(part)
                part = ""
            else:
                part += ch
        parts.append(part)
        for p in parts:
            names = re.findall(r"[A-Za-z_]\w*", _PARAM_ANNOTATION.sub(" ", p))
            if names and p.strip() not in ("VOID", "void"):
                params.append(names[-1])
    return sig, params


def _apply(data: bytes, edits: list[Edit]) -> bytes:
    """``data`` with non-overlapping ``edits`` applied back to front."""
    out = data
    for e in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        out = out[:e.start] + e.text + out[e.end:]
    return out


# ---- planning ---------------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    edits: list[Edit]
    new_files: dict[str, bytes]
    bindings: list[rules.Binding]
    skipped: list[rules.Binding]
    templates: list[str]


def _unit(src: Path, target: str):
    """The build unit at ``src`` (``generator.unit.open_unit``); ``GenerateError`` when it cannot be read."""
    from .unit import UnitError, open_unit

    try:
        return open_unit(src, target)
    except UnitError as exc:
        raise GenerateError(str(exc)) from None


def _patch_prefix(unit) -> str:
    """Where the HAL folder lies in the tree the patch applies to ('' when the HAL folder is the tree)."""
    try:
        rel = unit.hal_root.resolve().relative_to(unit.tree.resolve()).as_posix()
    except ValueError:
        rel = ""
    return "" if rel in ("", ".") else rel + "/"


def _build_list_edits(profile: rules.Profile, inputs: dict[str, bytes], new_files: list[str]) -> list["Edit"]:
    """List the new C files in the tree's own build description, after the profile's anchor entry.

    The anchor must occur exactly once as a whole entry (a line holding only it, or it and the list's closing
    parenthesis) among the HAL folder's
    ``CMakeLists.txt``/``*.cmake`` files; the new lines copy its indentation. Anything else is refused: a tree
    whose build lists moved needs the profile updated, not a guess.
    """
    anchor = profile.build_list_anchor
    sources = [f for f in new_files if f.endswith(".c")]
    lists = [rel for rel in inputs if rel.endswith(".cmake") or rel.endswith("CMakeLists.txt")]
    if not anchor or not sources or not lists:
        return []   # no build lists in the HAL folder: its unit finds its files itself (unit.toml globs)
    hits = []
    for rel, data in sorted(inputs.items()):
        if not (rel.endswith(".cmake") or rel.endswith("CMakeLists.txt")):
            continue
        # The entry alone on its line, or the list's last entry with the closing parenthesis after it.
        pattern = rb"^([ \t]*)" + re.escape(anchor.encode()) + rb"(?=[ \t]*\)?[ \t]*\r?$)"
        for match in re.finditer(pattern, data, re.M):
            hits.append((rel, match))
    if len(hits) != 1:
        where = ", ".join(f"{rel}:{_line_of(inputs[rel], m.start())}" for rel, m in hits) or "none"
        raise GenerateError(f"profile {profile.name}: build_list_anchor {anchor!r} must be one entry of the HAL's "
                            f"CMake lists, found {len(hits)} ({where})")
    rel, match = hits[0]
    indent = match.group(1).decode()
    text = "".join(f"\n{indent}{name}" for name in sorted(sources)).encode()
    line = _line_of(inputs[rel], match.start())
    return [Edit(rel, match.end(), match.end(), text, line, "insert",
                 f"Lists the new files {', '.join(sorted(sources))} after {anchor}.",
                 "The tree's own build lists say what each DLL is made of; the patched tree must build the "
                 "Hyper-V files too.", "(build list)", "build-list")]


#: The fact files (under specs/) every number of the generated C comes from, besides the target description.
FACT_FILES = ("hyperv.toml", "x64.toml", "acpi.toml", "bugchecks.toml")


def template_context(profile: rules.Profile, features: list[str], target: str) -> dict:
    """The names every variant template is rendered with: the options (``features``, ``target``, ``profile``,
    ``glue``, ``hv``, ...) and ``facts``, where every number of the generated C comes from: ``facts.target`` (the
    target description: time increments, vectors, IRQLs, structure constants), ``facts.x64`` (specs/x64.toml: local
    APIC, CPUID, paging), ``facts.acpi`` (specs/acpi.toml), ``facts.bugcheck`` (name -> code, specs/bugchecks.toml),
    ``facts.parameter`` (gen2hal's own bug-check parameters by C name) and ``facts.hyperv`` (specs/hyperv.toml).
    ``GenerateError`` names a fact file that does not load."""
    from gen2sim.hvspec import load_hyperv_spec
    from specs import bugcheck_names, bugcheck_parameters, load_facts

    try:
        facts = {"target": load_target(target), "x64": load_facts("x64"), "acpi": load_facts("acpi"),
                 "bugcheck": {name: code for code, name in bugcheck_names().items()},
                 "parameter": bugcheck_parameters(), "hyperv": load_hyperv_spec().raw}
    except SpecError as exc:
        raise GenerateError(str(exc)) from None
    return {"features": features, "target": target, "profile": profile.name, "glue": profile.glue,
            "hv": bool(set(features) & set(FEATURE_FILES)), "tool_version": __version__,
            "guest_os": profile.guest_os_for(target), "facts": facts}


def _plan(src: Path, model, profile: rules.Profile, features: list[str], target: str, hal_root: str,
          inputs: dict[str, bytes]) -> _Plan:
    env = render.environment()
    bindings = rules.bind(model, profile, features, hal_root)
    context = template_context(profile, features, target)
    hv = context["hv"]
    edits: list[Edit] = []
    templates: list[str] = []
    datas: dict[str, bytes] = {}
    problems: list[str] = []
    active, skipped = [], []
    for b in bindings:
        (skipped if b.skipped else active).append(b)
    for b in active:
        role = b.role
        tmpl = f"variant/{role.template}"
        templates.append(tmpl)
        on = tuple(f for f in role.features if f in features)
        if role.action == "insert-before-guard-end":
            rel = hal_root + role.file
            path = src / rel
            if not path.is_file():
                problems.append(f"role {role.name}: {role.file} does not exist")
                continue
            data = datas.setdefault(rel, inputs[rel])
            at = data.rfind(b"#endif")
            if at < 0 or _line_start(data, at) != at:
                problems.append(f"role {role.name}: {role.file} has no include-guard #endif to insert before")
                continue
            text = env.get_template(tmpl).render(role=role, **context).encode("utf-8")
            edits.append(Edit(rel, at, at, text, _line_of(data, at), "insert", role.what, role.why,
                              role.file, role.name, on))
            continue
        fn = b.function
        data = datas.setdefault(fn.file, inputs[fn.file])
        signature, params = _signature(data, fn.start_offset, fn.end_offset)
        ctx = dict(context, role=role, fn=fn, signature=signature, params=params)
        text = env.get_template(tmpl).render(**ctx).encode("utf-8")
        if role.action == "insert-at-body-start":
            brace = data.find(b"{", fn.start_offset, fn.end_offset)
            at = data.find(b"\n", brace) + 1
            edits.append(Edit(fn.file, at, at, text + b"\n", fn.start_line, "insert", role.what, role.why,
                              fn.name, role.name, on))
        else:
            start = _with_leading_comment(data, fn.start_offset)
            edits.append(Edit(fn.file, start, fn.end_offset, text.rstrip(b"\n"), fn.start_line, "replace",
                              role.what, role.why, fn.name, role.name, on))
    if problems:
        raise rules.RuleError(f"{len(problems)} binding(s) refused", problems)

    edits += _dead_statics(model, datas, edits)

    new_files: dict[str, bytes] = {}
    if hv:
        wanted = set().union(*(FEATURE_FILES[f] for f in features if f in FEATURE_FILES))
        from gen2sim.hvspec import load_hyperv_spec

        include = hal_root + profile.include_dir.strip("/") + "/"
        new_files[include + "hv_interface.h"] = render.hyperv_header(load_hyperv_spec().raw).encode("utf-8")
        for tmpl, where, name in NEW_FILES:
            if name not in wanted:
                continue
            folder = include if where == "include" else hal_root + profile.new_dir.strip("/") + "/"
            templates.append(f"variant/{tmpl}")
            new_files[folder + name] = env.get_template(f"variant/{tmpl}").render(**context).encode("utf-8")
        templates.append("hv_interface.h.j2")
    return _Plan(edits, new_files, active, skipped, sorted(set(templates)))


def _dead_statics(model, datas: dict[str, bytes], edits: list[Edit]) -> list[Edit]:
    """Removals of static functions and file-scope static variables that nothing uses once ``edits`` apply."""
    removals: list[Edit] = []
    for rel in sorted(datas):
        data = datas[rel]
        mine = [e for e in edits if e.file == rel]
        candidates: list[tuple[str, int, int, int, str]] = []  # name, start, end, line, kind
        for fn in model.functions.values():
            if fn.file == rel and fn.static:
                name = fn.name.split(":")[-1]
                candidates.append((name, fn.start_offset, fn.end_offset, fn.start_line, "function"))
        text = data.decode("utf-8", errors="replace")
        for m in _STATIC_VAR.finditer(text):
            start = len(text[:m.start()].encode("utf-8"))
            end = len(text[:m.end()].encode("utf-8"))
            candidates.append((m.group(1), start, end, _line_of(data, start), "variable"))
        removed: list[Edit] = []
        changed = True
        while changed:
            changed = False
            current = mine + removed
            for name, start, end, line, kind in candidates:
                if any(e.start <= start and end <= e.end and e.kind != "insert" for e in current):
                    continue  # already replaced or removed
                lo, hi = _removal_range(data, start, end)
                if any(not (hi <= e.start or e.end <= lo) for e in current if e.kind != "insert"):
                    continue  # overlaps an edit: leave it
                pattern = re.compile(rb"\b" + re.escape(name.encode()) + rb"\b")
                rest = _apply(data, current)
                uses = len(pattern.findall(rest)) - len(pattern.findall(data[start:end]))
                if uses > 0:
                    continue
                users = sorted({e.subject for e in mine if e.kind == "replace"})
                removed.append(Edit(rel, lo, hi, b"", line, "remove",
                                    f"Removed static {kind} {name}: only the replaced "
                                    f"{', '.join(users)} used it.",
                                    "Unused static code is an error under the HAL's -Wall -Werror.", name))
                changed = True
                break
        removals += removed
    return removals


# ---- output -----------------------------------------------------------------------------------------------------

def _changes_md(src_name: str, profile: rules.Profile, features: list[str], target: str, plan: _Plan,
                new_files: list[str], patch_prefix: str) -> str:
    lines = [f"# Changes: Hyper-V Generation 2 variant of `{src_name}`", "",
             f"Generated by {TOOL} {__version__}; profile `{profile.name}`, target `{target}`, features: "
             + ", ".join(f"`{f}`" for f in features) + ".", "",
             "Each entry: what changed, why, and where it was in the original tree (file:line). The variant tree is "
             "a copy of the original with exactly these edits and the new files listed at the end; "
             "`variant.patch` is the same change as a unified diff"
             + (f" (paths under `{patch_prefix}`)" if patch_prefix else "") + ".", ""]
    lines += ["## Features", ""]
    for f in features:
        lines.append(f"- `{f}`: {rules.FEATURES[f]}")
    lines += ["", "## Role bindings (verified against the analysis)", ""]
    for b in plan.bindings:
        if b.function is None:
            lines.append(f"- `{b.role.name}` → `{b.role.file}`")
        else:
            ev = "; ".join(b.evidence) if b.evidence else "function present"
            lines.append(f"- `{b.role.name}` → `{b.function.name}` ({b.function.file}:{b.function.start_line}); "
                         f"evidence: {ev}")
    for b in plan.skipped:
        lines.append(f"- `{b.role.name}` not applied: {b.skipped} (optional in this profile)")
    lines += ["", "## Edits", ""]
    for e in sorted(plan.edits, key=lambda e: (e.file, e.start, e.kind)):
        title = {"replace": "Replaced", "insert": "Inserted into", "remove": "Removed"}[e.kind]
        role = f" — role `{e.role}` ({', '.join(e.features)})" if e.role else ""
        lines.append(f"### {e.file}:{e.line} {title} `{e.subject}`{role}")
        lines.append("")
        lines.append(f"- What: {e.what}")
        lines.append(f"- Why: {e.why}")
        lines.append(f"- Original location: `{e.file}:{e.line}`")
        lines.append("")
    lines += ["## New files", ""]
    for path in new_files:
        lines.append(f"- `{path}`" + (" (rendered from specs/hyperv.toml: the Hyper-V interface for C)"
                                      if path.endswith("hv_interface.h") else ""))
    lines.append("")
    return "\n".join(lines)


def _diff(rel: str, old: bytes | None, new: bytes) -> str:
    """A git-style unified diff of one file (``old`` None: a new file)."""
    a = [] if old is None else old.decode("utf-8").splitlines(keepends=True)
    b = new.decode("utf-8").splitlines(keepends=True)
    for seq in (a, b):
        if seq and not seq[-1].endswith("\n"):
            seq[-1] += "\n\\ No newline at end of file\n"
    body = list(difflib.unified_diff(a, b, "/dev/null" if old is None else f"a/{rel}", f"b/{rel}", n=3))
    if not body:
        return ""
    head = [f"diff --git a/{rel} b/{rel}\n"]
    if old is None:
        head.append("new file mode 100644\n")
    return "".join(head + body)


def _tool_inputs(prof: rules.Profile, target: str) -> dict[str, str]:
    """sha256 of everything of the tool a generation depends on: the profile, every variant template, the
    target description and the fact files (``FACT_FILES``), the generator's code."""
    paths = [prof.path, REPO / "templates" / "hv_interface.h.j2", REPO / "specs" / "targets" / f"{target}.toml"]
    paths += [REPO / "specs" / name for name in FACT_FILES]
    paths += sorted(p for p in VARIANT_TEMPLATES.rglob("*") if p.is_file())
    paths += [REPO / "generator" / n for n in ("generate.py", "rules.py", "render.py", "analyze.py",
                                               "touchpoints.py", "clang_front.py")]
    return {p.relative_to(REPO).as_posix(): _sha256(p.read_bytes()) for p in sorted(paths)}


def up_to_date(src: str | Path, out: str | Path, features: str | None = None, profile: str = "hal_src",
               target: str = "reactos-amd64", unit=None) -> bool:
    """Whether ``out`` holds a generation of exactly these inputs (same SRC bytes, tool files, options), so the
    build can skip the analysis. Any doubt (no manifest, unknown option) answers False. ``unit``: the build
    unit at ``src`` when the caller has read it already."""
    src, out = Path(src), Path(out)
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        prof = rules.load_profile(profile)
        wanted = rules.parse_features(features)
    except (OSError, ValueError, rules.RuleError):
        return False
    if (manifest.get("tool"), manifest.get("tool_version"), manifest.get("profile"), manifest.get("target"),
            manifest.get("features")) != (TOOL, __version__, profile, target, wanted):
        return False
    try:
        hal_dir = (unit or _unit(src, target)).hal_root
    except GenerateError:
        return False
    current = {rel: _sha256((hal_dir / rel).read_bytes()) for rel in _walk(hal_dir)}
    return manifest.get("inputs") == current and manifest.get("tool_inputs") == _tool_inputs(prof, target)


def _check_inputs(src: Path, out: Path, features_text: str | None, profile_name: str, target: str) \
        -> tuple[list[str], rules.Profile]:
    if not src.exists():
        raise GenerateError(f"{src}: no such directory")
    if not src.is_dir():
        raise GenerateError(f"{src}: not a directory (SRC must be a HAL source tree)")
    features = rules.parse_features(features_text)
    profile = rules.load_profile(profile_name)
    if target not in target_names():
        raise GenerateError(f"unknown target {target!r}; known targets: {', '.join(target_names())}")
    src_r, out_r = src.resolve(), out.resolve()
    if out_r == src_r or src_r in out_r.parents:
        raise GenerateError(f"--out {out} lies inside SRC {src}: the generator never writes into its input")
    if out_r in src_r.parents:
        raise GenerateError(f"--out {out} contains SRC {src}: replacing it would destroy the input")
    if out.exists():
        manifest = out / "manifest.json"
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8")).get("tool")
        except (OSError, ValueError, AttributeError):
            previous = None
        if previous != TOOL:
            raise GenerateError(f"--out {out} exists and is not an earlier `{TOOL}` output; refusing to replace it")
    return features, profile


def generate(src: str | Path, out: str | Path, features: str | None = None, profile: str = "hal_src",
             target: str = "reactos-amd64", unit=None) -> Result:
    """Generate the variant of ``src`` into ``out`` (layout in the module docstring).

    ``features`` is the comma-separated ``--features`` value (None: all); ``unit`` the build unit at ``src``
    when the caller has read it already. Raises ``GenerateError`` (and, for
    analysis or binding problems, ``AnalyzeError``/``RuleError``, which the CLI reports alike) before writing
    anything.
    """
    from . import analyze  # libclang only when generating

    started = time.perf_counter()
    src, out = Path(src), Path(out)
    try:
        feature_list, prof = _check_inputs(src, out, features, profile, target)
    except rules.RuleError as exc:
        raise GenerateError(str(exc), exc.lines) from None
    try:
        load_target(target)
    except SpecError as exc:
        raise GenerateError(str(exc)) from None
    unit = unit or _unit(src, target)
    hal_dir = unit.hal_root
    patch_prefix = _patch_prefix(unit)
    # Snapshot the HAL folder before the analysis; the extents are only valid for exactly these bytes.
    inputs = {rel: (hal_dir / rel).read_bytes() for rel in _walk(hal_dir)}
    try:
        model = analyze.analyze(unit, target)
    except analyze.AnalyzeError as exc:
        raise GenerateError(f"analysis failed: {exc}", exc.lines) from None
    changed = sorted(rel for rel in _walk(hal_dir) if inputs.get(rel) != (hal_dir / rel).read_bytes())
    if changed or set(_walk(hal_dir)) != set(inputs):
        raise GenerateError("SRC changed while it was being analyzed; run again", changed)
    try:
        plan = _plan(hal_dir, model, prof, feature_list, target, "", inputs)
    except rules.RuleError as exc:
        raise GenerateError(str(exc), exc.lines) from None
    plan.edits += _build_list_edits(prof, inputs, sorted(plan.new_files))

    # The variant tree in memory: every input file, the edited ones rewritten, the new ones added.
    files = dict(inputs)
    by_file: dict[str, list[Edit]] = {}
    for e in plan.edits:
        by_file.setdefault(e.file, []).append(e)
    for rel, edits in by_file.items():
        files[rel] = _apply(inputs[rel], edits)
    clash = sorted(set(plan.new_files) & set(inputs))
    if clash:
        raise GenerateError("new files would overwrite files of SRC", [f"{c} exists in SRC" for c in clash])
    files.update(plan.new_files)

    patch = "".join(_diff(patch_prefix + rel, inputs.get(rel), files[rel])
                    for rel in sorted(set(by_file) | set(plan.new_files)))
    changes = _changes_md(hal_dir.resolve().name, prof, feature_list, target, plan, sorted(plan.new_files),
                          patch_prefix)
    tool_inputs = _tool_inputs(prof, target)
    manifest = {
        "tool": TOOL,
        "tool_version": __version__,
        "profile": prof.name,
        "profile_checked_revision": prof.checked_revision,
        "target": target,
        "features": feature_list,
        "unit": unit.name,
        "patch_prefix": patch_prefix,
        "inputs": {rel: _sha256(data) for rel, data in sorted(inputs.items())},
        "tool_inputs": dict(sorted(tool_inputs.items())),
        "changed_files": sorted(by_file),
        "new_files": sorted(plan.new_files),
        "roles": {b.role.name: (b.function.name if b.function is not None else b.role.file)
                  for b in plan.bindings},
        "skipped_roles": {b.role.name: b.skipped for b in plan.skipped},
        "outputs": {"CHANGES.md": _sha256(changes.encode()), "variant.patch": _sha256(patch.encode())},
    }
    # The analysis the bindings were verified against travels with the variant (the report shows its touch points).
    analysis_json = json.dumps(model.to_json(), indent=2, sort_keys=True) + "\n"
    manifest["outputs"]["analysis.json"] = _sha256(analysis_json.encode())

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for rel, data in sorted(files.items()):
            path = tmp / "src" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (tmp / "CHANGES.md").write_bytes(changes.encode("utf-8"))
        (tmp / "variant.patch").write_bytes(patch.encode("utf-8"))
        (tmp / "analysis.json").write_bytes(analysis_json.encode("utf-8"))
        (tmp / "manifest.json").write_bytes((json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        os.chmod(tmp, 0o755)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Result(out, plan.edits, sorted(plan.new_files), plan.bindings, plan.skipped, model.seconds,
                  time.perf_counter() - started, files)


def summary(result: Result) -> str:
    """The CLI's short report of a generation."""
    changed = sorted({e.file for e in result.edits})
    kinds = {k: sum(1 for e in result.edits if e.kind == k) for k in ("replace", "insert", "remove")}
    lines = [f"gen2hal generate: {len(result.bindings)} roles bound, {kinds['replace']} functions replaced, "
             f"{kinds['insert']} insertions, {kinds['remove']} dead statics removed in {len(changed)} files; "
             f"{len(result.new_files)} new files",
             f"  output: {result.out}/ (src/, CHANGES.md, variant.patch, analysis.json, manifest.json)",
             f"  analysis {result.analysis_seconds:.2f} s, total {result.total_seconds:.2f} s"]
    for b in result.skipped:
        lines.append(f"  not applied: role {b.role.name}: {b.skipped}")
    return "\n".join(lines)
