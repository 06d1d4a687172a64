/*
 * dispatch.c -- the HAL's entries in the kernel's HalDispatchTable and HalPrivateDispatchTable.
 *
 * Some kernels export two tables of function pointers that the kernel, the debugger path and boot drivers
 * (acpi.sys, pci.sys, bootvid) call through. The kernel pre-fills most slots with defaults of its own; a few it
 * leaves empty and calls unconditionally, so the HAL must fill them in phase 0 or the first caller jumps to 0.
 * Which slots exist, where they are and which have a kernel default is part of the target description
 * ([hal_dispatch_table] / [hal_private_dispatch_table] -> target_abi.h); nothing here knows a target by name.
 * A target without those sections (reactos-amd64) compiles none of this.
 *
 * What we put in each slot (signatures of NT 6.1 are not all public: see hal_src/README.md, "Unverified"):
 *   HalQuerySystemInformation   real for HalProfileSourceInformation; other classes STATUS_INVALID_LEVEL
 *   HalGetDmaAdapter            NULL: this HAL has no DMA adapters (as HalGetAdapter); IoGetDmaAdapter's callers
 *                               must handle NULL, which its interface documents as "no adapter"
 *   HalGetCachedAcpiTable       real: our validated, cached table lookup, filtered by OEM ID / OEM table ID
 *   HalSetPciErrorHandlerCallback  real: recorded; HalHandleNMI calls it before it stops the system
 *   HalHaltSystem               real: HaliHaltSystem
 *   HalFindBusAddressTranslation  real: one PC bus, bus address = CPU address (as HalTranslateBusAddress)
 *   HalResetDisplay             FALSE: resetting the display needs the BIOS (INT 10h), which this HAL cannot run
 *   KdGetPciDataByOffset / KdSetPciDataByOffset  real: PCI configuration mechanism #1 (bus.c)
 */
#include "halp.h"

/* The callback pci.sys registers for PCI errors (a PCI_ERROR_HANDLER_CALLBACK, VOID (VOID)); NULL until set. */
PVOID HalpPciErrorHandlerCallback;

#if defined(HAL_DISPATCH_TABLE_VERSION)

/* The tables are kernel variables the HAL imports as data: the import-address-table entry (__imp_<name>) holds
 * the variable's address. We declare the entries themselves because the DDK's declarations describe the NT 5.x
 * layout (mingw's HAL_DISPATCH still has HalIoAssignDriveLetters) and turn the names into macros. */
extern PUCHAR __imp_HalDispatchTable;
#if defined(HAL_PRIVATE_DISPATCH_TABLE_VERSION)
extern PUCHAR __imp_HalPrivateDispatchTable;
#endif

#define HALP_SLOT(Table, Offset) HALP_FIELD(PVOID, (Table), (Offset))

/* HalQuerySystemInformation classes we answer (HAL_QUERY_INFORMATION_CLASS of the DDK). */
static NTSTATUS NTAPI HaliQuerySystemInformation(HAL_QUERY_INFORMATION_CLASS InformationClass, ULONG BufferSize,
                                                 PVOID Buffer, PULONG ReturnedLength)
{
    PHAL_PROFILE_SOURCE_INFORMATION Profile;

    if (ReturnedLength != NULL)
        *ReturnedLength = 0;
    switch (InformationClass)
    {
    case HalProfileSourceInformation:
        /* The caller names the source in the buffer; only ProfileTime exists here (profile.c), and only once the
         * APIC timer's frequency is known. */
        if (BufferSize < sizeof(*Profile) || Buffer == NULL)
            return STATUS_INFO_LENGTH_MISMATCH;
        Profile = Buffer;
        Profile->Supported = Profile->Source == ProfileTime && HalpApicTimerFrequency != 0;
        Profile->Interval = Profile->Supported ? (ULONG)HalpQueryProfileInterval() : 0;
        if (ReturnedLength != NULL)
            *ReturnedLength = sizeof(*Profile);
        return STATUS_SUCCESS;
    default:
        /* No information of this class: the answer the interface defines for a class the HAL does not know. */
        return STATUS_INVALID_LEVEL;
    }
}

static struct _DMA_ADAPTER *NTAPI HaliGetDmaAdapter(PVOID Context, struct _DEVICE_DESCRIPTION *DeviceDescription,
                                                   PULONG NumberOfMapRegisters)
{
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(DeviceDescription);

    /* No adapter objects exist (dma.c): NULL is IoGetDmaAdapter's documented "none", never a fake adapter. */
    if (NumberOfMapRegisters != NULL)
        *NumberOfMapRegisters = 0;
    return NULL;
}

static BOOLEAN HalpAcpiIdMatches(const CHAR *Field, PCSTR Wanted, ULONG Length)
{
    ULONG i;

    /* ACPI ID fields are fixed-width and space- or NUL-padded; the caller's string ends earlier. */
    for (i = 0; i < Length && Wanted[i] != '\0'; i++)
    {
        if (Field[i] != Wanted[i])
            return FALSE;
    }
    return TRUE;
}

static PVOID NTAPI HalpGetCachedAcpiTable(ULONG Signature, PCSTR OemId, PCSTR OemTableId)
{
    PACPI_DESCRIPTION_HEADER Table = HalpAcpiGetTable(Signature);

    if (Table == NULL)
        return NULL;
    if (OemId != NULL && !HalpAcpiIdMatches(Table->OemId, OemId, sizeof(Table->OemId)))
        return NULL;
    if (OemTableId != NULL && !HalpAcpiIdMatches(Table->OemTableId, OemTableId, sizeof(Table->OemTableId)))
        return NULL;
    return Table;
}

static VOID NTAPI HaliSetPciErrorHandlerCallback(PVOID Callback)
{
    HalpPciErrorHandlerCallback = Callback;
}

#if defined(HAL_PRIVATE_DISPATCH_TABLE_VERSION)
static BOOLEAN NTAPI HalpFindBusAddressTranslation(PHYSICAL_ADDRESS BusAddress, PULONG AddressSpace,
                                                   PPHYSICAL_ADDRESS TranslatedAddress, PULONG_PTR Context,
                                                   BOOLEAN NextBus)
{
    /* A PC has one root bus whose addresses are CPU addresses. Context 0 asks for the first bus; once it was
     * handed out (Context 1), asking for the next bus finds none. The address space is unchanged. */
    UNREFERENCED_PARAMETER(AddressSpace);

    if (NextBus && *Context != 0)
        return FALSE;
    *Context = 1;
    *TranslatedAddress = BusAddress;
    return TRUE;
}

static BOOLEAN NTAPI HalpResetDisplay(VOID)
{
    /* Resetting the display means a BIOS mode set (INT 10h); this HAL has no x86 BIOS emulator (x86bios.c), so
     * the display was not reset -- FALSE says so and the caller keeps its own state. */
    return FALSE;
}

static ULONG NTAPI HalpKdGetPciDataByOffset(ULONG BusNumber, ULONG SlotNumber, PVOID Buffer, ULONG Offset,
                                            ULONG Length)
{
    return HalGetBusDataByOffset(PCIConfiguration, BusNumber, SlotNumber, Buffer, Offset, Length);
}

static ULONG NTAPI HalpKdSetPciDataByOffset(ULONG BusNumber, ULONG SlotNumber, PVOID Buffer, ULONG Offset,
                                            ULONG Length)
{
    return HalSetBusDataByOffset(PCIConfiguration, BusNumber, SlotNumber, Buffer, Offset, Length);
}

static VOID NTAPI HalpHaltSystemEntry(VOID)
{
    HaliHaltSystem();
}
#endif

/* A table of another version has other slots at our offsets: writing them would corrupt the kernel. */
static VOID HalpCheckDispatchVersion(PUCHAR Table, ULONG Which, ULONG Expected)
{
    ULONG Found = HALP_FIELD(ULONG, Table, 0);

    if (Found != Expected)
        KeBugCheckEx(HALP_BUGCHECK_HAL_INITIALIZATION_FAILED, HALP_INIT_DISPATCH_VERSION, Which, Found, Expected);
}

VOID HalpInstallDispatchEntries(VOID)
{
    PUCHAR Table = __imp_HalDispatchTable;

    HalpCheckDispatchVersion(Table, 1, HAL_DISPATCH_TABLE_VERSION);
    /* Slots without a kernel default first: the kernel calls them unconditionally. */
    HALP_SLOT(Table, HAL_DISPATCH_TABLE_HalGetDmaAdapter) = (PVOID)HaliGetDmaAdapter;
    HALP_SLOT(Table, HAL_DISPATCH_TABLE_HalGetCachedAcpiTable) = (PVOID)HalpGetCachedAcpiTable;
    HALP_SLOT(Table, HAL_DISPATCH_TABLE_HalSetPciErrorHandlerCallback) = (PVOID)HaliSetPciErrorHandlerCallback;
    /* Slots a HAL conventionally overrides: the kernel's default knows nothing of the platform. */
    HALP_SLOT(Table, HAL_DISPATCH_TABLE_HalQuerySystemInformation) = (PVOID)HaliQuerySystemInformation;

#if defined(HAL_PRIVATE_DISPATCH_TABLE_VERSION)
    Table = __imp_HalPrivateDispatchTable;
    HalpCheckDispatchVersion(Table, 2, HAL_PRIVATE_DISPATCH_TABLE_VERSION);
    HALP_SLOT(Table, HAL_PRIVATE_DISPATCH_TABLE_HalFindBusAddressTranslation) = (PVOID)HalpFindBusAddressTranslation;
    HALP_SLOT(Table, HAL_PRIVATE_DISPATCH_TABLE_HalResetDisplay) = (PVOID)HalpResetDisplay;
    HALP_SLOT(Table, HAL_PRIVATE_DISPATCH_TABLE_KdGetPciDataByOffset) = (PVOID)HalpKdGetPciDataByOffset;
    HALP_SLOT(Table, HAL_PRIVATE_DISPATCH_TABLE_KdSetPciDataByOffset) = (PVOID)HalpKdSetPciDataByOffset;
    HALP_SLOT(Table, HAL_PRIVATE_DISPATCH_TABLE_HalHaltSystem) = (PVOID)HalpHaltSystemEntry;
#endif
}

#else

VOID HalpInstallDispatchEntries(VOID)
{
    /* The target describes no dispatch tables the HAL must fill (the ReactOS target: see hal_src/README.md). */
}

#endif
