/*
 * apic.c -- the local APIC and the IOAPICs: initialisation, interrupt routing, EOI, IPIs and software
 * interrupts, and the HAL's own IDT gates.
 *
 * The local APIC is used in xAPIC mode through the page the loader maps at ADDR_APIC_BASE_VA. IOAPIC inputs are
 * delivered in fixed mode to this (the only) processor by physical APIC ID. IRQL is CR8, which is the local
 * APIC's task-priority register; the kernel owns it, so we only raise it around our own handlers.
 */
#include "halp.h"

/* This processor's local APIC ID (bits 31:24 of the ID register). */
ULONG HalpLocalApicId;

/* Which global system interrupt feeds each vector we routed, with its trigger and polarity. */
typedef struct _HALP_VECTOR_ROUTE
{
    ULONG Gsi;                  /* HALP_NO_GSI: the vector is not routed from an IOAPIC */
    BOOLEAN LevelSensitive;
    BOOLEAN ActiveLow;
} HALP_VECTOR_ROUTE;

static HALP_VECTOR_ROUTE HalpVectorRoute[256];
static BOOLEAN HalpVectorRoutesReady;

static ULONG HalpApicErrorCount;

/* The C handler of each vector that has an entry stub in apictrap.S. */
static PHALP_INTERRUPT_HANDLER HalpInterruptHandler[256];

/* ---- IDT ------------------------------------------------------------------------------------------------------ */

/* Write a 64-bit interrupt gate (type 0xE, present, DPL 0, no IST) for Vector into the kernel's IDT.
 * NB: this suits a kernel that lets the HAL own raw vectors (the mini kernels, ReactOS). The Windows 7 kernel
 * expects HAL vectors to be connected as KINTERRUPT objects (KeInitializeInterrupt); see README "known gaps". */
VOID HalpSetIdtEntry(UCHAR Vector, PVOID Handler)
{
    volatile ULONG64 *Gate = (volatile ULONG64 *)(HalpReadPcrUlong64(KPCR_IdtBase) + (ULONG64)Vector * 16);
    ULONG64 Offset = (ULONG64)(ULONG_PTR)Handler;

    Gate[1] = Offset >> 32;
    Gate[0] = (Offset & 0xFFFF) | ((ULONG64)GDT_R0_CODE << 16) | (0x8EULL << 40) | ((Offset >> 16 & 0xFFFF) << 48);
}

/* The entry stub apictrap.S provides for a vector, or NULL. */
static PVOID HalpTrapStub(UCHAR Vector)
{
    switch (Vector)
    {
    case VECTOR_CLOCK:      return (PVOID)HalpClockInterrupt;
    case VECTOR_PROFILE:    return (PVOID)HalpProfileInterrupt;
    case VECTOR_APIC_ERROR: return (PVOID)HalpApicErrorInterrupt;
    default:                return NULL;
    }
}

/* Make Handler the code that runs for Vector: record it, then point the vector's IDT gate at its stub. */
BOOLEAN HalpConnectInterrupt(UCHAR Vector, PHALP_INTERRUPT_HANDLER Handler)
{
    PVOID Stub = HalpTrapStub(Vector);

    if (Stub == NULL)
        return FALSE;
    HalpInterruptHandler[Vector] = Handler;
    HalpSetIdtEntry(Vector, Stub);
    return TRUE;
}

/* Called by every stub. A vector with no handler (connected, then cleared) is acknowledged and dropped. */
VOID HalpDispatchInterrupt(PKTRAP_FRAME TrapFrame, ULONG Vector)
{
    PHALP_INTERRUPT_HANDLER Handler = HalpInterruptHandler[Vector & 0xFF];

    if (Handler != NULL)
        Handler(TrapFrame);
    else
        HalpSendEOI();
}

/* ---- Local APIC ----------------------------------------------------------------------------------------------- */

VOID HalpSendEOI(VOID)
{
    ApicWrite(APIC_EOI, 0);
}

/* Per-processor set-up, run from HalInitializeProcessor (before the MADT has been read). */
VOID HalpInitializeLocalApic(ULONG ProcessorNumber)
{
    ULONG Regs[4], MaxLvt;
    ULONG64 ApicBase;

    UNREFERENCED_PARAMETER(ProcessorNumber);

    /* The architectural APIC-base MSR exists only on processors that report an APIC. */
    HalpCpuid(CPUID_LEAF_FEATURES, 0, Regs);
    if (!(Regs[3] & CPUID1_EDX_APIC))
        KeBugCheckEx(HALP_BUGCHECK_HAL_INITIALIZATION_FAILED, HALP_INIT_NO_LOCAL_APIC, Regs[3], 0, 0);
    ApicBase = HalpReadMsr(MSR_IA32_APIC_BASE);
    if (!(ApicBase & APIC_BASE_GLOBAL_ENABLE))
        HalpWriteMsr(MSR_IA32_APIC_BASE, ApicBase | APIC_BASE_GLOBAL_ENABLE);

    HalpLocalApicId = ApicRead(APIC_ID) >> APIC_ID_SHIFT;
    MaxLvt = APIC_VERSION_MAX_LVT(ApicRead(APIC_VERSION));

    /* Spurious interrupts (an interrupt withdrawn before it was acknowledged) need a gate that just returns. */
    HalpSetIdtEntry(VECTOR_APIC_SPURIOUS, (PVOID)HalpApicSpuriousService);
    HalpConnectInterrupt(VECTOR_APIC_ERROR, HalpApicErrorHandler);
    ApicWrite(APIC_SVR, VECTOR_APIC_SPURIOUS | APIC_SVR_SOFTWARE_ENABLE);

    /* Every local source masked until someone asks for it. The thermal (index 5) and performance (index 4)
     * entries exist only when the version register says so. */
    ApicWrite(APIC_LVT_TIMER, APIC_LVT_MASKED | VECTOR_PROFILE);
    if (MaxLvt >= 4)
        ApicWrite(APIC_LVT_PERF, APIC_LVT_MASKED | VECTOR_PERF);
    if (MaxLvt >= 5)
        ApicWrite(APIC_LVT_THERMAL, APIC_LVT_MASKED);

    /* LINT0 carries the 8259's output (ExtINT) in virtual-wire mode: masked, the 8259 is not our controller.
     * LINT1 is the PC's NMI line by convention; HalpConfigureLocalApicNmi refines it from the MADT. */
    ApicWrite(APIC_LVT_LINT0, APIC_LVT_MASKED | APIC_DELIVERY_EXTINT);
    ApicWrite(APIC_LVT_LINT1, APIC_DELIVERY_NMI);

    /* Errors: clear the status (write, then read back), then take them on their own vector. */
    ApicWrite(APIC_ESR, 0);
    (VOID)ApicRead(APIC_ESR);
    ApicWrite(APIC_LVT_ERROR, VECTOR_APIC_ERROR);
}

/* The MADT's local-APIC NMI entries say which LINT pin carries NMI, with which polarity. */
VOID HalpConfigureLocalApicNmi(VOID)
{
    ULONG i;

    for (i = 0; i < HalpApicInfo.NmiSourceCount; i++)
    {
        UCHAR Uid = HalpApicInfo.NmiSource[i].AcpiProcessorUid;
        ULONG Value = APIC_DELIVERY_NMI;

        if (Uid != 0xFF && Uid != HalpApicInfo.BootProcessorUid)
            continue;
        if ((HalpApicInfo.NmiSource[i].Flags & ACPI_MPS_POLARITY_MASK) == ACPI_MPS_POLARITY_ACTIVE_LOW)
            Value |= APIC_LVT_ACTIVE_LOW;
        /* NMI delivery is always edge-sensitive; the trigger flag does not apply. */
        ApicWrite(HalpApicInfo.NmiSource[i].Lint ? APIC_LVT_LINT1 : APIC_LVT_LINT0, Value);
    }
}

VOID HalpApicErrorHandler(PKTRAP_FRAME TrapFrame)
{
    ULONG Status;

    UNREFERENCED_PARAMETER(TrapFrame);

    /* The status register latches on a write; reading it then tells what went wrong. */
    ApicWrite(APIC_ESR, 0);
    Status = ApicRead(APIC_ESR);
    HalpApicErrorCount++;
    DbgPrint("gen2hal: local APIC error, ESR = 0x%lx (%lu so far)\n", Status, HalpApicErrorCount);
    HalpSendEOI();
}

/* ---- IOAPIC ----------------------------------------------------------------------------------------------------- */

VOID HalpInitializeIoApic(VOID)
{
    ULONG i, Input, Vector;

    for (Vector = 0; Vector < RTL_NUMBER_OF(HalpVectorRoute); Vector++)
        HalpVectorRoute[Vector].Gsi = HALP_NO_GSI;
    HalpVectorRoutesReady = TRUE;

    for (i = 0; i < HalpApicInfo.IoApicCount; i++)
    {
        PHALP_IO_APIC IoApic = &HalpApicInfo.IoApic[i];
        PHYSICAL_ADDRESS Pa;

        /* Device registers: an uncached mapping of the page the MADT names. */
        Pa.QuadPart = IoApic->PhysicalAddress;
        IoApic->Registers = HalpMapPhysicalMemory64(Pa, 1, TRUE);
        IoApic->InputCount = ((IoApicRead(IoApic->Registers, IOAPIC_REG_VERSION) >> IOAPIC_VERSION_MAX_ENTRY_SHIFT) &
                              IOAPIC_VERSION_MAX_ENTRY_MASK) + 1;

        /* Nothing is delivered until a driver (or our clock) asks for an input. */
        for (Input = 0; Input < IoApic->InputCount; Input++)
        {
            IoApicWrite(IoApic->Registers, IOAPIC_REG_REDIRECTION(Input), IOAPIC_RTE_MASKED);
            IoApicWrite(IoApic->Registers, IOAPIC_REG_REDIRECTION(Input) + 1, 0);
        }
    }
}

/* The IOAPIC and input number serving a global system interrupt. */
static PHALP_IO_APIC HalpGsiToIoApic(ULONG Gsi, PULONG Input)
{
    ULONG i;

    for (i = 0; i < HalpApicInfo.IoApicCount; i++)
    {
        PHALP_IO_APIC IoApic = &HalpApicInfo.IoApic[i];

        if (IoApic->Registers != NULL && Gsi >= IoApic->GsiBase && Gsi - IoApic->GsiBase < IoApic->InputCount)
        {
            *Input = Gsi - IoApic->GsiBase;
            return IoApic;
        }
    }
    return NULL;
}

/* Program one redirection entry: fixed delivery of Vector to this processor (physical destination), with the
 * trigger and polarity the caller took from the MADT's interrupt source overrides (HalpIrqToGsi). */
BOOLEAN HalpEnableIoApicInput(ULONG Gsi, UCHAR Vector, BOOLEAN LevelSensitive, BOOLEAN ActiveLow)
{
    ULONG Input, Low;
    PHALP_IO_APIC IoApic = HalpGsiToIoApic(Gsi, &Input);

    if (IoApic == NULL)
        return FALSE;

    Low = Vector | APIC_DELIVERY_FIXED;
    if (LevelSensitive)
        Low |= IOAPIC_RTE_LEVEL_TRIGGERED;
    if (ActiveLow)
        Low |= IOAPIC_RTE_ACTIVE_LOW;

    /* Destination first, while the entry is still masked; unmasking is the last write. */
    IoApicWrite(IoApic->Registers, IOAPIC_REG_REDIRECTION(Input), IOAPIC_RTE_MASKED | Low);
    IoApicWrite(IoApic->Registers, IOAPIC_REG_REDIRECTION(Input) + 1, HalpLocalApicId << IOAPIC_RTE_DEST_SHIFT);
    IoApicWrite(IoApic->Registers, IOAPIC_REG_REDIRECTION(Input), Low);
    return TRUE;
}

static VOID HalpDisableIoApicInput(ULONG Gsi)
{
    ULONG Input;
    PHALP_IO_APIC IoApic = HalpGsiToIoApic(Gsi, &Input);

    if (IoApic != NULL)
        IoApicWrite(IoApic->Registers, IOAPIC_REG_REDIRECTION(Input),
                    IoApicRead(IoApic->Registers, IOAPIC_REG_REDIRECTION(Input)) | IOAPIC_RTE_MASKED);
}

/* Route an ISA IRQ to Vector, honouring the MADT's interrupt source overrides (GSI, trigger, polarity). */
BOOLEAN HalpEnableIsaInterrupt(UCHAR IsaIrq, UCHAR Vector)
{
    HALP_VECTOR_ROUTE *Route = &HalpVectorRoute[Vector];

    if (!HalpIrqToGsi(IsaIrq, &Route->Gsi, &Route->LevelSensitive, &Route->ActiveLow))
    {
        Route->Gsi = HALP_NO_GSI;
        return FALSE;
    }
    return HalpEnableIoApicInput(Route->Gsi, Vector, Route->LevelSensitive, Route->ActiveLow);
}

/* A free device vector for a new input: IRQL classes are dealt out round the device range so that inputs do
 * not all share one priority; within a class the lowest free vector is taken. */
static UCHAR HalpAllocateDeviceVector(ULONG Gsi)
{
    ULONG Classes = HALP_DEVICE_IRQL_HIGHEST - HALP_DEVICE_IRQL_LOWEST + 1;
    ULONG Try, Irql, Vector;

    for (Try = 0; Try < Classes; Try++)
    {
        Irql = HALP_DEVICE_IRQL_HIGHEST - (Gsi + Try) % Classes;
        for (Vector = Irql << 4; Vector < ((Irql + 1) << 4); Vector++)
        {
            /* Vectors the kernel or this HAL own are never handed to devices. */
            if (Vector == VECTOR_APIC_SPURIOUS || Vector == VECTOR_APIC_ERROR || Vector == VECTOR_APC ||
                Vector == VECTOR_DISPATCH)
                continue;
            if (HalpVectorRoute[Vector].Gsi == HALP_NO_GSI)
                return (UCHAR)Vector;
        }
    }
    return 0;
}

/* Bus interrupt -> vector, IRQL and affinity. ISA-style buses (Internal, Isa, Eisa) carry ISA IRQs, routed
 * through the MADT overrides. PCI interrupt routing needs the ACPI _PRT (AML), which this HAL cannot evaluate,
 * so other buses get 0: "no vector". */
ULONG NTAPI HalGetInterruptVector(INTERFACE_TYPE InterfaceType, ULONG BusNumber, ULONG BusInterruptLevel,
                                  ULONG BusInterruptVector, PKIRQL Irql, PKAFFINITY Affinity)
{
    ULONG Gsi, Vector;
    BOOLEAN Level, ActiveLow;

    UNREFERENCED_PARAMETER(BusNumber);
    UNREFERENCED_PARAMETER(BusInterruptVector);

    if (InterfaceType != Internal && InterfaceType != Isa && InterfaceType != Eisa)
        return 0;
    if (!HalpVectorRoutesReady || BusInterruptLevel >= HALP_ISA_IRQ_COUNT ||
        !HalpIrqToGsi((UCHAR)BusInterruptLevel, &Gsi, &Level, &ActiveLow))
        return 0;

    /* One vector per input: a second request for the same input gets the same answer. */
    for (Vector = 0; Vector < RTL_NUMBER_OF(HalpVectorRoute); Vector++)
        if (HalpVectorRoute[Vector].Gsi == Gsi)
            break;
    if (Vector == RTL_NUMBER_OF(HalpVectorRoute))
    {
        Vector = HalpAllocateDeviceVector(Gsi);
        if (Vector == 0)
            return 0;
        HalpVectorRoute[Vector].Gsi = Gsi;
        HalpVectorRoute[Vector].LevelSensitive = Level;
        HalpVectorRoute[Vector].ActiveLow = ActiveLow;
    }

    *Irql = (KIRQL)(Vector >> 4);
    *Affinity = 1;      /* the boot processor, the only one */
    return Vector;
}

/* Unmask the IOAPIC input behind a vector HalGetInterruptVector (or the HAL itself) routed. The kernel's mode
 * wins over the override's trigger: it comes from the driver that knows the device. */
static BOOLEAN HalpEnableVector(ULONG Vector, KINTERRUPT_MODE Mode)
{
    HALP_VECTOR_ROUTE *Route;

    if (Vector >= RTL_NUMBER_OF(HalpVectorRoute) || !HalpVectorRoutesReady)
        return FALSE;
    Route = &HalpVectorRoute[Vector];
    if (Route->Gsi == HALP_NO_GSI)
        return FALSE;
    Route->LevelSensitive = (Mode == LevelSensitive);
    return HalpEnableIoApicInput(Route->Gsi, (UCHAR)Vector, Route->LevelSensitive, Route->ActiveLow);
}

static VOID HalpDisableVector(ULONG Vector)
{
    if (Vector < RTL_NUMBER_OF(HalpVectorRoute) && HalpVectorRoutesReady &&
        HalpVectorRoute[Vector].Gsi != HALP_NO_GSI)
        HalpDisableIoApicInput(HalpVectorRoute[Vector].Gsi);
}

/* NT 5.2 (ReactOS) interface. */
BOOLEAN NTAPI HalEnableSystemInterrupt(UCHAR Vector, KIRQL Irql, KINTERRUPT_MODE InterruptMode)
{
    UNREFERENCED_PARAMETER(Irql);   /* fixed by the vector on x64: Vector >> 4 */
    return HalpEnableVector(Vector, InterruptMode);
}

VOID NTAPI HalDisableSystemInterrupt(UCHAR Vector, KIRQL Irql)
{
    UNREFERENCED_PARAMETER(Irql);
    HalpDisableVector(Vector);
}

/* NT 6.x interface. The 6.1 prototypes are not public; we take the NT 5.2 arguments and return a status
 * (unverified: README). */
NTSTATUS NTAPI HalEnableInterrupt(ULONG Vector, KIRQL Irql, KINTERRUPT_MODE InterruptMode)
{
    UNREFERENCED_PARAMETER(Irql);
    return HalpEnableVector(Vector, InterruptMode) ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
}

VOID NTAPI HalDisableInterrupt(ULONG Vector, KIRQL Irql)
{
    UNREFERENCED_PARAMETER(Irql);
    HalpDisableVector(Vector);
}

/* Per-vector routing queries of the NT 6.x interrupt model (MSI, interrupt targets): not provided. */
NTSTATUS NTAPI HalGetVectorInput(ULONG Vector, PVOID Affinity, PULONG Input, PVOID Polarity, PVOID RemapInfo)
{
    UNREFERENCED_PARAMETER(Vector);
    UNREFERENCED_PARAMETER(Affinity);
    UNREFERENCED_PARAMETER(Input);
    UNREFERENCED_PARAMETER(Polarity);
    UNREFERENCED_PARAMETER(RemapInfo);
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS NTAPI HalGetInterruptTargetInformation(PVOID TargetInformation)
{
    UNREFERENCED_PARAMETER(TargetInformation);
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS NTAPI HalGetMessageRoutingInfo(PVOID RoutingInfo)
{
    UNREFERENCED_PARAMETER(RoutingInfo);
    return STATUS_NOT_SUPPORTED;
}

/* ---- Inter-processor and software interrupts -------------------------------------------------------------------- */

/* Write the interrupt command register (high half first: writing the low half sends). */
static VOID HalpApicSendIcr(ULONG High, ULONG Low)
{
    ULONG64 Flags = HalpDisableInterrupts();

    while (ApicRead(APIC_ICR_LOW) & APIC_ICR_DELIVERY_PENDING)
        HalpYieldProcessor();
    ApicWrite(APIC_ICR_HIGH, High);
    ApicWrite(APIC_ICR_LOW, Low);
    HalpRestoreInterrupts(Flags);
}

static VOID HalpSendSelfIpi(UCHAR Vector)
{
    HalpApicSendIcr(0, Vector | APIC_DELIVERY_FIXED | APIC_ICR_LEVEL_ASSERT | APIC_ICR_DEST_SELF);
}

/* A software interrupt is a self-IPI on the vector of its IRQL; only APC and DISPATCH have one. */
VOID FASTCALL HalRequestSoftwareInterrupt(KIRQL Irql)
{
    if (Irql == IRQL_APC)
        HalpSendSelfIpi(VECTOR_APC);
    else if (Irql == IRQL_DISPATCH)
        HalpSendSelfIpi(VECTOR_DISPATCH);
    else
        KeBugCheckEx(HALP_BUGCHECK_HAL_INITIALIZATION_FAILED, HALP_INIT_BAD_SOFTWARE_IRQL, Irql, 0, 0);
}

/* A self-IPI cannot be withdrawn once sent (the APIC has no way to clear an IRR bit); the kernel's APC and DPC
 * handlers tolerate finding nothing to do, so there is nothing to undo here. */
VOID FASTCALL HalClearSoftwareInterrupt(KIRQL Irql)
{
    UNREFERENCED_PARAMETER(Irql);
}

/* Processor sets: bit 0 is this processor; other bits name processors that do not exist under this HAL. */
VOID NTAPI HalSendSoftwareInterrupt(KAFFINITY TargetSet, KIRQL Irql)
{
    if (TargetSet & 1)
        HalRequestSoftwareInterrupt(Irql);
}

static VOID HalpSendIpiToSelf(VOID)
{
    HalpSendSelfIpi(VECTOR_IPI);
}

static VOID HalpSendNmiToSelf(VOID)
{
    /* NMI cannot use the self shorthand: address our own APIC ID. */
    HalpApicSendIcr(HalpLocalApicId << APIC_ID_SHIFT, APIC_DELIVERY_NMI | APIC_ICR_LEVEL_ASSERT);
}

#if defined(GEN2HAL_TARGET_WIN7SP1_AMD64)
/* NT 6.1: the set is a KAFFINITY_EX (group 0 bitmap first). Form inferred from later kernels' call sites. */
VOID NTAPI HalRequestIpi(ULONG Reserved, PKAFFINITY_EX TargetSet)
{
    UNREFERENCED_PARAMETER(Reserved);
    if (TargetSet != NULL && TargetSet->Count != 0 && (TargetSet->Bitmap[0] & 1))
        HalpSendIpiToSelf();
}

VOID NTAPI HalSendNMI(PKAFFINITY_EX TargetSet)
{
    if (TargetSet != NULL && TargetSet->Count != 0 && (TargetSet->Bitmap[0] & 1))
        HalpSendNmiToSelf();
}

/* EOI after a device interrupt the kernel dispatched. */
VOID NTAPI HalPerformEndOfInterrupt(VOID)
{
    HalpSendEOI();
}
#else
VOID NTAPI HalRequestIpi(KAFFINITY TargetSet)
{
    if (TargetSet & 1)
        HalpSendIpiToSelf();
}

VOID NTAPI HalSendNMI(KAFFINITY TargetSet)
{
    if (TargetSet & 1)
        HalpSendNmiToSelf();
}
#endif
