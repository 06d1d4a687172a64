"""I/O manager (Io): MDLs, driver and device objects for the HAL's PnP driver, IRPs, the HAL's resource report.

Driver and device objects are laid out from the description (``[kernel.driver_object]``, ``[kernel.device_object]``
...) in nonpaged pool.  ``IoCreateDriver`` calls the driver's entry point in the guest, as the kernel does for a
driver it creates itself (RegistryPath NULL).  ``IoReportDetectedDevice`` creates the PDO the PnP manager's root
enumerator owns; IRPs sent to it complete as a root-enumerated device's would (``pnp.py`` drives the HAL's stack
through the IRPs the PnP manager sends at boot).  ``IoCallDriver`` runs the target's dispatch routine in the guest;
``IoCompleteRequest`` runs the completion routines registered above the current stack location.
"""

from __future__ import annotations

from . import checked, gdata, ob, pool
from .decl import declare, export

STATUS_SUCCESS = 0
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
STATUS_INVALID_DEVICE_REQUEST = 0xC0000010
STATUS_OBJECT_NAME_COLLISION = 0xC0000035
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
IO_TYPE_DEVICE, IO_TYPE_DRIVER, IO_TYPE_DEVICE_OBJECT_EXTENSION = 3, 4, 13
IRP_MJ_MAXIMUM_FUNCTION = 0x1B
DO_DEVICE_HAS_NAME, DO_DEVICE_INITIALIZING, DO_BUS_ENUMERATED_DEVICE = 0x40, 0x80, 0x1000
SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_SUCCESS, SL_INVOKE_ON_ERROR = 0x20, 0x40, 0x80
SL_PENDING_RETURNED = 0x01
TAG_IO = 0x206F4920  # ' oI'


def _io(k) -> dict:
    return k.subsystem("io", lambda: {"drivers": {}, "devices": {}, "names": {}, "detected": [], "hal_resources": None,
                                       "root_driver": None})


# ---------------------------------------------------------------------------------------------------- MDLs
@export("PMDL IoAllocateMdl(PVOID VirtualAddress, ULONG Length, BOOLEAN SecondaryBuffer, BOOLEAN ChargeQuota, "
        "PIRP Irp)", irql="dispatch")
def IoAllocateMdl(k, VirtualAddress, Length, SecondaryBuffer, ChargeQuota, Irp):
    """An MDL for ``[VirtualAddress, +Length)`` (frames not yet filled); attached to ``Irp`` when given."""
    from . import mm

    if Irp:
        raise checked.assertion(k, "IoAllocateMdl with an IRP: the model builds no IRP MDL chains")
    mdl = pool.get(k).allocate(0, k.L.size("mdl") + 8 * mm.pages_spanned(VirtualAddress, Length), 0x206C644D,
                               k.caller_function)  # 'Mdl '
    if not mdl:
        return 0
    mm.init_mdl(k, mdl, VirtualAddress, Length)
    k.put(mdl, "mdl", "MdlFlags", mm.MDL_ALLOCATED_FIXED_SIZE)
    return mdl


@export("VOID IoFreeMdl(PMDL Mdl)", irql="dispatch")
def IoFreeMdl(k, Mdl):
    """Free an MDL from IoAllocateMdl (its system mapping, if any, must be gone)."""
    from . import mm

    if k.get(Mdl, "mdl", "MdlFlags") & mm.MDL_MAPPED_TO_SYSTEM_VA:
        raise checked.assertion(k, f"IoFreeMdl({Mdl:#x}): the MDL is still mapped to system space")
    pool.get(k).free(Mdl, None)


# ---------------------------------------------------------------------------------------------------- objects
def new_driver(k, name: str, init: int) -> int:
    """A DRIVER_OBJECT with its extension, every major function answering STATUS_INVALID_DEVICE_REQUEST."""
    p = pool.get(k)
    drv = p.allocate(0, k.L.size("driver_object"), TAG_IO, k.caller_function)
    ext = p.allocate(0, k.L.size("driver_extension"), TAG_IO, k.caller_function)
    k.put(drv, "driver_object", "Type", IO_TYPE_DRIVER)
    k.put(drv, "driver_object", "Size", k.L.size("driver_object"))
    k.put(drv, "driver_object", "DriverExtension", ext)
    k.put(drv, "driver_object", "DriverInit", init)
    k.put(ext, "driver_extension", "DriverObject", drv)
    buf = gdata.new_wstr(k, name)
    gdata.set_counted(k, drv + k.L.off("driver_object", "DriverName"), "unicode_string", buf, 2 * len(name),
                      2 * len(name) + 2)
    invalid = k.import_address("IopInvalidDeviceRequest")
    base = drv + k.L.off("driver_object", "MajorFunction")
    for i in range(IRP_MJ_MAXIMUM_FUNCTION + 1):
        k.mem.vput(base + 8 * i, 8, invalid)
    _io(k)["drivers"][drv] = {"name": name, "init": init}
    ob.track(k, drv, "Driver", ob.object_type(k, "Driver"))
    return drv


@export("NTSTATUS IopInvalidDeviceRequest(PDEVICE_OBJECT DeviceObject, PIRP Irp)", guest_calls=True)
def IopInvalidDeviceRequest(k, DeviceObject, Irp):
    """The kernel's default major function: complete the IRP with STATUS_INVALID_DEVICE_REQUEST."""
    set_status(k, Irp, STATUS_INVALID_DEVICE_REQUEST, 0)
    complete(k, Irp)
    return STATUS_INVALID_DEVICE_REQUEST


@export("NTSTATUS IoCreateDriver(PUNICODE_STRING DriverName, PDRIVER_INITIALIZE InitializationFunction)",
        irql="passive", guest_calls=True)
def IoCreateDriver(k, DriverName, InitializationFunction):
    """Create a driver object and run its initialisation routine (RegistryPath NULL) in the guest."""
    name = gdata.unicode_string(k, DriverName) or f"\\Driver\\{len(_io(k)['drivers']):08d}"
    if any(d["name"].lower() == name.lower() for d in _io(k)["drivers"].values()):
        return STATUS_OBJECT_NAME_COLLISION
    drv = new_driver(k, name, InitializationFunction)
    status = k.call_guest(InitializationFunction, [drv, 0]) & 0xFFFFFFFF
    _io(k)["drivers"][drv]["status"] = status
    if status & 0x80000000:
        del _io(k)["drivers"][drv]
    return status


def new_device(k, driver: int, extension_size: int, name: str | None, device_type: int, characteristics: int,
               flags: int = DO_DEVICE_INITIALIZING) -> int:
    """A DEVICE_OBJECT (+ extension and DEVOBJ_EXTENSION) linked at the head of ``driver``'s device list."""
    from . import kesync

    p = pool.get(k)
    size = k.L.size("device_object")
    ext_off = (size + 15) & ~15
    dev = p.allocate(0, ext_off + extension_size, TAG_IO, k.caller_function)
    dox = p.allocate(0, k.L.size("extended_devobj_extension"), TAG_IO, k.caller_function)
    if not dev or not dox:
        return 0
    put = lambda f, v: k.put(dev, "device_object", f, v)  # noqa: E731 - one structure, many fields
    put("Type", IO_TYPE_DEVICE)
    put("Size", ext_off + extension_size)
    put("DriverObject", driver)
    put("NextDevice", k.get(driver, "driver_object", "DeviceObject") if driver else 0)
    put("Flags", flags | (DO_DEVICE_HAS_NAME if name else 0))
    put("Characteristics", characteristics)
    put("DeviceExtension", dev + ext_off if extension_size else 0)
    put("DeviceType", device_type)
    put("StackSize", 1)
    put("DeviceObjectExtension", dox)
    k.put(dox, "extended_devobj_extension", "Type", IO_TYPE_DEVICE_OBJECT_EXTENSION)
    k.put(dox, "extended_devobj_extension", "Size", k.L.size("extended_devobj_extension"))
    k.put(dox, "extended_devobj_extension", "DeviceObject", dev)
    kesync.KeInitializeDeviceQueue(k, dev + k.L.off("device_object", "DeviceQueue"))
    kesync.KeInitializeEvent(k, dev + k.L.off("device_object", "DeviceLock"), 1, 1)
    if driver:
        k.put(driver, "driver_object", "DeviceObject", dev)
    _io(k)["devices"][dev] = {"driver": driver, "name": name, "type": device_type, "deleted": False}
    ob.track(k, dev, "Device", ob.object_type(k, "Device"))
    if name:
        _io(k)["names"][name.lower()] = dev
    return dev


@export("NTSTATUS IoCreateDevice(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize, PUNICODE_STRING DeviceName, "
        "DEVICE_TYPE DeviceType, ULONG DeviceCharacteristics, BOOLEAN Exclusive, PDEVICE_OBJECT* DeviceObject)",
        irql="passive")
def IoCreateDevice(k, DriverObject, DeviceExtensionSize, DeviceName, DeviceType, DeviceCharacteristics, Exclusive,
                   DeviceObject):
    """A device object for the driver (DO_DEVICE_INITIALIZING set until the driver clears it)."""
    name = gdata.unicode_string(k, DeviceName) if DeviceName else None
    if name and name.lower() in _io(k)["names"]:
        return STATUS_OBJECT_NAME_COLLISION
    dev = new_device(k, DriverObject, DeviceExtensionSize, name, DeviceType, DeviceCharacteristics)
    if not dev:
        return STATUS_INSUFFICIENT_RESOURCES
    k.mem.vput(DeviceObject, 8, dev)
    return STATUS_SUCCESS


@export("VOID IoDeleteDevice(PDEVICE_OBJECT DeviceObject)", irql="passive")
def IoDeleteDevice(k, DeviceObject):
    """Unlink the device from its driver's list and mark it deleted."""
    info = _io(k)["devices"].get(DeviceObject)
    if info is None or info["deleted"]:
        raise checked.assertion(k, f"IoDeleteDevice({DeviceObject:#x}): not a live device object")
    info["deleted"] = True
    drv = info["driver"]
    if drv:
        nxt = k.get(DeviceObject, "device_object", "NextDevice")
        cur = k.get(drv, "driver_object", "DeviceObject")
        if cur == DeviceObject:
            k.put(drv, "driver_object", "DeviceObject", nxt)
        else:
            while cur and k.get(cur, "device_object", "NextDevice") != DeviceObject:
                cur = k.get(cur, "device_object", "NextDevice")
            if cur:
                k.put(cur, "device_object", "NextDevice", nxt)
    if info["name"]:
        _io(k)["names"].pop(info["name"].lower(), None)


def top_of_stack(k, dev: int) -> int:
    """The highest device attached above ``dev``."""
    seen = set()
    while k.get(dev, "device_object", "AttachedDevice") and dev not in seen:
        seen.add(dev)
        dev = k.get(dev, "device_object", "AttachedDevice")
    return dev


@export("PDEVICE_OBJECT IoAttachDeviceToDeviceStack(PDEVICE_OBJECT SourceDevice, PDEVICE_OBJECT TargetDevice)",
        irql="passive")
def IoAttachDeviceToDeviceStack(k, SourceDevice, TargetDevice):
    """Attach ``SourceDevice`` above the top of ``TargetDevice``'s stack; returns the device it sits on."""
    info = _io(k)["devices"].get(TargetDevice)
    if info is None or info["deleted"]:
        return 0
    top = top_of_stack(k, TargetDevice)
    k.put(top, "device_object", "AttachedDevice", SourceDevice)
    k.put(SourceDevice, "device_object", "StackSize", k.get(top, "device_object", "StackSize") + 1)
    k.put(SourceDevice, "device_object", "AlignmentRequirement", k.get(top, "device_object", "AlignmentRequirement"))
    k.put(k.get(SourceDevice, "device_object", "DeviceObjectExtension"), "extended_devobj_extension", "AttachedTo",
          top)
    return top


def root_driver(k) -> int:
    """The PnP manager's root enumerator driver, which owns reported (detected) devices' PDOs."""
    io = _io(k)
    if io["root_driver"] is None:
        drv = new_driver(k, "\\Driver\\PnpManager", 0)
        base = drv + k.L.off("driver_object", "MajorFunction")
        for i in range(IRP_MJ_MAXIMUM_FUNCTION + 1):
            k.mem.vput(base + 8 * i, 8, k.import_address("PnpRootDispatch"))
        io["root_driver"] = drv
    return io["root_driver"]


@export("NTSTATUS PnpRootDispatch(PDEVICE_OBJECT DeviceObject, PIRP Irp)", guest_calls=True)
def PnpRootDispatch(k, DeviceObject, Irp):
    """A root-enumerated PDO's dispatch: START_DEVICE succeeds, other PnP and power IRPs keep their status."""
    from . import pnp

    status = pnp.root_pdo_status(k, Irp)
    set_status(k, Irp, status, get_information(k, Irp))
    complete(k, Irp)
    return status


@export("NTSTATUS IoReportDetectedDevice(PDRIVER_OBJECT DriverObject, INTERFACE_TYPE LegacyBusType, ULONG BusNumber, "
        "ULONG SlotNumber, PCM_RESOURCE_LIST ResourceList, PIO_RESOURCE_REQUIREMENTS_LIST ResourceRequirements, "
        "BOOLEAN ResourceAssigned, PDEVICE_OBJECT* DeviceObject)", irql="passive")
def IoReportDetectedDevice(k, DriverObject, LegacyBusType, BusNumber, SlotNumber, ResourceList, ResourceRequirements,
                           ResourceAssigned, DeviceObject):
    """Create (or adopt) the PDO of a device the driver detected; the root enumerator owns it."""
    pdo = k.mem.vu(DeviceObject, 8)
    if not pdo:
        pdo = new_device(k, root_driver(k), 0, None, 0x22, 0, flags=DO_BUS_ENUMERATED_DEVICE)  # FILE_DEVICE_UNKNOWN
        if not pdo:
            return STATUS_INSUFFICIENT_RESOURCES
        k.mem.vput(DeviceObject, 8, pdo)
    _io(k)["detected"].append({"driver": DriverObject, "pdo": pdo, "bus_type": LegacyBusType, "bus": BusNumber,
                               "slot": SlotNumber, "resources": bool(ResourceList)})
    return STATUS_SUCCESS


@export("NTSTATUS IoReportHalResourceUsage(PUNICODE_STRING HalName, PCM_RESOURCE_LIST RawResourceList, "
        "PCM_RESOURCE_LIST TranslatedResourceList, ULONG ResourceListSize)", irql="passive")
def IoReportHalResourceUsage(k, HalName, RawResourceList, TranslatedResourceList, ResourceListSize):
    """Record the HAL's resource lists under HARDWARE\\RESOURCEMAP\\Hardware Abstraction Layer\\<name>, as the
    kernel does (values .Raw and .Translated, REG_RESOURCE_LIST)."""
    from . import registry

    name = gdata.unicode_string(k, HalName) or ""
    raw = k.mem.vread(RawResourceList, ResourceListSize)
    translated = k.mem.vread(TranslatedResourceList, ResourceListSize)
    reg = registry.get(k)
    key = reg.create(f"\\Registry\\Machine\\HARDWARE\\RESOURCEMAP\\Hardware Abstraction Layer\\{name}")
    reg.set_value(key, ".Raw", registry.REG_RESOURCE_LIST, raw)
    reg.set_value(key, ".Translated", registry.REG_RESOURCE_LIST, translated)
    _io(k)["hal_resources"] = {"hal_name": name, "size": ResourceListSize,
                               "descriptors": resource_descriptor_count(raw)}
    return STATUS_SUCCESS


def resource_descriptor_count(data: bytes) -> int:
    """Partial descriptors in a CM_RESOURCE_LIST: Count, then full descriptors of InterfaceType, BusNumber and a
    partial list (Version, Revision, Count) followed by its 0x14-byte descriptors (x64, pack(4): wdm.h)."""
    if len(data) < 4:
        return 0
    count = int.from_bytes(data[0:4], "little")
    pos, total = 4, 0
    for _ in range(count):
        if pos + 0x10 > len(data):
            break
        n = int.from_bytes(data[pos + 0xC:pos + 0x10], "little")
        total += n
        pos += 0x10 + 0x14 * n
    return total


@export("VOID IoGetStackLimits(PULONG_PTR LowLimit, PULONG_PTR HighLimit)")
def IoGetStackLimits(k, LowLimit, HighLimit):
    """The current thread's kernel stack bounds."""
    k.mem.vput(LowLimit, 8, k.stack_base)
    k.mem.vput(HighLimit, 8, k.stack_base + 0x10000)


# ---------------------------------------------------------------------------------------------------- IRPs
def current_location(k, irp: int) -> int:
    """Tail.Overlay.CurrentStackLocation."""
    return k.get(irp, "irp", "Tail.Overlay.CurrentStackLocation")


def set_status(k, irp: int, status: int, information: int) -> None:
    """IoStatus.Status and .Information."""
    iosb = irp + k.L.off("irp", "IoStatus")
    k.put(iosb, "io_status_block", "Status", status & 0xFFFFFFFF)
    k.put(iosb, "io_status_block", "Information", information)


def get_status(k, irp: int) -> int:
    """IoStatus.Status."""
    return k.get(irp + k.L.off("irp", "IoStatus"), "io_status_block", "Status")


def get_information(k, irp: int) -> int:
    """IoStatus.Information."""
    return k.get(irp + k.L.off("irp", "IoStatus"), "io_status_block", "Information")


def call_driver(k, device: int, irp: int) -> int:
    """IoCallDriver: move to the next stack location and run the device's dispatch routine (guest)."""
    loc = k.get(irp, "irp", "CurrentLocation") - 1
    if loc < 1:
        k.bugcheck(0x35, [irp, 0, 0, 0], reported_via="IoCallDriver (NO_MORE_IRP_STACK_LOCATIONS)")
    k.put(irp, "irp", "CurrentLocation", loc)
    stack = current_location(k, irp) - k.L.size("io_stack_location")
    k.put(irp, "irp", "Tail.Overlay.CurrentStackLocation", stack)
    k.put(stack, "io_stack_location", "DeviceObject", device)
    major = k.get(stack, "io_stack_location", "MajorFunction")
    driver = k.get(device, "device_object", "DriverObject")
    routine = k.mem.vu(driver + k.L.off("driver_object", "MajorFunction") + 8 * major, 8)
    return k.call_guest(routine, [device, irp]) & 0xFFFFFFFF


@export("NTSTATUS IofCallDriver(PDEVICE_OBJECT DeviceObject, PIRP Irp)", irql="dispatch", guest_calls=True)
def IofCallDriver(k, DeviceObject, Irp):
    """Pass the IRP to the device's driver."""
    return call_driver(k, DeviceObject, Irp)


@export("NTSTATUS IoCallDriver(PDEVICE_OBJECT DeviceObject, PIRP Irp)", irql="dispatch", guest_calls=True)
def IoCallDriver(k, DeviceObject, Irp):
    """Pass the IRP to the device's driver."""
    return call_driver(k, DeviceObject, Irp)


@export("NTSTATUS PoCallDriver(PDEVICE_OBJECT DeviceObject, PIRP Irp)", irql="dispatch", guest_calls=True)
def PoCallDriver(k, DeviceObject, Irp):
    """Pass a power IRP to the device's driver."""
    return call_driver(k, DeviceObject, Irp)


def complete(k, irp: int) -> None:
    """IoCompleteRequest: run completion routines of the locations above the current one, in order."""
    size = k.L.size("io_stack_location")
    count = k.get(irp, "irp", "StackCount")
    first = irp + k.L.size("irp")
    while True:
        loc = k.get(irp, "irp", "CurrentLocation")
        if loc > count:
            break
        stack = current_location(k, irp)
        k.put(irp, "irp", "CurrentLocation", loc + 1)
        k.put(irp, "irp", "Tail.Overlay.CurrentStackLocation", stack + size)
        routine = k.get(stack, "io_stack_location", "CompletionRoutine")
        control = k.get(stack, "io_stack_location", "Control")
        status = get_status(k, irp)
        wanted = (SL_INVOKE_ON_ERROR if status & 0x80000000 else SL_INVOKE_ON_SUCCESS)
        if routine and control & wanted:
            upper = stack + size
            device = k.get(upper, "io_stack_location", "DeviceObject") if upper < first + size * count else 0
            result = k.call_guest(routine, [device, irp, k.get(stack, "io_stack_location", "Context")]) & 0xFFFFFFFF
            if result == STATUS_MORE_PROCESSING_REQUIRED:
                return


@export("VOID IofCompleteRequest(PIRP Irp, CCHAR PriorityBoost)", irql="dispatch", guest_calls=True)
def IofCompleteRequest(k, Irp, PriorityBoost):
    """Complete the IRP (completion routines run in the guest)."""
    complete(k, Irp)


@export("VOID IoCompleteRequest(PIRP Irp, CCHAR PriorityBoost)", irql="dispatch", guest_calls=True)
def IoCompleteRequest(k, Irp, PriorityBoost):
    """Complete the IRP (completion routines run in the guest)."""
    complete(k, Irp)


@export("VOID PoStartNextPowerIrp(PIRP Irp)", irql="dispatch")
def PoStartNextPowerIrp(k, Irp):
    """Let the power manager send the next power IRP (the model sends none while a HAL boots)."""


_NO_DISKS = "the model has no disks or partition tables"
declare("NTSTATUS IoReadPartitionTable(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, BOOLEAN ReturnRecognizedPartitions, "
        "PDRIVE_LAYOUT_INFORMATION* PartitionBuffer)", _NO_DISKS, module=__name__, irql="passive")
declare("NTSTATUS IoSetPartitionInformation(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, ULONG PartitionNumber, "
        "ULONG PartitionType)", _NO_DISKS, module=__name__, irql="passive")
declare("NTSTATUS IoWritePartitionTable(PDEVICE_OBJECT DeviceObject, ULONG SectorSize, ULONG SectorsPerTrack, "
        "ULONG NumberOfHeads, PDRIVE_LAYOUT_INFORMATION PartitionBuffer)", _NO_DISKS, module=__name__,
        irql="passive")
declare("VOID IoAssignDriveLetters(PLOADER_PARAMETER_BLOCK LoaderBlock, PSTRING NtDeviceName, PUCHAR NtSystemPath, "
        "PSTRING NtSystemPathString)", _NO_DISKS, module=__name__, irql="passive")
declare("NTSTATUS IoGetDeviceInterfaces(LPCGUID InterfaceClassGuid, PDEVICE_OBJECT PhysicalDeviceObject, "
        "ULONG Flags, PWSTR* SymbolicLinkList)", "the model keeps no device-interface registrations",
        module=__name__, irql="passive")
declare("NTSTATUS IoRegisterPlugPlayNotification(ULONG EventCategory, ULONG EventCategoryFlags, "
        "PVOID EventCategoryData, PDRIVER_OBJECT DriverObject, PVOID CallbackRoutine, PVOID Context, "
        "PVOID* NotificationEntry)", "the model raises no PnP notifications", module=__name__, irql="passive")
declare("NTSTATUS IoGetDeviceObjectPointer(PUNICODE_STRING ObjectName, ACCESS_MASK DesiredAccess, "
        "PFILE_OBJECT* FileObject, PDEVICE_OBJECT* DeviceObject)", "the model has no file objects",
        module=__name__, irql="passive")
declare("PIRP IoBuildSynchronousFsdRequest(ULONG MajorFunction, PDEVICE_OBJECT DeviceObject, PVOID Buffer, "
        "ULONG Length, PLARGE_INTEGER StartingOffset, PKEVENT Event, PIO_STATUS_BLOCK IoStatusBlock)",
        "the model builds no file-system IRPs (no storage stack)", module=__name__, irql="passive")
declare("NTSTATUS IoAllocateAdapterChannel(PADAPTER_OBJECT AdapterObject, PDEVICE_OBJECT DeviceObject, "
        "ULONG NumberOfMapRegisters, PDRIVER_CONTROL ExecutionRoutine, PVOID Context)",
        "adapter channels (slave DMA) are not modelled", module=__name__, irql="dispatch")
