"""Boot display interface (Inbv): the kernel's boot-screen text routines.

The model has no boot video driver (``InbvIsBootDriverInstalled`` answers FALSE, ``InbvResetDisplay`` cannot reset
anything); the display is owned by Inbv until a caller acquires it.  Text given to ``InbvDisplayString`` goes
into the boot's ``display_output`` and, marked, into its debug output, passing through a filter the caller
installed (run in the guest).
"""

from __future__ import annotations

from .decl import export


def _inbv(k) -> dict:
    return k.subsystem("inbv", lambda: {"owned": True, "enabled": True, "filter": 0, "color": 15,
                                         "scroll": None, "fills": 0})


@export("VOID InbvAcquireDisplayOwnership(VOID)")
def InbvAcquireDisplayOwnership(k):
    """Inbv takes the display back (from a display driver) for its own text."""
    _inbv(k)["owned"] = True


@export("BOOLEAN InbvCheckDisplayOwnership(VOID)")
def InbvCheckDisplayOwnership(k):
    """Whether Inbv owns the display."""
    return 1 if _inbv(k)["owned"] else 0


@export("BOOLEAN InbvEnableDisplayString(BOOLEAN Enable)")
def InbvEnableDisplayString(k, Enable):
    """Allow or suppress InbvDisplayString; returns the previous setting."""
    old = _inbv(k)["enabled"]
    _inbv(k)["enabled"] = bool(Enable)
    return 1 if old else 0


@export("VOID InbvInstallDisplayStringFilter(PVOID DisplayFilter)")
def InbvInstallDisplayStringFilter(k, DisplayFilter):
    """Install a routine that may rewrite each string before it is shown."""
    _inbv(k)["filter"] = DisplayFilter


@export("BOOLEAN InbvIsBootDriverInstalled(VOID)")
def InbvIsBootDriverInstalled(k):
    """FALSE: the model has no boot video driver."""
    return 0


@export("BOOLEAN InbvResetDisplay(VOID)")
def InbvResetDisplay(k):
    """FALSE: with no boot video driver there is no display to reset."""
    return 0


@export("BOOLEAN InbvDisplayString(PCHAR String)", guest_calls=True)
def InbvDisplayString(k, String):
    """Show a string on the boot display (captured as display output); TRUE when Inbv owns the display."""
    state = _inbv(k)
    if not state["owned"]:
        return 0
    if state["enabled"]:
        if state["filter"]:
            slot = k.mem.alloc(0x1000)
            k.mem.vput(slot, 8, String)
            k.call_guest(state["filter"], [slot])
            String = k.mem.vu(slot, 8)
        text = k.mem.cstring(String, 4096)
        k.display_output.append(text)
        k.debug_output.append(f"[display] {text}")
    return 1


@export("VOID InbvSetScrollRegion(ULONG Left, ULONG Top, ULONG Right, ULONG Bottom)")
def InbvSetScrollRegion(k, Left, Top, Right, Bottom):
    """The text area of the boot display."""
    _inbv(k)["scroll"] = (Left, Top, Right, Bottom)


@export("ULONG InbvSetTextColor(ULONG Color)")
def InbvSetTextColor(k, Color):
    """The text colour (a VGA palette index); returns the previous one."""
    old = _inbv(k)["color"]
    _inbv(k)["color"] = Color
    return old


@export("VOID InbvSolidColorFill(ULONG Left, ULONG Top, ULONG Right, ULONG Bottom, ULONG Color)")
def InbvSolidColorFill(k, Left, Top, Right, Bottom, Color):
    """Fill a rectangle of the boot display (counted; the model has no pixels)."""
    _inbv(k)["fills"] += 1
