"""The loader's hand-over: LOADER_PARAMETER_BLOCK, its extension, the memory descriptor list and the ARC
configuration tree with the "ACPI BIOS" node, laid out from the target description.

What a HAL reads from it (``reactos_hal.md`` §6 and §10, ``win7_hal_abi.md`` §4):

- ``MemoryDescriptorListHead``: MEMORY_ALLOCATION_DESCRIPTORs in ascending physical order describing the model's
  RAM.  Pages the model never uses are ``LoaderFree`` (a HAL carves its early memory out of them, e.g. ReactOS's
  ``HalpAllocPhysicalMemory`` below 1 MB and 16 MB); the model's own page tables, ACPI tables and allocations are
  typed as what they are, so a HAL cannot take them.
- ``ConfigurationRoot``: system class root whose child is an AdapterClass/MultiFunctionAdapter component named
  "ACPI BIOS"; its configuration data is a CM_PARTIAL_RESOURCE_LIST with one device-specific descriptor followed by
  ACPI_BIOS_MULTI_NODE {RsdtAddress = the XSDT, Count, E820 entries describing physical memory} (FreeLdr and
  winload build it this way; the firmware's memory map becomes the E820 entries).
- ``LoadOptions``, ``Extension`` (Size, AcpiTable), ``u.I386.MachineType``, ``Prcb``, ``FirmwareInformation``.
"""

from __future__ import annotations

import struct

from ..memory import FRAMES_START, PAGE, PML4_GPA, TABLES_END, TABLES_START
from . import gdata

#: TYPE_OF_MEMORY values (ReactOS sdk/include/reactos/arc/arc.h; the same numbering in NT 5.2 and 6.1).
LOADER_FREE = 2
LOADER_FIRMWARE_PERMANENT = 6
LOADER_MEMORY_DATA = 20
#: E820 address range types (ACPI specification: 1 memory, 2 reserved, 3 ACPI reclaim).
E820_RAM, E820_ACPI = 1, 3
E820_ENTRY = 24


def memory_map(k) -> list[tuple[int, int, int]]:
    """(base page, page count, TYPE_OF_MEMORY) of the model's physical memory, ascending."""
    ram_pages = k.mem.ram.size // PAGE
    acpi_end = k.acpi.base_gpa + len(k.acpi.blob) if k.acpi is not None else TABLES_END
    acpi_end_page = max((acpi_end + PAGE - 1) // PAGE, TABLES_END // PAGE)
    spans = [
        (0, 1, LOADER_FIRMWARE_PERMANENT),  # real-mode vector table and BIOS data area
        (PML4_GPA // PAGE, 1, LOADER_MEMORY_DATA),  # the loader's PML4
        (2, TABLES_START // PAGE - 2, LOADER_FREE),  # unused by the model
        (TABLES_START // PAGE, TABLES_END // PAGE - TABLES_START // PAGE, LOADER_MEMORY_DATA),  # page tables
        (TABLES_END // PAGE, acpi_end_page - TABLES_END // PAGE, LOADER_FIRMWARE_PERMANENT),  # ACPI tables
        (acpi_end_page, FRAMES_START // PAGE - acpi_end_page, LOADER_FREE),
        # Everything from the model's frame allocator on belongs to the model (images, kernel data, pool).
        (FRAMES_START // PAGE, ram_pages - FRAMES_START // PAGE, LOADER_MEMORY_DATA),
    ]
    return [(b, n, t) for b, n, t in spans if n > 0]


def e820_map(k) -> list[tuple[int, int, int]]:
    """(base, length, type) of physical memory as the firmware reports it: RAM with the ACPI tables reclaimable."""
    ram = k.mem.ram.size
    if k.acpi is None:
        return [(0, ram, E820_RAM)]
    start = k.acpi.base_gpa
    end = (start + len(k.acpi.blob) + PAGE - 1) & ~(PAGE - 1)
    return [(0, start, E820_RAM), (start, end - start, E820_ACPI), (end, ram - end, E820_RAM)]


def _list_init(k, head: int) -> None:
    k.mem.vput(head, 8, head)
    k.mem.vput(head + 8, 8, head)


def build_loader_block(k) -> int:
    """Allocate and fill the loader block for kernel ``k``; returns its address."""
    m = k.mem
    lb_struct = k.target.structs["loader_block"]
    size = int(lb_struct.constants.get("size", 0x100))
    lb = m.alloc(max(size, 0x100))
    put = k._put_field
    put(lb, "loader_block", "OsMajorVersion", k.os_version[0])
    put(lb, "loader_block", "OsMinorVersion", k.os_version[1])
    put(lb, "loader_block", "Size", size)
    for head in ("LoadOrderListHead", "MemoryDescriptorListHead"):
        if k.has("loader_block", head):
            _list_init(k, lb + k.s("loader_block", head))
    if k.has("loader_block", "MemoryDescriptorListHead"):
        _memory_descriptors(k, lb + k.s("loader_block", "MemoryDescriptorListHead"))
    put(lb, "loader_block", "Prcb", k.prcb)
    put(lb, "loader_block", "Thread", k.thread)
    put(lb, "loader_block", "Process", k.process)
    put(lb, "loader_block", "KernelStack", k.stack_top)
    options = m.alloc(0x1000)
    m.vwrite(options, str(k.kernel_data("boot").get("load_options", "")).encode("ascii") + b"\0")
    put(lb, "loader_block", "LoadOptions", options)
    ext_struct = k.target.structs["loader_extension"]
    ext_size = int(ext_struct.constants.get("size", 0x100))
    ext = m.alloc(ext_size)
    k._put_field(ext, "loader_extension", "Size", ext_size)
    put(lb, "loader_block", "Extension", ext)
    put(lb, "loader_block", "FirmwareInformation", 1 if k.firmware_efi else 0)
    put(lb, "loader_block", "MachineType", int(k.kernel_data("boot").get("machine_type", 0)))
    put(lb, "loader_block", "ConfigurationRoot", build_configuration_tree(k))
    return lb


def _memory_descriptors(k, head: int) -> None:
    size = k.L.size("memory_allocation_descriptor")
    spans = memory_map(k)
    block = k.mem.alloc(size * len(spans))
    for i, (base, count, kind) in enumerate(spans):
        d = block + i * size
        k.put(d, "memory_allocation_descriptor", "MemoryType", kind)
        k.put(d, "memory_allocation_descriptor", "BasePage", base)
        k.put(d, "memory_allocation_descriptor", "PageCount", count)
        gdata.list_insert_tail(k, head, d + k.L.off("memory_allocation_descriptor", "ListEntry"))
    k.memory_descriptor_list = head


def build_configuration_tree(k) -> int:
    """System root → "ACPI BIOS" adapter (Class 3, Type 12) whose data points the HAL at the XSDT."""
    m = k.mem
    ccd = k.target.structs["configuration_component_data"]
    node_size = int(ccd.constants.get("size", 0x48))
    acpi = k.target.structs["acpi_bios_node"].constants
    root = m.alloc(node_size)
    node = m.alloc(node_size)
    ident = m.alloc(0x1000)
    name = str(acpi.get("identifier", "ACPI BIOS")).encode() + b"\0"
    m.vwrite(ident, name)
    multi = int(acpi.get("multi_node_offset", 0x1C))
    entries = e820_map(k)
    data = m.alloc(0x1000)
    node_len = 16 + E820_ENTRY * len(entries)
    # CM_PARTIAL_RESOURCE_LIST: Version, Revision, Count=1; one CmResourceTypeDeviceSpecific (5) descriptor whose
    # DataSize covers the ACPI_BIOS_MULTI_NODE that follows at multi_node_offset.
    m.vwrite(data, struct.pack("<HHI", 1, 1, 1) + struct.pack("<BBHIII", 5, 0, 0, node_len, 0, 0))
    m.vput(data + multi + k.s("acpi_bios_node", "RsdtAddress"), 8, k.acpi_root_gpa)
    m.vput(data + multi + k.s("acpi_bios_node", "Count"), 8, len(entries))
    for i, (base, length, kind) in enumerate(entries):
        m.vwrite(data + multi + 16 + E820_ENTRY * i, struct.pack("<QQQ", base, length, kind))
    put = k._put_field
    put(root, "configuration_component_data", "Child", node)
    put(root, "configuration_component_data", "Class", 0)  # SystemClass
    put(node, "configuration_component_data", "Parent", root)
    put(node, "configuration_component_data", "Class", int(acpi.get("component_class", 3)))
    put(node, "configuration_component_data", "Type", int(acpi.get("component_type", 12)))
    put(node, "configuration_component_data", "Identifier", ident)
    put(node, "configuration_component_data", "IdentifierLength", len(name))
    put(node, "configuration_component_data", "ConfigurationData", data)
    put(node, "configuration_component_data", "ConfigurationDataLength", multi + node_len)
    k.config_root = root
    k.acpi_bios_node = node
    return root
