/*
 * x86bios.c -- real-mode BIOS calls (the video port driver's INT 10h path).
 *
 * NT HALs run legacy BIOS code in an x86 emulator over a copy of the first megabyte. This HAL has no emulator,
 * so every entry point fails in the way its interface allows; callers (videoprt) then do without the BIOS.
 */
#include "halp.h"

/* The emulator's set-up for phase 0/1: there is nothing to set up. */
VOID NTAPI HalInitializeBios(ULONG Phase, PLOADER_PARAMETER_BLOCK LoaderBlock)
{
    UNREFERENCED_PARAMETER(Phase);
    UNREFERENCED_PARAMETER(LoaderBlock);
}

BOOLEAN NTAPI x86BiosCall(ULONG InterruptNumber, PX86_BIOS_REGISTERS Registers)
{
    UNREFERENCED_PARAMETER(InterruptNumber);
    UNREFERENCED_PARAMETER(Registers);
    return FALSE;
}

NTSTATUS NTAPI x86BiosAllocateBuffer(PULONG Size, PUSHORT Segment, PUSHORT Offset)
{
    UNREFERENCED_PARAMETER(Size);
    UNREFERENCED_PARAMETER(Segment);
    UNREFERENCED_PARAMETER(Offset);
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS NTAPI x86BiosFreeBuffer(USHORT Segment, USHORT Offset)
{
    UNREFERENCED_PARAMETER(Segment);
    UNREFERENCED_PARAMETER(Offset);
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS NTAPI x86BiosReadMemory(USHORT Segment, USHORT Offset, PVOID Buffer, ULONG Size)
{
    UNREFERENCED_PARAMETER(Segment);
    UNREFERENCED_PARAMETER(Offset);
    UNREFERENCED_PARAMETER(Buffer);
    UNREFERENCED_PARAMETER(Size);
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS NTAPI x86BiosWriteMemory(USHORT Segment, USHORT Offset, PVOID Buffer, ULONG Size)
{
    UNREFERENCED_PARAMETER(Segment);
    UNREFERENCED_PARAMETER(Offset);
    UNREFERENCED_PARAMETER(Buffer);
    UNREFERENCED_PARAMETER(Size);
    return STATUS_NOT_SUPPORTED;
}

/* The NT 5.2-era x64 BIOS call (gone after 6.1): no BIOS calls here. Arguments unverified (README). */
BOOLEAN NTAPI HalCallBios(ULONG BiosCommand, PULONG Eax, PULONG Ebx, PULONG Ecx, PULONG Edx, PULONG Esi,
                          PULONG Edi, PULONG Ebp)
{
    UNREFERENCED_PARAMETER(BiosCommand);
    UNREFERENCED_PARAMETER(Eax);
    UNREFERENCED_PARAMETER(Ebx);
    UNREFERENCED_PARAMETER(Ecx);
    UNREFERENCED_PARAMETER(Edx);
    UNREFERENCED_PARAMETER(Esi);
    UNREFERENCED_PARAMETER(Edi);
    UNREFERENCED_PARAMETER(Ebp);
    return FALSE;
}
