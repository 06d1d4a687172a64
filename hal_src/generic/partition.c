/*
 * partition.c -- the partition-table exports.
 *
 * hal.dll has exported these since NT 3.1 although the work is the kernel's: each forwards to the kernel export of
 * the same name. The DLL exports them under the Io* names through hal_src/exports.toml (Io* = Halp*), because the
 * Io* names themselves are the kernel imports we call.
 */
#include "halp.h"

NTSTATUS FASTCALL HalpReadPartitionTable(PDEVICE_OBJECT DeviceObject, ULONG SectorSize,
                                         BOOLEAN ReturnRecognizedPartitions,
                                         struct _DRIVE_LAYOUT_INFORMATION **PartitionBuffer)
{
    return IoReadPartitionTable(DeviceObject, SectorSize, ReturnRecognizedPartitions, PartitionBuffer);
}

NTSTATUS FASTCALL HalpSetPartitionInformation(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, ULONG PartitionNumber,
                                              ULONG PartitionType)
{
    return IoSetPartitionInformation(DeviceObject, SectorSize, PartitionNumber, PartitionType);
}

NTSTATUS FASTCALL HalpWritePartitionTable(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, ULONG SectorsPerTrack,
                                          ULONG NumberOfHeads, struct _DRIVE_LAYOUT_INFORMATION *PartitionBuffer)
{
    return IoWritePartitionTable(DeviceObject, SectorSize, SectorsPerTrack, NumberOfHeads, PartitionBuffer);
}

#if defined(GEN2HAL_TARGET_REACTOS_AMD64)
/* Exported by the ReactOS (NT 5.2-style) HAL only; NT 6.x HALs dropped it. */
VOID FASTCALL HalpAssignDriveLetters(PLOADER_PARAMETER_BLOCK LoaderBlock, PSTRING NtDeviceName,
                                     PUCHAR NtSystemPath, PSTRING NtSystemPathString)
{
    IoAssignDriveLetters(LoaderBlock, NtDeviceName, NtSystemPath, NtSystemPathString);
}
#endif
