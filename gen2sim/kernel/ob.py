"""Object manager (Ob): object bodies with pointer counts, object types, the kernel handle table.

Objects the model knows are those it created: ``ObCreateObject`` bodies, driver and device objects, registry keys
(through their handles).  Each has a pointer count; reaching zero deletes an ``ObCreateObject`` body.  Referencing
something that is not an object, or dereferencing below zero, is the checked kernel's assertion (the real kernel
would corrupt an object header).  Handles are kernel handles (values with bit 63 set would be OBJ_KERNEL_HANDLE on
NT; the model hands out small multiples of 4 from 0x80000004 up, deterministic).
"""

from __future__ import annotations

from . import checked, pool
from .decl import export

STATUS_SUCCESS = 0
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_OBJECT_TYPE_MISMATCH = 0xC0000024
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
TAG_OBJECT = 0x6A624F20  # ' Obj'
FIRST_HANDLE = 0xFFFF_FFFF_8000_0004


def _ob(k) -> dict:
    return k.subsystem("ob", lambda: {"objects": {}, "types": {}, "handles": {}, "next_handle": FIRST_HANDLE})


def object_type(k, name: str) -> int:
    """The model's OBJECT_TYPE block for ``name`` (created on first use)."""
    types = _ob(k)["types"]
    for va, tname in types.items():
        if tname == name:
            return va
    va = pool.get(k).allocate(0, 0x100, TAG_OBJECT, None)
    types[va] = name
    return va


def track(k, body: int, kind: str, type_va: int = 0, owned: bool = False) -> None:
    """Register an object the kernel created (pointer count 1)."""
    _ob(k)["objects"][body] = {"kind": kind, "type": type_va, "count": 1, "owned": owned}


def open_handle(k, target, kind: str) -> int:
    """A new kernel handle for ``target`` (an object body or a model-side object such as a registry key)."""
    ob = _ob(k)
    handle = ob["next_handle"]
    ob["next_handle"] += 4
    ob["handles"][handle] = (kind, target)
    return handle


def lookup_handle(k, handle: int, kind: str | None = None):
    """The (kind, target) of an open handle, or ``None``."""
    entry = _ob(k)["handles"].get(handle)
    if entry is None or (kind is not None and entry[0] != kind):
        return None
    return entry


def close_handle(k, handle: int) -> int:
    """Close a handle: STATUS_SUCCESS or STATUS_INVALID_HANDLE."""
    entry = _ob(k)["handles"].pop(handle, None)
    if entry is None:
        return STATUS_INVALID_HANDLE
    kind, target = entry
    if kind == "object":
        dereference(k, target, "ZwClose")
    return STATUS_SUCCESS


def dereference(k, body: int, name: str) -> int:
    """One pointer fewer; an ``ObCreateObject`` body whose count reaches zero is deleted."""
    obj = _ob(k)["objects"].get(body)
    if obj is None or obj["count"] <= 0:
        raise checked.assertion(k, f"{name}({body:#x}): not a referenced object")
    obj["count"] -= 1
    if obj["count"] == 0 and obj["owned"]:
        del _ob(k)["objects"][body]
        pool.get(k).free(body, None)
    return obj["count"]


@export("NTSTATUS ObCreateObject(KPROCESSOR_MODE ProbeMode, POBJECT_TYPE ObjectType, POBJECT_ATTRIBUTES ObjectAttributes, "
        "KPROCESSOR_MODE OwnershipMode, PVOID ParseContext, ULONG ObjectBodySize, ULONG PagedPoolCharge, "
        "ULONG NonPagedPoolCharge, PVOID* Object)", irql="apc")
def ObCreateObject(k, ProbeMode, ObjectType, ObjectAttributes, OwnershipMode, ParseContext, ObjectBodySize,
                   PagedPoolCharge, NonPagedPoolCharge, Object):
    """A zeroed object body of a known type, pointer count 1."""
    if ObjectType not in _ob(k)["types"]:
        raise checked.assertion(k, f"ObCreateObject: {ObjectType:#x} is not an object type")
    body = pool.get(k).allocate(0, max(ObjectBodySize, 1), TAG_OBJECT, k.caller_function)
    if not body:
        return STATUS_INSUFFICIENT_RESOURCES
    track(k, body, _ob(k)["types"][ObjectType], ObjectType, owned=True)
    k.mem.vput(Object, 8, body)
    return STATUS_SUCCESS


@export("NTSTATUS ObInsertObject(PVOID Object, PACCESS_STATE PassedAccessState, ACCESS_MASK DesiredAccess, "
        "ULONG ObjectPointerBias, PVOID* NewObject, PHANDLE Handle)", irql="passive")
def ObInsertObject(k, Object, PassedAccessState, DesiredAccess, ObjectPointerBias, NewObject, Handle):
    """Enter the object in the handle table: a handle (it holds the creation reference) plus ``Bias`` pointers."""
    obj = _ob(k)["objects"].get(Object)
    if obj is None:
        raise checked.assertion(k, f"ObInsertObject({Object:#x}): not an object from ObCreateObject")
    obj["count"] += ObjectPointerBias
    if NewObject:
        k.mem.vput(NewObject, 8, Object)
    if Handle:
        k.mem.vput(Handle, 8, open_handle(k, Object, "object"))
    return STATUS_SUCCESS


@export("NTSTATUS ObReferenceObjectByPointer(PVOID Object, ACCESS_MASK DesiredAccess, POBJECT_TYPE ObjectType, "
        "KPROCESSOR_MODE AccessMode)", irql="dispatch")
def ObReferenceObjectByPointer(k, Object, DesiredAccess, ObjectType, AccessMode):
    """One pointer more when the object is of ``ObjectType`` (or no type is asked)."""
    obj = _ob(k)["objects"].get(Object)
    if obj is None:
        raise checked.assertion(k, f"ObReferenceObjectByPointer({Object:#x}): not an object")
    if ObjectType and obj["type"] != ObjectType:
        return STATUS_OBJECT_TYPE_MISMATCH
    obj["count"] += 1
    return STATUS_SUCCESS


@export("LONG_PTR ObfReferenceObject(PVOID Object)", irql="dispatch")
def ObfReferenceObject(k, Object):
    """One pointer more; returns the new count."""
    obj = _ob(k)["objects"].get(Object)
    if obj is None:
        raise checked.assertion(k, f"ObfReferenceObject({Object:#x}): not an object")
    obj["count"] += 1
    return obj["count"]


@export("LONG_PTR ObfDereferenceObject(PVOID Object)", irql="dispatch")
def ObfDereferenceObject(k, Object):
    """One pointer fewer; returns the new count."""
    return dereference(k, Object, "ObfDereferenceObject")


@export("VOID ObDereferenceObject(PVOID Object)", irql="dispatch")
def ObDereferenceObject(k, Object):
    """One pointer fewer."""
    dereference(k, Object, "ObDereferenceObject")
