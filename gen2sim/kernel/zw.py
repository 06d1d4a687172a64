"""Native registry calls (Zw*Key, ZwClose) over the in-model registry (``registry.py``).

Key handles live in the object manager's handle table.  The information classes and their layouts are the WDK's
(``[kernel.key_value_*]`` and ``[kernel.key_*]`` sections); a buffer too small for the fixed part answers
STATUS_BUFFER_TOO_SMALL, one too small for the name or data STATUS_BUFFER_OVERFLOW with the fixed part filled, and
``ResultLength`` always holds the size needed.  All of them run at PASSIVE_LEVEL only (DDI rule IrqlZwPassive).
"""

from __future__ import annotations

from . import gdata, ob, registry
from .decl import declare, export

STATUS_SUCCESS = 0
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_NO_MORE_ENTRIES = 0x8000001A
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_BUFFER_TOO_SMALL = 0xC0000023
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_INVALID_INFO_CLASS = 0xC0000003
REG_CREATED_NEW_KEY, REG_OPENED_EXISTING_KEY = 1, 2
KEY_BASIC, KEY_NODE, KEY_FULL = 0, 1, 2
VALUE_BASIC, VALUE_FULL, VALUE_PARTIAL = 0, 1, 2


def _path(k, attributes: int) -> str | None:
    """The absolute key path an OBJECT_ATTRIBUTES names (relative to RootDirectory when set)."""
    name = gdata.unicode_string(k, k.get(attributes, "object_attributes", "ObjectName")) or ""
    root = k.get(attributes, "object_attributes", "RootDirectory")
    if root:
        entry = ob.lookup_handle(k, root, "key")
        if entry is None:
            return None
        return f"{entry[1].path}\\{name}" if name else entry[1].path
    return name


def _key(k, handle: int):
    entry = ob.lookup_handle(k, handle, "key")
    return None if entry is None else entry[1]


@export("NTSTATUS ZwOpenKey(PHANDLE KeyHandle, ACCESS_MASK DesiredAccess, POBJECT_ATTRIBUTES ObjectAttributes)",
        irql="passive", rule="IrqlZwPassive")
def ZwOpenKey(k, KeyHandle, DesiredAccess, ObjectAttributes):
    """Open an existing key."""
    path = _path(k, ObjectAttributes)
    if path is None:
        return STATUS_INVALID_HANDLE
    key = registry.get(k).find(path)
    if key is None:
        return STATUS_OBJECT_NAME_NOT_FOUND
    k.mem.vput(KeyHandle, 8, ob.open_handle(k, key, "key"))
    return STATUS_SUCCESS


@export("NTSTATUS ZwCreateKey(PHANDLE KeyHandle, ACCESS_MASK DesiredAccess, POBJECT_ATTRIBUTES ObjectAttributes, "
        "ULONG TitleIndex, PUNICODE_STRING Class, ULONG CreateOptions, PULONG Disposition)", irql="passive",
        rule="IrqlZwPassive")
def ZwCreateKey(k, KeyHandle, DesiredAccess, ObjectAttributes, TitleIndex, Class, CreateOptions, Disposition):
    """Open a key, creating it when its parent exists."""
    path = _path(k, ObjectAttributes)
    if path is None:
        return STATUS_INVALID_HANDLE
    reg = registry.get(k)
    key = reg.find(path)
    disposition = REG_OPENED_EXISTING_KEY
    if key is None:
        parent = path.rstrip("\\").rsplit("\\", 1)[0]
        if reg.find(parent) is None:
            return STATUS_OBJECT_NAME_NOT_FOUND
        key = reg.create(path, volatile=bool(CreateOptions & 1))
        disposition = REG_CREATED_NEW_KEY
    k.mem.vput(KeyHandle, 8, ob.open_handle(k, key, "key"))
    if Disposition:
        k.mem.vput(Disposition, 4, disposition)
    return STATUS_SUCCESS


@export("NTSTATUS ZwClose(HANDLE Handle)", irql="passive", rule="IrqlZwPassive")
def ZwClose(k, Handle):
    """Close a handle (a key or an object)."""
    return ob.close_handle(k, Handle)


def _value_info(k, cls: int, name: str, kind: int, data: bytes, buf: int, length: int, result: int) -> int:
    """Fill a KEY_VALUE_*_INFORMATION; returns the status."""
    wname = name.encode("utf-16-le")
    if cls == VALUE_PARTIAL:
        s, fixed = "key_value_partial_information", k.L.off("key_value_partial_information", "Data")
        need = fixed + len(data)
        fields = {"TitleIndex": 0, "Type": kind, "DataLength": len(data)}
        tail = [(fixed, data)]
    elif cls == VALUE_FULL:
        s, fixed = "key_value_full_information", k.L.off("key_value_full_information", "Name")
        data_off = (fixed + len(wname) + 7) & ~7
        need = data_off + len(data)
        fields = {"TitleIndex": 0, "Type": kind, "DataOffset": data_off, "DataLength": len(data),
                  "NameLength": len(wname)}
        tail = [(fixed, wname), (data_off, data)]
    elif cls == VALUE_BASIC:
        s, fixed = "key_value_basic_information", k.L.off("key_value_basic_information", "Name")
        need = fixed + len(wname)
        fields = {"TitleIndex": 0, "Type": kind, "NameLength": len(wname)}
        tail = [(fixed, wname)]
    else:
        return STATUS_INVALID_INFO_CLASS
    return _fill_info(k, buf, length, result, s, fixed, need, fields, tail)


def _fill_info(k, buf: int, length: int, result: int, s: str, fixed: int, need: int, fields: dict,
               tail: list) -> int:
    """Write a variable-length information structure the Zw*Key calls return: the size needed to ``result``;
    the fixed part (``fields`` of structure ``s``) if ``length`` holds it, else STATUS_BUFFER_TOO_SMALL; the
    variable part (``tail``: offset, bytes) if it fits, else STATUS_BUFFER_OVERFLOW (the fixed part stays)."""
    if result:
        k.mem.vput(result, 4, need)
    if length < fixed:
        return STATUS_BUFFER_TOO_SMALL
    for f, v in fields.items():
        k.put(buf, s, f, v)
    if length < need:
        return STATUS_BUFFER_OVERFLOW
    for off, blob in tail:
        k.mem.vwrite(buf + off, blob)
    return STATUS_SUCCESS


@export("NTSTATUS ZwQueryValueKey(HANDLE KeyHandle, PUNICODE_STRING ValueName, "
        "KEY_VALUE_INFORMATION_CLASS KeyValueInformationClass, PVOID KeyValueInformation, ULONG Length, "
        "PULONG ResultLength)", irql="passive", rule="IrqlZwPassive")
def ZwQueryValueKey(k, KeyHandle, ValueName, KeyValueInformationClass, KeyValueInformation, Length, ResultLength):
    """A value of an open key in the asked information class."""
    key = _key(k, KeyHandle)
    if key is None:
        return STATUS_INVALID_HANDLE
    name = gdata.unicode_string(k, ValueName) or ""
    value = key.values.get(name.lower())
    if value is None:
        return STATUS_OBJECT_NAME_NOT_FOUND
    return _value_info(k, KeyValueInformationClass, value[0], value[1], value[2], KeyValueInformation, Length,
                       ResultLength)


@export("NTSTATUS ZwEnumerateValueKey(HANDLE KeyHandle, ULONG Index, "
        "KEY_VALUE_INFORMATION_CLASS KeyValueInformationClass, PVOID KeyValueInformation, ULONG Length, "
        "PULONG ResultLength)", irql="passive", rule="IrqlZwPassive")
def ZwEnumerateValueKey(k, KeyHandle, Index, KeyValueInformationClass, KeyValueInformation, Length, ResultLength):
    """The ``Index``-th value of an open key (creation order); STATUS_NO_MORE_ENTRIES past the last."""
    key = _key(k, KeyHandle)
    if key is None:
        return STATUS_INVALID_HANDLE
    values = list(key.values.values())
    if Index >= len(values):
        return STATUS_NO_MORE_ENTRIES
    name, kind, data = values[Index]
    return _value_info(k, KeyValueInformationClass, name, kind, data, KeyValueInformation, Length, ResultLength)


@export("NTSTATUS ZwSetValueKey(HANDLE KeyHandle, PUNICODE_STRING ValueName, ULONG TitleIndex, ULONG Type, "
        "PVOID Data, ULONG DataSize)", irql="passive", rule="IrqlZwPassive")
def ZwSetValueKey(k, KeyHandle, ValueName, TitleIndex, Type, Data, DataSize):
    """Create or replace a value of an open key."""
    key = _key(k, KeyHandle)
    if key is None:
        return STATUS_INVALID_HANDLE
    name = gdata.unicode_string(k, ValueName) or ""
    registry.Registry.set_value(key, name, Type, k.mem.vread(Data, DataSize) if DataSize else b"")
    return STATUS_SUCCESS


@export("NTSTATUS ZwDeleteValueKey(HANDLE KeyHandle, PUNICODE_STRING ValueName)", irql="passive",
        rule="IrqlZwPassive")
def ZwDeleteValueKey(k, KeyHandle, ValueName):
    """Delete a value of an open key."""
    key = _key(k, KeyHandle)
    if key is None:
        return STATUS_INVALID_HANDLE
    name = gdata.unicode_string(k, ValueName) or ""
    if key.values.pop(name.lower(), None) is None:
        return STATUS_OBJECT_NAME_NOT_FOUND
    return STATUS_SUCCESS


@export("NTSTATUS ZwQueryKey(HANDLE KeyHandle, KEY_INFORMATION_CLASS KeyInformationClass, PVOID KeyInformation, "
        "ULONG Length, PULONG ResultLength)", irql="passive", rule="IrqlZwPassive")
def ZwQueryKey(k, KeyHandle, KeyInformationClass, KeyInformation, Length, ResultLength):
    """Basic, node or full information about an open key (no class names, write time 0)."""
    key = _key(k, KeyHandle)
    if key is None:
        return STATUS_INVALID_HANDLE
    wname = key.name.encode("utf-16-le")
    if KeyInformationClass == KEY_BASIC:
        s = "key_basic_information"
        fixed = k.L.off(s, "Name")
        need, tail = fixed + len(wname), [(fixed, wname)]
        fields = {"LastWriteTime": 0, "TitleIndex": 0, "NameLength": len(wname)}
    elif KeyInformationClass == KEY_NODE:
        s = "key_node_information"
        fixed = k.L.off(s, "Name")
        need, tail = fixed + len(wname), [(fixed, wname)]
        fields = {"LastWriteTime": 0, "TitleIndex": 0, "ClassOffset": 0xFFFFFFFF, "ClassLength": 0,
                  "NameLength": len(wname)}
    elif KeyInformationClass == KEY_FULL:
        s = "key_full_information"
        fixed = need = k.L.off(s, "Class")
        tail = []
        subs = list(key.subkeys.values())
        vals = list(key.values.values())
        fields = {"LastWriteTime": 0, "TitleIndex": 0, "ClassOffset": 0xFFFFFFFF, "ClassLength": 0,
                  "SubKeys": len(subs), "MaxNameLen": max((2 * len(x.name) for x in subs), default=0),
                  "MaxClassLen": 0, "Values": len(vals),
                  "MaxValueNameLen": max((2 * len(v[0]) for v in vals), default=0),
                  "MaxValueDataLen": max((len(v[2]) for v in vals), default=0)}
    else:
        return STATUS_INVALID_INFO_CLASS
    return _fill_info(k, KeyInformation, Length, ResultLength, s, fixed, need, fields, tail)


declare("NTSTATUS ZwPowerInformation(POWER_INFORMATION_LEVEL InformationLevel, PVOID InputBuffer, "
        "ULONG InputBufferLength, PVOID OutputBuffer, ULONG OutputBufferLength)",
        "the power manager's information levels are not modelled", module=__name__, irql="passive")
declare("NTSTATUS ZwQueryLicenseValue(PUNICODE_STRING ValueName, PULONG Type, PVOID Data, ULONG DataSize, "
        "PULONG ResultDataSize)", "the licensing store (product policy) is not modelled", module=__name__,
        irql="passive")
