"""Event tracing and the errata manager (Etw, Em) as a HAL calls them.

No trace session runs while the model boots: a provider registers, learns that none of its events is enabled
and writes nothing anyone consumes (EtwWrite succeeds, as it does with no session listening).
"""

from __future__ import annotations

from . import pool
from .decl import declare, export

STATUS_SUCCESS = 0


@export("NTSTATUS EtwRegister(LPCGUID ProviderId, PETWENABLECALLBACK EnableCallback, PVOID CallbackContext, "
        "PREGHANDLE RegHandle)", irql="passive")
def EtwRegister(k, ProviderId, EnableCallback, CallbackContext, RegHandle):
    """Register a provider; the handle is a kernel address (no session will call its enable callback)."""
    handle = pool.get(k).allocate(0, 0x40, 0x20777445, k.caller_function)  # 'Etw '
    k.mem.vput(RegHandle, 8, handle)
    k.state.setdefault("etw_providers", []).append(k.mem.vread(ProviderId, 16).hex())
    return STATUS_SUCCESS


@export("BOOLEAN EtwEventEnabled(REGHANDLE RegHandle, PCEVENT_DESCRIPTOR EventDescriptor)")
def EtwEventEnabled(k, RegHandle, EventDescriptor):
    """FALSE: no trace session is enabled for any provider."""
    return 0


@export("NTSTATUS EtwWrite(REGHANDLE RegHandle, PCEVENT_DESCRIPTOR EventDescriptor, LPCGUID ActivityId, "
        "ULONG UserDataCount, PEVENT_DATA_DESCRIPTOR UserData)")
def EtwWrite(k, RegHandle, EventDescriptor, ActivityId, UserDataCount, UserData):
    """Write an event: succeeds with no session to deliver it to."""
    return STATUS_SUCCESS


_EM = "the errata manager (its rules and providers) is not modelled; its interface is undocumented"
declare("NTSTATUS EmClientQueryRuleState(LPCGUID RuleId, PULONG State)", _EM, module=__name__)
declare("NTSTATUS EmpProviderRegister(PVOID DriverObject, PVOID EntryRegistration, ULONG EntryCount, "
        "PVOID CallbackRegistration, ULONG CallbackCount, PVOID* ProviderHandle)", _EM, module=__name__)
