"""The kernel variables a HAL imports (HalDispatchTable, KiBugCheckData, IoAdapterObjectType ...).

The dispatch tables are laid out from the description: the header sections ``[hal_dispatch_table]`` /
``[hal_private_dispatch_table]`` where the HAL's C side reads them (Windows 7), else ``[kernel.hal_dispatch_table]``
/ ``[kernel.hal_private_dispatch_table]`` (ReactOS).  The kernel writes the table's Version and points every slot it
has a default for at that default: the kernel's routine when ``[kernel.dispatch_defaults]`` names it (declared in
``halstub.py``), else a recorder stub ("kernel default": it records the call and answers STATUS_NOT_IMPLEMENTED,
standing in for a default whose behaviour the model does not reproduce); slots without a default start at 0.
"""

from __future__ import annotations

from specs import SpecError

from . import ob
from .decl import variable

STATUS_NOT_IMPLEMENTED = 0xC0000002
TABLES = {"HalDispatchTable": "hal_dispatch_table", "HalPrivateDispatchTable": "hal_private_dispatch_table"}


def table_struct(k, variable_name: str):
    """The Struct describing dispatch-table variable ``variable_name`` on this target, or ``None``."""
    section = TABLES[variable_name]
    if section in k.target.structs:
        return k.target.structs[section]
    try:
        return k.L.struct(section)
    except SpecError:
        return None


def _default_slot(k, label: str):
    def default():
        k.call_record(label, k.args(4), "(kernel default) -> STATUS_NOT_IMPLEMENTED")
        return STATUS_NOT_IMPLEMENTED
    return default


def _init_table(variable_name: str):
    def init(k, va: int) -> None:
        table = table_struct(k, variable_name)
        if table is None:
            return
        k.mem.vwrite(va, bytes(int(table.constants["size"])))
        k.mem.vput(va + table.offset("Version"), 4, int(table.constants["version"]))
        defaults = k.state.setdefault("default_slots", {})
        routines = k.kernel_data("dispatch_defaults")
        for slot in table.slots(kernel_default=True):
            label = f"{variable_name}.{slot.name}"
            routine = routines.get(label)
            if routine is not None:
                # The kernel's own routine, declared with its behaviour (halstub.py).
                stub = k.import_address(routine) or k.unimplemented_stub(routine)
            else:
                stub = k._new_stub(f"{label} (kernel default)", _default_slot(k, label))
            defaults[stub] = label
            k.mem.vput(va + slot.offset, 8, stub)
    return init


def _table_size(variable_name: str):
    def size(k) -> int:
        table = table_struct(k, variable_name)
        return int(table.constants["size"]) if table is not None else 0x100
    return size


for _name in TABLES:
    variable(_name, "HAL_DISPATCH" if _name == "HalDispatchTable" else "HAL_PRIVATE_DISPATCH", _table_size(_name),
             module=__name__, init=_init_table(_name), note="Version and the kernel's default slots")

variable("KiBugCheckData", "ULONG_PTR[5]", 5 * 8, module=__name__,
         note="the bug-check code and parameters, published before callbacks run")
variable("IoAdapterObjectType", "POBJECT_TYPE", 8, module=__name__,
         init=lambda k, va: k.mem.vput(va, 8, ob.object_type(k, "Adapter")),
         note="the adapter object type (ObCreateObject accepts it)")
variable("KeNumberProcessors", "CCHAR", 4, module=__name__, init=lambda k, va: k.mem.vput(va, 1, 1),
         note="one processor")
variable("InitSafeBootMode", "ULONG", 4, module=__name__, note="0: not a safe-mode boot")
variable("KeLoaderBlock", "PLOADER_PARAMETER_BLOCK", 8, module=__name__,
         init=lambda k, va: k.mem.vput(va, 8, k.loader_block), note="the loader block (valid during boot)")
variable("KdComPortInUse", "PUCHAR", 8, module=__name__, note="NULL: no debug port in use")
variable("KeServiceDescriptorTable", "KSERVICE_TABLE_DESCRIPTOR[4]", 4 * 0x20, module=__name__,
         note="no system-service tables (the model runs no user mode): all zero")
