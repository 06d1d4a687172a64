"""The PnP manager's part of the boot: start the HAL's device and enumerate its children.

After ``HalInitPnpDriver`` has created the HAL's driver, its root PDO (``IoReportDetectedDevice``) and its FDO
(``IoCreateDevice`` + ``IoAttachDeviceToDeviceStack``), the PnP manager sends the stack IRP_MN_START_DEVICE, then
IRP_MN_QUERY_DEVICE_RELATIONS (BusRelations) and, for every child PDO, IRP_MN_QUERY_ID for its device ID and
hardware IDs (the strings that select the ACPI driver under a HAL).  IRPs are built as the I/O manager builds them
(one stack location per device of the stack, IoStatus.Status STATUS_NOT_SUPPORTED), sent to the top of the stack
and read back once completed.  A root-enumerated PDO answers as the root enumerator does: START_DEVICE and power
IRPs succeed, everything else completes with the status the IRP already holds.
"""

from __future__ import annotations

from . import gdata, io, pool

IRP_MJ_POWER, IRP_MJ_PNP = 0x16, 0x1B
IRP_MN_START_DEVICE, IRP_MN_QUERY_DEVICE_RELATIONS, IRP_MN_QUERY_ID = 0x00, 0x07, 0x13
BUS_RELATIONS = 0
BUS_QUERY_DEVICE_ID, BUS_QUERY_HARDWARE_IDS = 0, 1
STATUS_SUCCESS = 0
STATUS_NOT_SUPPORTED = 0xC00000BB
IO_TYPE_IRP = 6


def root_pdo_status(k, irp: int) -> int:
    """The status a root-enumerated PDO completes ``irp`` with."""
    stack = io.current_location(k, irp)
    major = k.get(stack, "io_stack_location", "MajorFunction")
    minor = k.get(stack, "io_stack_location", "MinorFunction")
    if major == IRP_MJ_POWER or (major == IRP_MJ_PNP and minor == IRP_MN_START_DEVICE):
        return STATUS_SUCCESS
    return io.get_status(k, irp)


def send(k, device: int, minor: int, parameter: int) -> tuple[int, int]:
    """Send IRP_MJ_PNP/``minor`` (first parameter ``parameter``) to the top of ``device``'s stack; returns
    (status, Information)."""
    top = io.top_of_stack(k, device)
    count = k.get(top, "device_object", "StackSize")
    size = k.L.size("irp") + count * k.L.size("io_stack_location")
    irp = pool.get(k).allocate(0, size, 0x20707249, None)  # 'Irp '
    k.put(irp, "irp", "Type", IO_TYPE_IRP)
    k.put(irp, "irp", "Size", size)
    k.put(irp, "irp", "StackCount", count)
    k.put(irp, "irp", "CurrentLocation", count + 1)
    k.put(irp, "irp", "Tail.Overlay.CurrentStackLocation", irp + size)
    io.set_status(k, irp, STATUS_NOT_SUPPORTED, 0)
    nxt = irp + size - k.L.size("io_stack_location")
    k.put(nxt, "io_stack_location", "MajorFunction", IRP_MJ_PNP)
    k.put(nxt, "io_stack_location", "MinorFunction", minor)
    k.mem.vput(nxt + k.L.off("io_stack_location", "Parameters"), 4, parameter)
    status = io.call_driver(k, top, irp)
    if status != io.get_status(k, irp) and status != 0x103:  # STATUS_PENDING aside, both must agree
        k.trace.record("note", device="kernel", detail=f"PnP IRP {minor:#x}: dispatch returned {status:#x}, "
                                                      f"IoStatus.Status {io.get_status(k, irp):#x}")
    return io.get_status(k, irp), io.get_information(k, irp)


def _multi_sz(k, va: int) -> list[str]:
    out, pos = [], va
    while True:
        s = gdata.read_wstr(k, pos)
        if not s:
            return out
        out.append(s)
        pos += 2 * (len(s) + 1)


def start_hal_devices(k) -> dict:
    """Start every device the HAL's driver reported and enumerate its children; the PnP figures of the boot."""
    state = k.state.get("io", {})
    out: dict = {"drivers": sorted(d["name"] for d in state.get("drivers", {}).values()), "devices": []}
    for entry in state.get("detected", []):
        pdo = entry["pdo"]
        dev: dict = {"bus_type": entry["bus_type"]}
        status, _ = send(k, pdo, IRP_MN_START_DEVICE, 0)
        dev["start_status"] = status
        status, info = send(k, pdo, IRP_MN_QUERY_DEVICE_RELATIONS, BUS_RELATIONS)
        dev["relations_status"] = status
        children = []
        if status == STATUS_SUCCESS and info:
            count = k.mem.vu(info, 4)
            for i in range(min(count, 64)):
                child = k.mem.vu(info + 8 + 8 * i, 8)
                ids: dict = {}
                st, text = send(k, child, IRP_MN_QUERY_ID, BUS_QUERY_DEVICE_ID)
                ids["device_id"] = gdata.read_wstr(k, text) if st == STATUS_SUCCESS and text else None
                st, text = send(k, child, IRP_MN_QUERY_ID, BUS_QUERY_HARDWARE_IDS)
                ids["hardware_ids"] = _multi_sz(k, text) if st == STATUS_SUCCESS and text else None
                children.append(ids)
        dev["children"] = children
        out["devices"].append(dev)
    return out
