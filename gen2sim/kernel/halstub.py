"""The kernel's own default routines in its HAL dispatch tables (what a slot holds until the HAL replaces it).

A HAL may call through a slot it did not fill (the upstream ReactOS HAL asks HalPrivateDispatchTable's
HalVectorToIDTEntry for its vectors), so each default a target names in ``[kernel.dispatch_defaults]`` is declared
here with the behaviour of the kernel's routine (ReactOS ntoskrnl/fstub/halstub.c, read as facts).  A slot whose
default is not named there is bound to a recorder that answers STATUS_NOT_IMPLEMENTED (``data.py``).
"""

from __future__ import annotations

from .decl import declare, export

STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_NOT_IMPLEMENTED = 0xC0000002
STATUS_INVALID_LEVEL = 0xC0000148


@export("UCHAR xHalVectorToIDTEntry(ULONG Vector)")
def xHalVectorToIDTEntry(k, Vector):
    """The IDT entry of a vector: the vector itself."""
    return Vector & 0xFF


@export("VOID xHalHaltSystem(VOID)")
def xHalHaltSystem(k):
    """Halt: the kernel's default spins forever."""
    raise k.fault("halted", "the kernel's default HalHaltSystem spins forever (the HAL did not provide one)")


@export("VOID xHalEndOfBoot(VOID)")
def xHalEndOfBoot(k):
    """Nothing to do at the end of boot."""


@export("VOID xHalSetWakeEnable(BOOLEAN Enable)")
def xHalSetWakeEnable(k, Enable):
    """Nothing (no wake support by default)."""


@export("VOID xHalSetWakeAlarm(ULONGLONG AlarmTime, PTIME_FIELDS TimeFields)")
def xHalSetWakeAlarm(k, AlarmTime, TimeFields):
    """Nothing (no wake alarm by default)."""


@export("VOID xHalLocateHiberRanges(PVOID MemoryMap)")
def xHalLocateHiberRanges(k, MemoryMap):
    """Nothing (no HAL memory to exclude from hibernation by default)."""


@export("PBUS_HANDLER xHalHandlerForBus(INTERFACE_TYPE InterfaceType, ULONG BusNumber)")
def xHalHandlerForBus(k, InterfaceType, BusNumber):
    """No bus handlers: NULL."""
    return 0


@export("VOID xHalReferenceHandler(PBUS_HANDLER BusHandler)")
def xHalReferenceHandler(k, BusHandler):
    """Nothing to reference."""


def _not_supported(name: str, proto: str):
    def fn(k, *args):
        return STATUS_NOT_SUPPORTED
    fn.__name__ = name
    fn.__doc__ = "STATUS_NOT_SUPPORTED, the kernel's default answer."
    export(proto)(fn)


for _name, _proto in (
        ("xHalInitPnpDriver", "NTSTATUS xHalInitPnpDriver(VOID)"),
        ("xHalInitPowerManagement", "NTSTATUS xHalInitPowerManagement(PVOID PmDriverDispatchTable, "
                                    "PVOID* PmHalDispatchTable)"),
        ("xHalStartMirroring", "NTSTATUS xHalStartMirroring(VOID)"),
        ("xHalEndMirroring", "NTSTATUS xHalEndMirroring(ULONG PassNumber)"),
        ("xHalMirrorPhysicalMemory", "NTSTATUS xHalMirrorPhysicalMemory(PHYSICAL_ADDRESS PhysicalAddress, "
                                     "LARGE_INTEGER NumberOfBytes)"),
        ("xHalQueryBusSlots", "NTSTATUS xHalQueryBusSlots(PBUS_HANDLER BusHandler, ULONG BufferSize, "
                              "PULONG SlotNumbers, PULONG ReturnedLength)"),
        ("xHalRegisterBusHandler", "NTSTATUS xHalRegisterBusHandler(INTERFACE_TYPE InterfaceType, ULONG ConfigSpace, "
                                   "ULONG BusNumber, INTERFACE_TYPE ParentInterfaceType, ULONG ParentBusNumber, "
                                   "ULONG ContextSize, PVOID InstallCallback, PVOID* BusHandler)")):
    _not_supported(_name, _proto)


@export("NTSTATUS xHalQuerySystemInformation(ULONG InformationClass, ULONG BufferSize, PVOID Buffer, "
        "PULONG ReturnedLength)")
def xHalQuerySystemInformation(k, InformationClass, BufferSize, Buffer, ReturnedLength):
    """STATUS_INVALID_LEVEL: the kernel's default knows no information class."""
    return STATUS_INVALID_LEVEL


@export("NTSTATUS xHalSetSystemInformation(ULONG InformationClass, ULONG BufferSize, PVOID Buffer)")
def xHalSetSystemInformation(k, InformationClass, BufferSize, Buffer):
    """STATUS_INVALID_LEVEL: the kernel's default knows no information class."""
    return STATUS_INVALID_LEVEL


@export("BOOLEAN xHalTranslateBusAddress(INTERFACE_TYPE InterfaceType, ULONG BusNumber, PHYSICAL_ADDRESS BusAddress, "
        "PULONG AddressSpace, PPHYSICAL_ADDRESS TranslatedAddress)")
def xHalTranslateBusAddress(k, InterfaceType, BusNumber, BusAddress, AddressSpace, TranslatedAddress):
    """The kernel's default bug-checks HAL_INITIALIZATION_FAILED: a HAL must provide bus translation."""
    k.bugcheck(0x5C, [0, 0, 0, 0], reported_via="kernel default HalPciTranslateBusAddress")


@export("NTSTATUS xHalAllocateMapRegisters(PVOID AdapterObject, ULONG Unknown, ULONG Unknown2, PVOID Registers)")
def xHalAllocateMapRegisters(k, AdapterObject, Unknown, Unknown2, Registers):
    """STATUS_NOT_IMPLEMENTED, the kernel's default answer."""
    return STATUS_NOT_IMPLEMENTED


@export("NTSTATUS xKdSetupPciDeviceForDebugging(PVOID LoaderBlock, PVOID PciDevice)")
def xKdSetupPciDeviceForDebugging(k, LoaderBlock, PciDevice):
    """STATUS_NOT_IMPLEMENTED, the kernel's default answer."""
    return STATUS_NOT_IMPLEMENTED


@export("NTSTATUS xKdReleasePciDeviceForDebugging(PVOID PciDevice)")
def xKdReleasePciDeviceForDebugging(k, PciDevice):
    """STATUS_NOT_IMPLEMENTED, the kernel's default answer."""
    return STATUS_NOT_IMPLEMENTED


@export("PVOID xKdGetAcpiTablePhase(PVOID LoaderBlock, ULONG Signature)")
def xKdGetAcpiTablePhase(k, LoaderBlock, Signature):
    """NULL: the kernel's default finds no table."""
    return 0


@export("PVOID xKdMapPhysicalMemory64(PHYSICAL_ADDRESS PhysicalAddress, ULONG NumberPages, BOOLEAN FlushCurrentTLB)")
def xKdMapPhysicalMemory64(k, PhysicalAddress, NumberPages, FlushCurrentTLB):
    """NULL: the kernel's default (MatchAll) maps nothing."""
    return 0


@export("VOID xKdUnmapVirtualAddress(PVOID VirtualAddress, ULONG NumberPages, BOOLEAN FlushCurrentTLB)")
def xKdUnmapVirtualAddress(k, VirtualAddress, NumberPages, FlushCurrentTLB):
    """Nothing to unmap."""


_DISKS = "the kernel's partition-table routines need disks, which the model does not have"
declare("NTSTATUS xHalExamineMBR(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, ULONG MBRTypeIdentifier, "
        "PVOID* Buffer)", _DISKS, module=__name__)
declare("VOID xHalIoAssignDriveLetters(PVOID LoaderBlock, PSTRING NtDeviceName, PUCHAR NtSystemPath, "
        "PSTRING NtSystemPathString)", _DISKS, module=__name__)
declare("NTSTATUS xHalIoReadPartitionTable(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, "
        "BOOLEAN ReturnRecognizedPartitions, PVOID* PartitionBuffer)", _DISKS, module=__name__)
declare("NTSTATUS xHalIoSetPartitionInformation(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, "
        "ULONG PartitionNumber, ULONG PartitionType)", _DISKS, module=__name__)
declare("NTSTATUS xHalIoWritePartitionTable(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, ULONG SectorsPerTrack, "
        "ULONG NumberOfHeads, PVOID PartitionBuffer)", _DISKS, module=__name__)
declare("PVOID xHalGetInterruptTranslator(INTERFACE_TYPE ParentInterfaceType, ULONG ParentBusNumber, "
        "INTERFACE_TYPE BridgeInterfaceType, USHORT Size, USHORT Version, PVOID Translator, PULONG BridgeBusNumber)",
        "the kernel's default interrupt translator is not modelled", module=__name__)
