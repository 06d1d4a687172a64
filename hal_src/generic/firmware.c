/*
 * firmware.c -- the NT 6.x firmware-environment services (UEFI variables).
 *
 * A legacy PC boots from a BIOS, which has no variable store. NT answers these calls on BIOS machines with
 * STATUS_NOT_IMPLEMENTED (what GetFirmwareEnvironmentVariable reports there), and so do we.
 */
#include "halp.h"

NTSTATUS NTAPI HalGetEnvironmentVariableEx(PWSTR VariableName, LPCGUID VendorGuid, PVOID Value,
                                           PULONG ValueLength, PULONG Attributes)
{
    UNREFERENCED_PARAMETER(VariableName);
    UNREFERENCED_PARAMETER(VendorGuid);
    UNREFERENCED_PARAMETER(Value);
    UNREFERENCED_PARAMETER(ValueLength);
    UNREFERENCED_PARAMETER(Attributes);
    return STATUS_NOT_IMPLEMENTED;
}

NTSTATUS NTAPI HalSetEnvironmentVariableEx(PWSTR VariableName, LPCGUID VendorGuid, PVOID Value, ULONG ValueLength,
                                           ULONG Attributes)
{
    UNREFERENCED_PARAMETER(VariableName);
    UNREFERENCED_PARAMETER(VendorGuid);
    UNREFERENCED_PARAMETER(Value);
    UNREFERENCED_PARAMETER(ValueLength);
    UNREFERENCED_PARAMETER(Attributes);
    return STATUS_NOT_IMPLEMENTED;
}

NTSTATUS NTAPI HalEnumerateEnvironmentVariablesEx(ULONG InformationClass, PVOID Buffer, PULONG BufferLength)
{
    UNREFERENCED_PARAMETER(InformationClass);
    UNREFERENCED_PARAMETER(Buffer);
    UNREFERENCED_PARAMETER(BufferLength);
    return STATUS_NOT_IMPLEMENTED;
}

NTSTATUS NTAPI HalQueryEnvironmentVariableInfoEx(ULONG Attributes, PULONGLONG MaximumVariableStorageSize,
                                                 PULONGLONG RemainingVariableStorageSize,
                                                 PULONGLONG MaximumVariableSize)
{
    UNREFERENCED_PARAMETER(Attributes);
    UNREFERENCED_PARAMETER(MaximumVariableStorageSize);
    UNREFERENCED_PARAMETER(RemainingVariableStorageSize);
    UNREFERENCED_PARAMETER(MaximumVariableSize);
    return STATUS_NOT_IMPLEMENTED;
}
