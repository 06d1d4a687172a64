"""Run-time library (Rtl): counted strings, memory, bitmaps, time conversion, resource encoding, assertions.

Behaviour follows the WDK documentation of each routine.  Bitmaps are RTL_BITMAP headers over the guest's ULONG
buffer, bit 0 the lowest bit of the first ULONG.  Times are 100 ns units since 1601-01-01 (UTC, no leap seconds).
"""

from __future__ import annotations

import datetime as dt
import struct

from . import checked, gdata
from .decl import declare, export

STATUS_SUCCESS = 0
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_INVALID_PARAMETER = 0xC000000D
NOT_FOUND = 0xFFFFFFFF
EPOCH = dt.datetime(1601, 1, 1)
CM_RESOURCE_TYPE_MEMORY, CM_RESOURCE_TYPE_MEMORY_LARGE = 3, 7
CM_RESOURCE_MEMORY_LARGE_40, CM_RESOURCE_MEMORY_LARGE_48, CM_RESOURCE_MEMORY_LARGE_64 = 0x200, 0x400, 0x800


# ---------------------------------------------------------------------------------------------------- strings
@export("VOID RtlInitUnicodeString(PUNICODE_STRING DestinationString, PCWSTR SourceString)")
def RtlInitUnicodeString(k, DestinationString, SourceString):
    """Point a UNICODE_STRING at a NUL-terminated wide string (Length without, MaximumLength with the NUL)."""
    n = 2 * len(gdata.read_wstr(k, SourceString)) if SourceString else 0
    gdata.set_counted(k, DestinationString, "unicode_string", SourceString, n, n + 2 if SourceString else 0)


@export("VOID RtlInitString(PSTRING DestinationString, PCSZ SourceString)")
def RtlInitString(k, DestinationString, SourceString):
    """Point a STRING at a NUL-terminated string."""
    n = len(k.mem.cstring(SourceString, 0xFFFF)) if SourceString else 0
    gdata.set_counted(k, DestinationString, "string", SourceString, n, n + 1 if SourceString else 0)


def _cmp(a: str, b: str) -> int:
    for x, y in zip(a, b):
        if x != y:
            return ord(x) - ord(y)
    return len(a) - len(b)


@export("LONG RtlCompareUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2, BOOLEAN CaseInSensitive)")
def RtlCompareUnicodeString(k, String1, String2, CaseInSensitive):
    """< 0, 0 or > 0 as String1 sorts before, equal to or after String2."""
    a, b = gdata.unicode_string(k, String1) or "", gdata.unicode_string(k, String2) or ""
    if CaseInSensitive:
        a, b = a.upper(), b.upper()
    return _cmp(a, b)


@export("BOOLEAN RtlEqualString(PCSTRING String1, PCSTRING String2, BOOLEAN CaseInSensitive)")
def RtlEqualString(k, String1, String2, CaseInSensitive):
    """Whether two counted strings are equal."""
    a, b = gdata.ansi_string(k, String1) or b"", gdata.ansi_string(k, String2) or b""
    if CaseInSensitive:
        a, b = a.upper(), b.upper()
    return 1 if a == b else 0


def _digits(value: int, base: int) -> str:
    out = ""
    while True:
        value, d = divmod(value, base)
        out = "0123456789ABCDEF"[d] + out
        if not value:
            return out


@export("NTSTATUS RtlIntegerToUnicodeString(ULONG Value, ULONG Base, PUNICODE_STRING String)")
def RtlIntegerToUnicodeString(k, Value, Base, String):
    """Digits of ``Value`` in base 2, 8, 10 or 16 (0 = 10) into the string's buffer."""
    base = Base or 10
    if base not in (2, 8, 10, 16):
        return STATUS_INVALID_PARAMETER
    text = _digits(Value, base).encode("utf-16-le")
    maximum = k.get(String, "unicode_string", "MaximumLength")
    if len(text) > maximum:
        return STATUS_BUFFER_OVERFLOW
    buf = k.get(String, "unicode_string", "Buffer")
    k.mem.vwrite(buf, text + (b"\0\0" if len(text) + 2 <= maximum else b""))
    k.put(String, "unicode_string", "Length", len(text))
    return STATUS_SUCCESS


# ---------------------------------------------------------------------------------------------------- memory
@export("VOID RtlCopyMemory(PVOID Destination, PVOID Source, SIZE_T Length)")
def RtlCopyMemory(k, Destination, Source, Length):
    """Copy ``Length`` bytes (overlap allowed: the x64 export is memmove)."""
    if Length:
        k.mem.vwrite(Destination, k.mem.vread(Source, Length))


@export("VOID RtlMoveMemory(PVOID Destination, PVOID Source, SIZE_T Length)")
def RtlMoveMemory(k, Destination, Source, Length):
    """Copy ``Length`` bytes (overlap allowed)."""
    if Length:
        k.mem.vwrite(Destination, k.mem.vread(Source, Length))


@export("VOID RtlCopyMemoryNonTemporal(PVOID Destination, PVOID Source, SIZE_T Length)")
def RtlCopyMemoryNonTemporal(k, Destination, Source, Length):
    """Copy ``Length`` bytes (non-temporal stores are a cache hint only)."""
    if Length:
        k.mem.vwrite(Destination, k.mem.vread(Source, Length))


@export("VOID RtlZeroMemory(PVOID Destination, SIZE_T Length)")
def RtlZeroMemory(k, Destination, Length):
    """Zero ``Length`` bytes."""
    if Length:
        k.mem.vwrite(Destination, bytes(Length))


@export("VOID RtlFillMemory(PVOID Destination, SIZE_T Length, UCHAR Fill)")
def RtlFillMemory(k, Destination, Length, Fill):
    """Fill ``Length`` bytes with ``Fill``."""
    if Length:
        k.mem.vwrite(Destination, bytes([Fill]) * Length)


@export("SIZE_T RtlCompareMemory(PVOID Source1, PVOID Source2, SIZE_T Length)")
def RtlCompareMemory(k, Source1, Source2, Length):
    """The number of leading bytes that match."""
    a, b = k.mem.vread(Source1, Length), k.mem.vread(Source2, Length)
    return next((i for i in range(Length) if a[i] != b[i]), Length)


@export("LARGE_INTEGER RtlConvertUlongToLargeInteger(ULONG UnsignedInteger)")
def RtlConvertUlongToLargeInteger(k, UnsignedInteger):
    """The ULONG widened."""
    return UnsignedInteger


# ---------------------------------------------------------------------------------------------------- bitmaps
class _Bits:
    """An RTL_BITMAP's bits, read once and written back on request."""

    def __init__(self, k, header: int) -> None:
        self.k = k
        self.size = k.get(header, "rtl_bitmap", "SizeOfBitMap")
        self.buf = k.get(header, "rtl_bitmap", "Buffer")
        self.nbytes = ((self.size + 31) // 32) * 4
        self.value = int.from_bytes(k.mem.vread(self.buf, self.nbytes), "little") if self.nbytes else 0

    def test(self, i: int) -> bool:
        return bool(self.value >> i & 1)

    def set_range(self, start: int, count: int, on: bool) -> None:
        if start + count > self.size:
            raise checked.assertion(self.k, f"bitmap range {start}+{count} beyond its {self.size} bits")
        mask = ((1 << count) - 1) << start
        self.value = self.value | mask if on else self.value & ~mask
        self.k.mem.vwrite(self.buf, self.value.to_bytes(self.nbytes, "little"))

    def clear_run(self, start: int) -> tuple[int, int]:
        """(index, length) of the first run of clear bits at or after ``start``; (NOT_FOUND, 0) when none."""
        i = start
        while i < self.size and self.test(i):
            i += 1
        if i >= self.size:
            return NOT_FOUND, 0
        j = i
        while j < self.size and not self.test(j):
            j += 1
        return i, j - i


@export("VOID RtlInitializeBitMap(PRTL_BITMAP BitMapHeader, PULONG BitMapBuffer, ULONG SizeOfBitMap)")
def RtlInitializeBitMap(k, BitMapHeader, BitMapBuffer, SizeOfBitMap):
    """Set up a header over a caller's buffer (its bits are left as they are)."""
    k.put(BitMapHeader, "rtl_bitmap", "SizeOfBitMap", SizeOfBitMap)
    k.put(BitMapHeader, "rtl_bitmap", "Buffer", BitMapBuffer)


@export("VOID RtlClearAllBits(PRTL_BITMAP BitMapHeader)")
def RtlClearAllBits(k, BitMapHeader):
    """Clear every bit."""
    b = _Bits(k, BitMapHeader)
    b.set_range(0, b.size, False)


@export("VOID RtlSetAllBits(PRTL_BITMAP BitMapHeader)")
def RtlSetAllBits(k, BitMapHeader):
    """Set every bit."""
    b = _Bits(k, BitMapHeader)
    b.set_range(0, b.size, True)


@export("VOID RtlClearBits(PRTL_BITMAP BitMapHeader, ULONG StartingIndex, ULONG NumberToClear)")
def RtlClearBits(k, BitMapHeader, StartingIndex, NumberToClear):
    """Clear a range of bits."""
    _Bits(k, BitMapHeader).set_range(StartingIndex, NumberToClear, False)


@export("VOID RtlSetBits(PRTL_BITMAP BitMapHeader, ULONG StartingIndex, ULONG NumberToSet)")
def RtlSetBits(k, BitMapHeader, StartingIndex, NumberToSet):
    """Set a range of bits."""
    _Bits(k, BitMapHeader).set_range(StartingIndex, NumberToSet, True)


@export("VOID RtlSetBit(PRTL_BITMAP BitMapHeader, ULONG BitNumber)")
def RtlSetBit(k, BitMapHeader, BitNumber):
    """Set one bit."""
    _Bits(k, BitMapHeader).set_range(BitNumber, 1, True)


@export("VOID RtlClearBit(PRTL_BITMAP BitMapHeader, ULONG BitNumber)")
def RtlClearBit(k, BitMapHeader, BitNumber):
    """Clear one bit."""
    _Bits(k, BitMapHeader).set_range(BitNumber, 1, False)


@export("BOOLEAN RtlTestBit(PRTL_BITMAP BitMapHeader, ULONG BitNumber)")
def RtlTestBit(k, BitMapHeader, BitNumber):
    """Whether a bit is set."""
    b = _Bits(k, BitMapHeader)
    if BitNumber >= b.size:
        raise checked.assertion(k, f"RtlTestBit: bit {BitNumber} beyond the bitmap's {b.size} bits")
    return 1 if b.test(BitNumber) else 0


@export("BOOLEAN RtlAreBitsClear(PRTL_BITMAP BitMapHeader, ULONG StartingIndex, ULONG Length)")
def RtlAreBitsClear(k, BitMapHeader, StartingIndex, Length):
    """Whether every bit of the range is clear (FALSE for a range outside the bitmap)."""
    b = _Bits(k, BitMapHeader)
    if StartingIndex + Length > b.size:
        return 0
    return 1 if not (b.value >> StartingIndex) & ((1 << Length) - 1) else 0


@export("ULONG RtlFindClearBitsAndSet(PRTL_BITMAP BitMapHeader, ULONG NumberToFind, ULONG HintIndex)")
def RtlFindClearBitsAndSet(k, BitMapHeader, NumberToFind, HintIndex):
    """Find a run of ``NumberToFind`` clear bits from the hint (wrapping to 0), set it; 0xFFFFFFFF if none."""
    b = _Bits(k, BitMapHeader)
    if NumberToFind == 0 or NumberToFind > b.size:
        return NOT_FOUND
    hint = HintIndex if HintIndex < b.size else 0
    for start in list(range(hint, b.size)) + list(range(0, hint)):
        if start + NumberToFind <= b.size and not (b.value >> start) & ((1 << NumberToFind) - 1):
            b.set_range(start, NumberToFind, True)
            return start
    return NOT_FOUND


@export("ULONG RtlFindFirstRunClear(PRTL_BITMAP BitMapHeader, PULONG StartingIndex)")
def RtlFindFirstRunClear(k, BitMapHeader, StartingIndex):
    """Length of the first run of clear bits (its index into ``*StartingIndex``); 0 when none."""
    index, length = _Bits(k, BitMapHeader).clear_run(0)
    k.mem.vput(StartingIndex, 4, index if length else 0)
    return length


@export("ULONG RtlFindNextForwardRunClear(PRTL_BITMAP BitMapHeader, ULONG FromIndex, PULONG StartingRunIndex)")
def RtlFindNextForwardRunClear(k, BitMapHeader, FromIndex, StartingRunIndex):
    """Length of the next run of clear bits at or after ``FromIndex`` (its index into ``*StartingRunIndex``)."""
    index, length = _Bits(k, BitMapHeader).clear_run(FromIndex)
    k.mem.vput(StartingRunIndex, 4, index if length else 0)
    return length


@export("ULONG RtlNumberOfClearBits(PRTL_BITMAP BitMapHeader)")
def RtlNumberOfClearBits(k, BitMapHeader):
    """How many bits are clear."""
    b = _Bits(k, BitMapHeader)
    return b.size - bin(b.value & ((1 << b.size) - 1)).count("1")


@export("CCHAR RtlFindLeastSignificantBit(ULONGLONG Set)")
def RtlFindLeastSignificantBit(k, Set):
    """Index of the lowest set bit; -1 when none."""
    return (Set & -Set).bit_length() - 1 if Set else -1


@export("UCHAR RtlNumberOfSetBitsUlongPtr(ULONG_PTR Target)")
def RtlNumberOfSetBitsUlongPtr(k, Target):
    """How many bits of a ULONG_PTR are set."""
    return bin(Target).count("1")


# ---------------------------------------------------------------------------------------------------- time
_TF = ("Year", "Month", "Day", "Hour", "Minute", "Second", "Milliseconds", "Weekday")


@export("BOOLEAN RtlTimeFieldsToTime(PTIME_FIELDS TimeFields, PLARGE_INTEGER Time)")
def RtlTimeFieldsToTime(k, TimeFields, Time):
    """TIME_FIELDS to 100 ns since 1601 (Weekday ignored); FALSE for an impossible date or time."""
    f = {n: k.get(TimeFields, "time_fields", n) for n in _TF}
    try:
        when = dt.datetime(f["Year"], f["Month"], f["Day"], f["Hour"], f["Minute"], f["Second"],
                           f["Milliseconds"] * 1000)
    except ValueError:
        return 0
    if f["Year"] < 1601:
        return 0
    delta = when - EPOCH
    k.mem.vput(Time, 8, (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10)
    return 1


@export("VOID RtlTimeToTimeFields(PLARGE_INTEGER Time, PTIME_FIELDS TimeFields)")
def RtlTimeToTimeFields(k, Time, TimeFields):
    """100 ns since 1601 to TIME_FIELDS (Weekday 0 = Sunday)."""
    (ticks,) = struct.unpack("<q", k.mem.vread(Time, 8))
    when = EPOCH + dt.timedelta(microseconds=max(ticks, 0) // 10)
    values = (when.year, when.month, when.day, when.hour, when.minute, when.second, when.microsecond // 1000,
              (when.weekday() + 1) % 7)
    for name, value in zip(_TF, values):
        k.put(TimeFields, "time_fields", name, value)


# ---------------------------------------------------------------------------------------------------- resources
@export("NTSTATUS RtlCmEncodeMemIoResource(PCM_PARTIAL_RESOURCE_DESCRIPTOR Descriptor, UCHAR Type, ULONGLONG Length, "
        "ULONGLONG Start)")
def RtlCmEncodeMemIoResource(k, Descriptor, Type, Length, Start):
    """Encode a memory range in a partial descriptor: a 32-bit length as is, a longer one in the large-memory form
    (length >> 8, >> 16 or >> 32 with the matching flag), which must then be a multiple of that unit."""
    if Type == CM_RESOURCE_TYPE_MEMORY and Length <= 0xFFFFFFFF:
        flags, stored = 0, Length
    elif Type in (CM_RESOURCE_TYPE_MEMORY, CM_RESOURCE_TYPE_MEMORY_LARGE):
        for shift, flag in ((8, CM_RESOURCE_MEMORY_LARGE_40), (16, CM_RESOURCE_MEMORY_LARGE_48),
                            (32, CM_RESOURCE_MEMORY_LARGE_64)):
            if Length >> shift <= 0xFFFFFFFF:
                break
        if Length & ((1 << shift) - 1):
            return STATUS_INVALID_PARAMETER
        flags, stored, Type = flag, Length >> shift, CM_RESOURCE_TYPE_MEMORY_LARGE
    else:
        return STATUS_INVALID_PARAMETER
    k.mem.vput(Descriptor, 1, Type)
    k.mem.vput(Descriptor + 2, 2, (k.mem.vu(Descriptor + 2, 2) & ~0xE00) | flags)
    k.mem.vwrite(Descriptor + 4, struct.pack("<QI", Start, stored))
    return STATUS_SUCCESS


# ---------------------------------------------------------------------------------------------------- checks
@export("VOID RtlAssert(PVOID FailedAssertion, PVOID FileName, ULONG LineNumber, PCHAR Message)")
def RtlAssert(k, FailedAssertion, FileName, LineNumber, Message):
    """A checked HAL's failed ASSERT: the boot ends naming the assertion, file and line."""
    text = k.mem.cstring(FailedAssertion, 512) if FailedAssertion else "?"
    where = k.mem.cstring(FileName, 512) if FileName else "?"
    message = f" ({k.mem.cstring(Message, 512)})" if Message else ""
    raise checked.assertion(k, f"ASSERT({text}) failed at {where}:{LineNumber}{message}")


declare("NTSTATUS RtlQueryRegistryValues(ULONG RelativeTo, PCWSTR Path, PRTL_QUERY_REGISTRY_TABLE QueryTable, "
        "PVOID Context, PVOID Environment)",
        "query tables (callbacks, direct values, defaults per flag) are not modelled", module=__name__,
        irql="passive")
declare("NTSTATUS LdrResSearchResource(PVOID DllHandle, PULONG_PTR ResourceIdPath, ULONG ResourceIdPathLength, "
        "ULONG Flags, PVOID* Resource, PULONG_PTR Size, PUNICODE_STRING Reserve1, PVOID Reserve2)",
        "image resource lookup is not modelled", module=__name__, irql="passive")
