/*
 * cmos.c -- the MC146818 real-time clock and CMOS RAM behind index port 0x70 and data port 0x71.
 *
 * An index write followed by a data access is one operation: interrupts are held off across the pair so the
 * clock interrupt (which reads register C) cannot move the index in between.
 */
#include "halp.h"

/* How long HalQueryRealTimeClock waits for an update to finish: UIP lasts at most 244 us plus the update's own
 * 1984 us in the slowest divider setting. */
#define HALP_RTC_UPDATE_WAIT_US 2500
#define HALP_RTC_READ_ATTEMPTS 3

UCHAR HalpReadCmos(UCHAR Register)
{
    ULONG64 Flags = HalpDisableInterrupts();
    UCHAR Value;

    HalpWritePortUchar(CMOS_ADDRESS_PORT, Register);
    Value = HalpReadPortUchar(CMOS_DATA_PORT);
    HalpRestoreInterrupts(Flags);
    return Value;
}

VOID HalpWriteCmos(UCHAR Register, UCHAR Value)
{
    ULONG64 Flags = HalpDisableInterrupts();

    HalpWritePortUchar(CMOS_ADDRESS_PORT, Register);
    HalpWritePortUchar(CMOS_DATA_PORT, Value);
    HalpRestoreInterrupts(Flags);
}

/* The century byte: where the FADT says (ACPI "CENTURY"), else the PC/AT location. */
static UCHAR HalpCenturyRegister(VOID)
{
    return HalpFadt.Century ? HalpFadt.Century : RTC_DEFAULT_CENTURY_REGISTER;
}

static UCHAR HalpFromBcd(UCHAR Value)
{
    return (UCHAR)((Value >> 4) * 10 + (Value & 0x0F));
}

static UCHAR HalpToBcd(UCHAR Value)
{
    return (UCHAR)(((Value / 10) << 4) | (Value % 10));
}

/* Register B decides the format of every time register: BCD or binary, 12- or 24-hour. */
static UCHAR HalpRtcDecode(UCHAR Raw, UCHAR RegisterB)
{
    return (RegisterB & RTC_REG_B_BINARY) ? Raw : HalpFromBcd(Raw);
}

static UCHAR HalpRtcEncode(UCHAR Value, UCHAR RegisterB)
{
    return (RegisterB & RTC_REG_B_BINARY) ? Value : HalpToBcd(Value);
}

static UCHAR HalpRtcDecodeHour(UCHAR Raw, UCHAR RegisterB)
{
    UCHAR Hour;

    if (RegisterB & RTC_REG_B_24_HOUR)
        return HalpRtcDecode(Raw, RegisterB);
    Hour = HalpRtcDecode(Raw & ~RTC_HOUR_PM, RegisterB) % 12;   /* 12 AM is hour 0 */
    return (Raw & RTC_HOUR_PM) ? (UCHAR)(Hour + 12) : Hour;
}

static UCHAR HalpRtcEncodeHour(UCHAR Hour, UCHAR RegisterB)
{
    UCHAR Hour12;

    if (RegisterB & RTC_REG_B_24_HOUR)
        return HalpRtcEncode(Hour, RegisterB);
    Hour12 = (Hour % 12) ? (UCHAR)(Hour % 12) : 12;
    return (UCHAR)(HalpRtcEncode(Hour12, RegisterB) | (Hour >= 12 ? RTC_HOUR_PM : 0));
}

BOOLEAN NTAPI HalQueryRealTimeClock(PTIME_FIELDS Time)
{
    UCHAR RegisterB, Seconds, DayOfWeek;
    ULONG Waited, Attempt;

    /* An update may slip in between the UIP check and the last read; the seconds register tells, and a second
     * attempt then falls well clear of the next update. */
    for (Attempt = 0; Attempt < HALP_RTC_READ_ATTEMPTS; Attempt++)
    {
        /* Registers are unstable while an update is in progress: wait for UIP to clear, but not forever (a
         * missing RTC reads 0xFF, UIP included). */
        for (Waited = 0; HalpReadCmos(RTC_REGISTER_A) & RTC_REG_A_UIP; Waited++)
        {
            if (Waited >= HALP_RTC_UPDATE_WAIT_US)
                return FALSE;
            KeStallExecutionProcessor(1);
        }

        RegisterB = HalpReadCmos(RTC_REGISTER_B);
        Seconds = HalpReadCmos(RTC_REGISTER_SECONDS);
        Time->Second = HalpRtcDecode(Seconds, RegisterB);
        Time->Minute = HalpRtcDecode(HalpReadCmos(RTC_REGISTER_MINUTES), RegisterB);
        Time->Hour = HalpRtcDecodeHour(HalpReadCmos(RTC_REGISTER_HOURS), RegisterB);
        Time->Day = HalpRtcDecode(HalpReadCmos(RTC_REGISTER_DAY_OF_MONTH), RegisterB);
        Time->Month = HalpRtcDecode(HalpReadCmos(RTC_REGISTER_MONTH), RegisterB);
        Time->Year = (CSHORT)(HalpRtcDecode(HalpReadCmos(HalpCenturyRegister()), RegisterB) * 100 +
                              HalpRtcDecode(HalpReadCmos(RTC_REGISTER_YEAR), RegisterB));
        DayOfWeek = HalpRtcDecode(HalpReadCmos(RTC_REGISTER_DAY_OF_WEEK), RegisterB);

        if (HalpReadCmos(RTC_REGISTER_SECONDS) == Seconds)
        {
            Time->Milliseconds = 0;
            Time->Weekday = (DayOfWeek >= 1 && DayOfWeek <= 7) ? (CSHORT)(DayOfWeek - 1) : 0;  /* RTC: 1 = Sunday */
            return TRUE;
        }
    }
    return FALSE;
}

BOOLEAN NTAPI HalSetRealTimeClock(PTIME_FIELDS Time)
{
    UCHAR RegisterB = HalpReadCmos(RTC_REGISTER_B);

    if (Time->Year < 1900 || Time->Year > 9999 || Time->Month < 1 || Time->Month > 12 || Time->Day < 1 ||
        Time->Day > 31 || Time->Hour > 23 || Time->Minute > 59 || Time->Second > 59 || Time->Weekday > 6)
        return FALSE;

    /* SET freezes the update cycle while the fields are written, so no half-new time is ever visible. */
    HalpWriteCmos(RTC_REGISTER_B, RegisterB | RTC_REG_B_SET);
    HalpWriteCmos(RTC_REGISTER_SECONDS, HalpRtcEncode((UCHAR)Time->Second, RegisterB));
    HalpWriteCmos(RTC_REGISTER_MINUTES, HalpRtcEncode((UCHAR)Time->Minute, RegisterB));
    HalpWriteCmos(RTC_REGISTER_HOURS, HalpRtcEncodeHour((UCHAR)Time->Hour, RegisterB));
    HalpWriteCmos(RTC_REGISTER_DAY_OF_WEEK, HalpRtcEncode((UCHAR)(Time->Weekday + 1), RegisterB));
    HalpWriteCmos(RTC_REGISTER_DAY_OF_MONTH, HalpRtcEncode((UCHAR)Time->Day, RegisterB));
    HalpWriteCmos(RTC_REGISTER_MONTH, HalpRtcEncode((UCHAR)Time->Month, RegisterB));
    HalpWriteCmos(RTC_REGISTER_YEAR, HalpRtcEncode((UCHAR)(Time->Year % 100), RegisterB));
    HalpWriteCmos(HalpCenturyRegister(), HalpRtcEncode((UCHAR)(Time->Year / 100), RegisterB));
    HalpWriteCmos(RTC_REGISTER_B, RegisterB & ~RTC_REG_B_SET);
    return TRUE;
}

/* This HAL keeps no firmware environment store: the PC/AT CMOS has no defined place for named variables, and
 * we do not borrow RTC bits for one. Both calls say "no such device". */
ARC_STATUS NTAPI HalGetEnvironmentVariable(PCH Variable, USHORT Length, PCH Buffer)
{
    UNREFERENCED_PARAMETER(Variable);
    UNREFERENCED_PARAMETER(Length);
    UNREFERENCED_PARAMETER(Buffer);
    return HALP_ARC_ENODEV;
}

ARC_STATUS NTAPI HalSetEnvironmentVariable(PCH Variable, PCH Value)
{
    UNREFERENCED_PARAMETER(Variable);
    UNREFERENCED_PARAMETER(Value);
    return HALP_ARC_ENODEV;
}
