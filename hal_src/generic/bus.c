/*
 * bus.c -- bus data and bus addresses of a PC: PCI configuration space through configuration mechanism #1
 * (ports 0xCF8/0xCFC), the CMOS bank, and the identity translation of ISA/EISA/PCI addresses.
 */
#include "halp.h"

static ULONG HalpPciConfigAddress(ULONG Bus, PCI_SLOT_NUMBER Slot, ULONG Offset)
{
    return PCI_CONFIG_ENABLE | ((Bus & 0xFF) << 16) | ((ULONG)Slot.u.bits.DeviceNumber << 11) |
           ((ULONG)Slot.u.bits.FunctionNumber << 8) | (Offset & 0xFC);
}

/* Both PCI configuration ports are shared by every access: hold interrupts off across address + data. */
static ULONG HalpReadPciDword(ULONG Bus, PCI_SLOT_NUMBER Slot, ULONG Offset)
{
    ULONG64 Flags = HalpDisableInterrupts();
    ULONG Value;

    HalpWritePortUlong(PCI_CONFIG_ADDRESS_PORT, HalpPciConfigAddress(Bus, Slot, Offset));
    Value = HalpReadPortUlong(PCI_CONFIG_DATA_PORT);
    HalpRestoreInterrupts(Flags);
    return Value;
}

static VOID HalpWritePciDword(ULONG Bus, PCI_SLOT_NUMBER Slot, ULONG Offset, ULONG Value)
{
    ULONG64 Flags = HalpDisableInterrupts();

    HalpWritePortUlong(PCI_CONFIG_ADDRESS_PORT, HalpPciConfigAddress(Bus, Slot, Offset));
    HalpWritePortUlong(PCI_CONFIG_DATA_PORT, Value);
    HalpRestoreInterrupts(Flags);
}

/* Byte-wise copy through dword accesses (the mechanism's unit); writes merge into the dword they touch. */
static ULONG HalpPciConfigTransfer(ULONG Bus, ULONG SlotNumber, PUCHAR Buffer, ULONG Offset, ULONG Length,
                                   BOOLEAN Write)
{
    PCI_SLOT_NUMBER Slot;
    ULONG Done, Dword, Shift;

    Slot.u.AsULONG = SlotNumber;
    if (Bus > 0xFF || (HalpReadPciDword(Bus, Slot, 0) & 0xFFFF) == PCI_VENDOR_ID_NONE)
    {
        /* No device: the DDK convention is to return 2 with an invalid vendor ID, when reads start at 0. */
        if (!Write && Offset == 0 && Length >= sizeof(USHORT))
        {
            Buffer[0] = Buffer[1] = 0xFF;
            return sizeof(USHORT);
        }
        return 0;
    }
    if (Offset >= PCI_CONFIG_SPACE_SIZE)
        return 0;
    if (Length > PCI_CONFIG_SPACE_SIZE - Offset)
        Length = PCI_CONFIG_SPACE_SIZE - Offset;

    for (Done = 0; Done < Length; Done++)
    {
        ULONG Where = Offset + Done;

        Shift = (Where & 3) * 8;
        Dword = HalpReadPciDword(Bus, Slot, Where);
        if (Write)
        {
            Dword = (Dword & ~(0xFFUL << Shift)) | ((ULONG)Buffer[Done] << Shift);
            HalpWritePciDword(Bus, Slot, Where, Dword);
        }
        else
        {
            Buffer[Done] = (UCHAR)(Dword >> Shift);
        }
    }
    return Length;
}

/* CMOS bus 0: the 128-byte bank at 0x70/0x71; SlotNumber + Offset is the first register. */
static ULONG HalpCmosTransfer(ULONG Bus, ULONG SlotNumber, PUCHAR Buffer, ULONG Offset, ULONG Length,
                              BOOLEAN Write)
{
    ULONG First = SlotNumber + Offset, Done;

    if (Bus != 0 || First >= CMOS_REGISTER_LIMIT)
        return 0;
    for (Done = 0; Done < Length && First + Done < CMOS_REGISTER_LIMIT; Done++)
    {
        if (Write)
            HalpWriteCmos((UCHAR)(First + Done), Buffer[Done]);
        else
            Buffer[Done] = HalpReadCmos((UCHAR)(First + Done));
    }
    return Done;
}

ULONG NTAPI HalGetBusDataByOffset(BUS_DATA_TYPE BusDataType, ULONG BusNumber, ULONG SlotNumber, PVOID Buffer,
                                  ULONG Offset, ULONG Length)
{
    switch (BusDataType)
    {
    case PCIConfiguration:
        return HalpPciConfigTransfer(BusNumber, SlotNumber, Buffer, Offset, Length, FALSE);
    case Cmos:
        return HalpCmosTransfer(BusNumber, SlotNumber, Buffer, Offset, Length, FALSE);
    default:
        /* Other bus data (EISA, PCMCIA, ...): no such bus here. */
        return 0;
    }
}

ULONG NTAPI HalSetBusDataByOffset(BUS_DATA_TYPE BusDataType, ULONG BusNumber, ULONG SlotNumber, PVOID Buffer,
                                  ULONG Offset, ULONG Length)
{
    switch (BusDataType)
    {
    case PCIConfiguration:
        return HalpPciConfigTransfer(BusNumber, SlotNumber, Buffer, Offset, Length, TRUE);
    case Cmos:
        return HalpCmosTransfer(BusNumber, SlotNumber, Buffer, Offset, Length, TRUE);
    default:
        return 0;
    }
}

ULONG NTAPI HalGetBusData(BUS_DATA_TYPE BusDataType, ULONG BusNumber, ULONG SlotNumber, PVOID Buffer,
                          ULONG Length)
{
    return HalGetBusDataByOffset(BusDataType, BusNumber, SlotNumber, Buffer, 0, Length);
}

ULONG NTAPI HalSetBusData(BUS_DATA_TYPE BusDataType, ULONG BusNumber, ULONG SlotNumber, PVOID Buffer,
                          ULONG Length)
{
    return HalSetBusDataByOffset(BusDataType, BusNumber, SlotNumber, Buffer, 0, Length);
}

/* On a PC, I/O and memory addresses on the ISA, EISA and PCI buses are the processor's own: identity. */
BOOLEAN NTAPI HalTranslateBusAddress(INTERFACE_TYPE InterfaceType, ULONG BusNumber, PHYSICAL_ADDRESS BusAddress,
                                     PULONG AddressSpace, PPHYSICAL_ADDRESS TranslatedAddress)
{
    UNREFERENCED_PARAMETER(BusNumber);
    UNREFERENCED_PARAMETER(AddressSpace);   /* 0 = memory, 1 = I/O: both map 1:1, so it stays as it is */

    switch (InterfaceType)
    {
    case Internal:
    case Isa:
    case Eisa:
    case PCIBus:
        *TranslatedAddress = BusAddress;
        return TRUE;
    default:
        return FALSE;
    }
}

/* Legacy slot resource assignment needs the I/O manager's arbiters and a bus driver model this HAL does not
 * provide. */
NTSTATUS NTAPI HalAssignSlotResources(PUNICODE_STRING RegistryPath, PUNICODE_STRING DriverClassName,
                                      PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT DeviceObject,
                                      INTERFACE_TYPE BusType, ULONG BusNumber, ULONG SlotNumber,
                                      PCM_RESOURCE_LIST *AllocatedResources)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    UNREFERENCED_PARAMETER(DriverClassName);
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(BusType);
    UNREFERENCED_PARAMETER(BusNumber);
    UNREFERENCED_PARAMETER(SlotNumber);
    if (AllocatedResources != NULL)
        *AllocatedResources = NULL;
    return STATUS_NOT_SUPPORTED;
}

/* The PC buses impose no restriction beyond what a requirements list already says: nothing to adjust. */
NTSTATUS NTAPI HalAdjustResourceList(PIO_RESOURCE_REQUIREMENTS_LIST *ResourceList)
{
    UNREFERENCED_PARAMETER(ResourceList);
    return STATUS_SUCCESS;
}

/* Microcode-update PCI reads (NT 6.1, caller mcupdate_*.dll): signature unverified, so nothing is read; 0 bytes
 * is the honest answer for "no data". */
ULONG NTAPI HalMcUpdateReadPCIConfig(PVOID Context, ULONG Offset, PVOID Buffer, ULONG Length)
{
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(Offset);
    UNREFERENCED_PARAMETER(Buffer);
    UNREFERENCED_PARAMETER(Length);
    return 0;
}
