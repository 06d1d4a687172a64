/*
 * dma.c -- the pre-IoGetDmaAdapter DMA interface (adapter objects and map registers).
 *
 * This HAL implements no DMA adapters: neither the ISA 8237 slave-DMA controllers nor bus-master map registers.
 * HalGetAdapter therefore never returns an adapter, and the calls that can only follow a successful
 * HalGetAdapter are given one of two honest answers: a failure where the interface has one, or a bug check where
 * any return value would be a lie the caller acts on (a bus address to program a device with, a transfer count).
 */
#include "halp.h"

PADAPTER_OBJECT NTAPI HalGetAdapter(PDEVICE_DESCRIPTION DeviceDescription, PULONG NumberOfMapRegisters)
{
    UNREFERENCED_PARAMETER(DeviceDescription);
    if (NumberOfMapRegisters != NULL)
        *NumberOfMapRegisters = 0;
    return NULL;
}

NTSTATUS NTAPI HalAllocateAdapterChannel(PADAPTER_OBJECT AdapterObject, PWAIT_CONTEXT_BLOCK Wcb,
                                         ULONG NumberOfMapRegisters, PDRIVER_CONTROL ExecutionRoutine)
{
    UNREFERENCED_PARAMETER(AdapterObject);
    UNREFERENCED_PARAMETER(Wcb);
    UNREFERENCED_PARAMETER(NumberOfMapRegisters);
    UNREFERENCED_PARAMETER(ExecutionRoutine);
    return STATUS_NOT_SUPPORTED;
}

PVOID NTAPI HalAllocateCommonBuffer(PADAPTER_OBJECT AdapterObject, ULONG Length, PPHYSICAL_ADDRESS LogicalAddress,
                                    BOOLEAN CacheEnabled)
{
    UNREFERENCED_PARAMETER(AdapterObject);
    UNREFERENCED_PARAMETER(Length);
    UNREFERENCED_PARAMETER(CacheEnabled);
    if (LogicalAddress != NULL)
        LogicalAddress->QuadPart = 0;
    return NULL;
}

/* Nothing was allocated, so nothing can be flushed: FALSE. */
BOOLEAN NTAPI HalFlushCommonBuffer(PADAPTER_OBJECT AdapterObject, ULONG Length, PHYSICAL_ADDRESS LogicalAddress,
                                   PVOID VirtualAddress)
{
    UNREFERENCED_PARAMETER(AdapterObject);
    UNREFERENCED_PARAMETER(Length);
    UNREFERENCED_PARAMETER(LogicalAddress);
    UNREFERENCED_PARAMETER(VirtualAddress);
    return FALSE;
}

/* The crash-dump path asks for map registers of an adapter; there are none. */
PVOID NTAPI HalAllocateCrashDumpRegisters(PADAPTER_OBJECT AdapterObject, PULONG NumberOfMapRegisters)
{
    UNREFERENCED_PARAMETER(AdapterObject);
    if (NumberOfMapRegisters != NULL)
        *NumberOfMapRegisters = 0;
    return NULL;
}

BOOLEAN NTAPI IoFlushAdapterBuffers(PADAPTER_OBJECT AdapterObject, PMDL Mdl, PVOID MapRegisterBase,
                                    PVOID CurrentVa, ULONG Length, BOOLEAN WriteToDevice)
{
    UNREFERENCED_PARAMETER(AdapterObject);
    UNREFERENCED_PARAMETER(Mdl);
    UNREFERENCED_PARAMETER(MapRegisterBase);
    UNREFERENCED_PARAMETER(CurrentVa);
    UNREFERENCED_PARAMETER(Length);
    UNREFERENCED_PARAMETER(WriteToDevice);
    return FALSE;
}

/* A bus address for a transfer: any value returned would be programmed into a device. */
PHYSICAL_ADDRESS NTAPI IoMapTransfer(PADAPTER_OBJECT AdapterObject, PMDL Mdl, PVOID MapRegisterBase,
                                     PVOID CurrentVa, PULONG Length, BOOLEAN WriteToDevice)
{
    UNREFERENCED_PARAMETER(Mdl);
    UNREFERENCED_PARAMETER(MapRegisterBase);
    UNREFERENCED_PARAMETER(CurrentVa);
    UNREFERENCED_PARAMETER(Length);
    UNREFERENCED_PARAMETER(WriteToDevice);
    HALP_UNSUPPORTED(HALP_SERVICE_IO_MAP_TRANSFER, AdapterObject);
}

/* Releasing a channel or map registers we never granted: the adapter did not come from this HAL. */
VOID NTAPI IoFreeAdapterChannel(PADAPTER_OBJECT AdapterObject)
{
    HALP_UNSUPPORTED(HALP_SERVICE_IO_FREE_ADAPTER_CHANNEL, AdapterObject);
}

VOID NTAPI IoFreeMapRegisters(PADAPTER_OBJECT AdapterObject, PVOID MapRegisterBase, ULONG NumberOfMapRegisters)
{
    UNREFERENCED_PARAMETER(MapRegisterBase);
    UNREFERENCED_PARAMETER(NumberOfMapRegisters);
    HALP_UNSUPPORTED(HALP_SERVICE_IO_FREE_MAP_REGISTERS, AdapterObject);
}

VOID NTAPI HalFreeCommonBuffer(PADAPTER_OBJECT AdapterObject, ULONG Length, PHYSICAL_ADDRESS LogicalAddress,
                               PVOID VirtualAddress, BOOLEAN CacheEnabled)
{
    UNREFERENCED_PARAMETER(Length);
    UNREFERENCED_PARAMETER(LogicalAddress);
    UNREFERENCED_PARAMETER(CacheEnabled);
    UNREFERENCED_PARAMETER(AdapterObject);
    HALP_UNSUPPORTED(HALP_SERVICE_FREE_COMMON_BUFFER, VirtualAddress);
}

/* Bytes left in a slave-DMA transfer: 0 would claim the transfer finished. */
ULONG NTAPI HalReadDmaCounter(PADAPTER_OBJECT AdapterObject)
{
    HALP_UNSUPPORTED(HALP_SERVICE_READ_DMA_COUNTER, AdapterObject);
}
