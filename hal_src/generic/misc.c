/*
 * misc.c -- processor bookkeeping and small services of a uniprocessor HAL.
 */
#include "halp.h"

/* Exported data: the I/O port of the serial port the kernel debugger uses, so serial drivers leave it alone.
 * This HAL owns no debug port (the kernel's debugger transport configures its own), so there is none to name. */
PUCHAR KdComPortInUse = NULL;

/* A store fence: every earlier store is globally visible before any later one. x64 stores to write-back memory
 * are already ordered, but write-combining buffers (and non-temporal stores) are drained only by a fence. */
VOID NTAPI KeFlushWriteBuffer(VOID)
{
    __asm__ __volatile__("sfence" ::: "memory");
}

/* Uniprocessor: the one processor the loader started is the only one there will be. */
BOOLEAN NTAPI HalStartNextProcessor(PLOADER_PARAMETER_BLOCK LoaderBlock, PKPROCESSOR_STATE ProcessorState)
{
    UNREFERENCED_PARAMETER(LoaderBlock);
    UNREFERENCED_PARAMETER(ProcessorState);
    return FALSE;
}

BOOLEAN NTAPI HalAllProcessorsStarted(VOID)
{
    /* Every processor we started (just the boot processor) is running. */
    return TRUE;
}

ULONG NTAPI HalQueryMaximumProcessorCount(VOID)
{
    return HALP_MAX_PROCESSORS;
}

/* One logical processor runs under this HAL, so no sibling threads share a core. */
BOOLEAN NTAPI HalIsHyperThreadingEnabled(VOID)
{
    return FALSE;
}

/* NT processor number -> the processor's APIC ID. Signature unverified for NT 6.1 (see README). */
NTSTATUS NTAPI HalGetProcessorIdByNtNumber(ULONG NtNumber, PULONG ProcessorId)
{
    if (ProcessorId == NULL)
        return STATUS_INVALID_PARAMETER;
    if (NtNumber >= HALP_MAX_PROCESSORS || !(HalpActiveProcessors & (1UL << NtNumber)))
        return STATUS_NOT_FOUND;
    *ProcessorId = HalpLocalApicId;
    return STATUS_SUCCESS;
}

/* Processor enumeration, dynamic (hot-added) processors: not provided by a uniprocessor HAL. */
NTSTATUS NTAPI HalEnumerateProcessors(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS NTAPI HalRegisterDynamicProcessor(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS NTAPI HalStartDynamicProcessor(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    return STATUS_NOT_SUPPORTED;
}

/* The resource usage report (I/O ranges and vectors the HAL claims) is not produced: the kernel's arbiters get
 * no HAL claims from us. A known gap, listed in the README; nothing is claimed falsely. */
VOID NTAPI HalReportResourceUsage(VOID)
{
}

/* No vector has a HAL-owned flat dispatch entry: 0 tells the caller so. */
ULONG FASTCALL HalSystemVectorDispatchEntry(ULONG Vector, PVOID *FlatDispatch, PVOID *NoConnection)
{
    UNREFERENCED_PARAMETER(Vector);
    UNREFERENCED_PARAMETER(FlatDispatch);
    UNREFERENCED_PARAMETER(NoConnection);
    return 0;
}

/* On x64 a vector's IRQL is its priority class, the upper four bits (the APIC's and CR8's rule). */
KIRQL NTAPI HalConvertDeviceIdtToIrql(ULONG Vector)
{
    return (KIRQL)((Vector >> 4) & 0x0F);
}

/* Hardware-errata callbacks: we apply no errata workarounds, so we take no callbacks. */
NTSTATUS NTAPI HalRegisterErrataCallbacks(PVOID Callbacks)
{
    UNREFERENCED_PARAMETER(Callbacks);
    return STATUS_NOT_SUPPORTED;
}

/* Hardware performance counters (PMU) are not arbitrated by this HAL. */
NTSTATUS NTAPI HalAllocateHardwareCounters(PGROUP_AFFINITY GroupAffinty, ULONG GroupCount,
                                           PPHYSICAL_COUNTER_RESOURCE_LIST ResourceList, PHANDLE CounterSetHandle)
{
    UNREFERENCED_PARAMETER(GroupAffinty);
    UNREFERENCED_PARAMETER(GroupCount);
    UNREFERENCED_PARAMETER(ResourceList);
    if (CounterSetHandle != NULL)
        *CounterSetHandle = NULL;
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS NTAPI HalFreeHardwareCounters(HANDLE CounterSetHandle)
{
    UNREFERENCED_PARAMETER(CounterSetHandle);
    return STATUS_NOT_SUPPORTED;
}

/* Caching requirements come from the loader's MemoryCachingRequirements list (NT 6.1 extension), which this HAL
 * does not read: we know of no requirement for any range. Signature as later NT kernels call it (README). */
NTSTATUS NTAPI HalGetMemoryCachingRequirements(PHYSICAL_ADDRESS BaseAddress, SIZE_T Length,
                                               MEMORY_CACHING_TYPE *CacheType)
{
    UNREFERENCED_PARAMETER(BaseAddress);
    UNREFERENCED_PARAMETER(Length);
    if (CacheType == NULL)
        return STATUS_INVALID_PARAMETER;
    *CacheType = MmNonCached;
    return STATUS_NOT_FOUND;
}

/* Resume from a sleep or hibernate state would need every interrupt controller and timer reprogrammed; this
 * HAL never enters such a state and cannot rebuild it, so carrying on would run with dead hardware. */
VOID NTAPI HalInitializeOnResume(PVOID Context)
{
    HALP_UNSUPPORTED(HALP_SERVICE_INITIALIZE_ON_RESUME, Context);
}

DECLSPEC_NORETURN VOID HalpBugCheckUnsupported(ULONG Service, ULONG_PTR Argument, PVOID Caller)
{
    DbgPrint("gen2hal: service %lu is not supported by this HAL (caller %p)\n", Service, Caller);
    KeBugCheckEx(HALP_BUGCHECK_HAL_INITIALIZATION_FAILED, HALP_INIT_UNSUPPORTED_SERVICE, Service, Argument,
                 (ULONG_PTR)Caller);
}
