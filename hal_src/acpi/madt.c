/*
 * madt.c -- the Multiple APIC Description Table: processors, IOAPICs, how ISA IRQs reach them, NMI inputs, and
 * whether the machine is PC-AT compatible (has the dual 8259).
 */
#include "halp.h"

HALP_APIC_INFO HalpApicInfo;

/* Smallest valid length of each subtable type we read. */
static UCHAR HalpMadtMinimumLength(UCHAR Type)
{
    switch (Type)
    {
    case ACPI_MADT_TYPE_LOCAL_APIC:         return sizeof(ACPI_MADT_LOCAL_APIC);
    case ACPI_MADT_TYPE_IO_APIC:            return sizeof(ACPI_MADT_IO_APIC);
    case ACPI_MADT_TYPE_INTERRUPT_OVERRIDE: return sizeof(ACPI_MADT_INTERRUPT_OVERRIDE);
    case ACPI_MADT_TYPE_LOCAL_APIC_NMI:     return sizeof(ACPI_MADT_LOCAL_APIC_NMI);
    case ACPI_MADT_TYPE_LOCAL_X2APIC:       return sizeof(ACPI_MADT_LOCAL_X2APIC);
    case ACPI_MADT_TYPE_LOCAL_APIC_OVERRIDE: return sizeof(ACPI_MADT_LOCAL_APIC_OVERRIDE);
    default:                                return sizeof(ACPI_MADT_SUBTABLE);
    }
}

VOID HalpParseApicTables(VOID)
{
    PACPI_MADT Madt = HalpAcpiGetTable(ACPI_MADT_SIGNATURE);
    PUCHAR Entry, End;
    ULONG i;

    if (Madt == NULL)
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_TABLE_MISSING, ACPI_MADT_SIGNATURE, 0, 0);

    HalpApicInfo.LocalApicAddress = Madt->LocalApicAddress;
    HalpApicInfo.MadtFlags = Madt->Flags;
    for (i = 0; i < HALP_ISA_IRQ_COUNT; i++)
        HalpApicInfo.IsaOverride[i].Present = FALSE;

    End = (PUCHAR)Madt + Madt->Header.Length;
    for (Entry = (PUCHAR)(Madt + 1); Entry + sizeof(ACPI_MADT_SUBTABLE) <= End; Entry += Entry[1])
    {
        PACPI_MADT_SUBTABLE Subtable = (PACPI_MADT_SUBTABLE)Entry;

        /* A zero length would loop forever; a short one or one running past the table would be misread. */
        if (Subtable->Length < HalpMadtMinimumLength(Subtable->Type) || Entry + Subtable->Length > End)
            KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_BAD_MADT_ENTRY, Entry - (PUCHAR)Madt,
                         Subtable->Type, Subtable->Length);

        switch (Subtable->Type)
        {
        case ACPI_MADT_TYPE_LOCAL_APIC:
        {
            PACPI_MADT_LOCAL_APIC Lapic = (PACPI_MADT_LOCAL_APIC)Entry;

            if (Lapic->Flags & (ACPI_MADT_LAPIC_ENABLED | ACPI_MADT_LAPIC_ONLINE_CAPABLE))
                HalpApicInfo.ProcessorCount++;
            if (Lapic->ApicId == HalpLocalApicId)
                HalpApicInfo.BootProcessorUid = Lapic->AcpiProcessorUid;
            break;
        }
        case ACPI_MADT_TYPE_LOCAL_X2APIC:
        {
            PACPI_MADT_LOCAL_X2APIC X2apic = (PACPI_MADT_LOCAL_X2APIC)Entry;

            /* Counted, but this HAL drives the local APIC in xAPIC mode only. */
            if (X2apic->Flags & (ACPI_MADT_LAPIC_ENABLED | ACPI_MADT_LAPIC_ONLINE_CAPABLE))
                HalpApicInfo.ProcessorCount++;
            break;
        }
        case ACPI_MADT_TYPE_IO_APIC:
        {
            PACPI_MADT_IO_APIC IoApic = (PACPI_MADT_IO_APIC)Entry;

            if (HalpApicInfo.IoApicCount < HALP_MAX_IO_APICS)
            {
                PHALP_IO_APIC Slot = &HalpApicInfo.IoApic[HalpApicInfo.IoApicCount++];

                Slot->Id = IoApic->IoApicId;
                Slot->PhysicalAddress = IoApic->IoApicAddress;
                Slot->GsiBase = IoApic->GlobalSystemInterruptBase;
            }
            break;
        }
        case ACPI_MADT_TYPE_INTERRUPT_OVERRIDE:
        {
            PACPI_MADT_INTERRUPT_OVERRIDE Override = (PACPI_MADT_INTERRUPT_OVERRIDE)Entry;

            /* Bus 0 is ISA, the only bus overrides are defined for. */
            if (Override->Bus == 0 && Override->Source < HALP_ISA_IRQ_COUNT)
            {
                HalpApicInfo.IsaOverride[Override->Source].Present = TRUE;
                HalpApicInfo.IsaOverride[Override->Source].Gsi = Override->GlobalSystemInterrupt;
                HalpApicInfo.IsaOverride[Override->Source].Flags = Override->Flags;
            }
            break;
        }
        case ACPI_MADT_TYPE_LOCAL_APIC_NMI:
        {
            PACPI_MADT_LOCAL_APIC_NMI Nmi = (PACPI_MADT_LOCAL_APIC_NMI)Entry;

            if (HalpApicInfo.NmiSourceCount < RTL_NUMBER_OF(HalpApicInfo.NmiSource))
            {
                HalpApicInfo.NmiSource[HalpApicInfo.NmiSourceCount].AcpiProcessorUid = Nmi->AcpiProcessorUid;
                HalpApicInfo.NmiSource[HalpApicInfo.NmiSourceCount].Lint = Nmi->LocalApicLint;
                HalpApicInfo.NmiSource[HalpApicInfo.NmiSourceCount].Flags = Nmi->Flags;
                HalpApicInfo.NmiSourceCount++;
            }
            break;
        }
        default:
            /* Other controller types (NMI sources, SAPIC, GIC, x2APIC NMI, ...): not used here; skipped. */
            break;
        }
    }

    if (HalpApicInfo.IoApicCount == 0)
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_NO_IO_APIC, 0, 0, 0);
}

/* This HAL is written for a PC-AT-compatible machine: it expects the dual 8259 to be there (and masks it),
 * as the Windows 7 HAL does. A MADT without the PCAT_COMPAT flag describes another kind of machine. */
VOID HalpVerifyPcatCompatibility(VOID)
{
    if (!(HalpApicInfo.MadtFlags & ACPI_MADT_PCAT_COMPAT))
        KeBugCheckEx(HALP_BUGCHECK_MISMATCHED_HAL, HALP_MISMATCH_NO_PCAT_COMPAT, 0, 0, 0);
}

/* ISA IRQ -> global system interrupt, trigger and polarity. Without an override the IRQ is identity-mapped and
 * follows the ISA bus convention (edge, active high); "conforming" fields in an override mean the same. */
BOOLEAN HalpIrqToGsi(UCHAR IsaIrq, PULONG Gsi, PBOOLEAN LevelSensitive, PBOOLEAN ActiveLow)
{
    USHORT Flags = 0;

    if (IsaIrq >= HALP_ISA_IRQ_COUNT)
        return FALSE;

    *Gsi = IsaIrq;
    if (HalpApicInfo.IsaOverride[IsaIrq].Present)
    {
        *Gsi = HalpApicInfo.IsaOverride[IsaIrq].Gsi;
        Flags = HalpApicInfo.IsaOverride[IsaIrq].Flags;
    }
    *LevelSensitive = (Flags & ACPI_MPS_TRIGGER_MASK) == ACPI_MPS_TRIGGER_LEVEL;
    *ActiveLow = (Flags & ACPI_MPS_POLARITY_MASK) == ACPI_MPS_POLARITY_ACTIVE_LOW;
    return TRUE;
}
