"""Windows Hardware Error Architecture (Whea*, Pshed*): declared, not modelled.

The stock Windows 7 HAL registers its error sources and reports machine checks through these; the model raises no
hardware errors and does not reproduce the WHEA/PSHED interfaces (largely undocumented for 6.1), so a HAL that
calls them stops with a verdict naming the call.
"""

from __future__ import annotations

from .decl import declare

_WHY = "WHEA error sources and records are not modelled (no hardware errors in the model)"
for _proto in (
        "NTSTATUS WheaAttemptPhysicalPageOffline(PFN_NUMBER Page, BOOLEAN PoisonPage, BOOLEAN Synchronous, "
        "BOOLEAN Dummy)",
        "NTSTATUS WheaConfigureErrorSource(WHEA_ERROR_SOURCE_TYPE SourceType, PVOID Configuration)",
        "VOID WheaDeferredRecoveryService(PVOID Context)",
        "NTSTATUS WheaGetErrorSource(ULONG ErrorSourceId, PVOID* ErrorSource)",
        "NTSTATUS WheaInitializeDeferredRecoveryObject(PVOID Object, PVOID Context)",
        "NTSTATUS WheaInitializeRecordHeader(PVOID Header)",
        "NTSTATUS WheaReportHwError(PVOID ErrorPacket)",
        "BOOLEAN WheaRequestDeferredRecovery(PVOID Object)",
        "NTSTATUS PshedGetErrorSourceInfo(WHEA_ERROR_SOURCE_TYPE SourceType, PVOID ErrorSource)",
        "BOOLEAN PshedIsSystemWheaEnabled(VOID)",
        "NTSTATUS PshedRetrieveErrorInfo(PVOID ErrorSource, PVOID Packet, ULONG BufferSize, PVOID Buffer)"):
    declare(_proto, _WHY, module=__name__)
