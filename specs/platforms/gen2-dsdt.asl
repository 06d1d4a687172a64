/*
 * gen2hal — DSDT of the gen2sim Generation 2 platform.
 *
 * Written for this project; it is NOT the Hyper-V firmware's DSDT. It describes the same devices, at the same
 * namespace paths and with the same identifiers and resources, as the DSDT dumped from a Hyper-V Generation 2
 * VM on host build 22621 (MouriNaruto/MouriDocs, docs/11/References/ACPI/22621): those are facts about the
 * platform. Everything the model does not implement is left out (see specs/platforms/gen2.toml, [tables.DSDT]).
 *
 * Regenerate the carried AML after editing:  python -m gen2sim.acpi regen-dsdt
 * (the table header below must agree with [tables.DSDT] in gen2.toml; a test checks it).
 */
DefinitionBlock ("", "DSDT", 2, "MSFTVM", "DSDT01", 0x00000001)
{
    /* Sleep states: S0 and S5 (soft off) with SLP_TYP 0, as the platform declares them. S4 exists on the real
     * platform only when hibernation is configured; the model has no hibernation, so no \_S4. */
    Name (\_S0, Package (0x02) { Zero, Zero })
    Name (\_S5, Package (0x02) { Zero, Zero })

    Scope (\_SB)
    {
        /* The VMBus module device. On Hyper-V its two MMIO windows (below and above 4 GiB) are filled in at
         * run time from firmware data; the model has no VMBus MMIO, so the windows stay empty (all zero), which
         * is also what the table itself carries before initialisation. */
        Device (VMOD)
        {
            Name (_HID, "ACPI0004")
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
                    0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
                    , , MWLO, AddressRangeMemory, TypeStatic)
                QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
                    0x0000000000000000, 0x0000000000000000, 0x0000000000000000, 0x0000000000000000,
                    0x0000000000000000, , , MWHI, AddressRangeMemory, TypeStatic)
            })

            /* Interrupt controllers: local APIC page and the single IOAPIC page. */
            Device (APIC)
            {
                Name (_HID, EisaId ("PNP0003"))
                Name (_CRS, ResourceTemplate ()
                {
                    Memory32Fixed (ReadWrite, 0xFEE00000, 0x00001000)
                    Memory32Fixed (ReadWrite, 0xFEC00000, 0x00001000)
                })
            }

            /* VMBus: its channel interrupts arrive on legacy IRQ 5. */
            Device (VMBS)
            {
                Name (_DDN, "VMBUS")
                Name (_HID, "VMBus")
                Name (_UID, Zero)
                Method (_STA, 0, NotSerialized)
                {
                    Return (0x0F)
                }
                Name (_CRS, ResourceTemplate ()
                {
                    IRQ (Edge, ActiveHigh, Exclusive) {5}
                })
            }
        }

        /* 16550 UARTs. On Hyper-V they exist only when serial ports are configured; the model has them. */
        Device (UAR1)
        {
            Name (_HID, EisaId ("PNP0501"))
            Name (_DDN, "COM1")
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {4}
            })
        }

        Device (UAR2)
        {
            Name (_HID, EisaId ("PNP0501"))
            Name (_DDN, "COM2")
            Name (_UID, 0x02)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x02F8, 0x02F8, 0x01, 0x08)
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {3}
            })
        }

        /* CMOS real-time clock: ports 0x70/0x71, GSI 8 edge-triggered active-high. */
        Device (RTC0)
        {
            Name (_HID, EisaId ("PNP0B00"))
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x0070, 0x0070, 0x00, 0x02)
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {8}
            })
        }
    }

    /* Processor devices. The platform declares them in the root scope (not under \_SB), one per virtual
     * processor with _UID = VP index + 1, matching the MADT's processor UIDs. The model has four processors. */
    Device (P001)
    {
        Name (_HID, "ACPI0007")
        Name (_UID, One)
        Method (_STA, 0, NotSerialized) { Return (0x0F) }
    }

    Device (P002)
    {
        Name (_HID, "ACPI0007")
        Name (_UID, 0x02)
        Method (_STA, 0, NotSerialized) { Return (0x0F) }
    }

    Device (P003)
    {
        Name (_HID, "ACPI0007")
        Name (_UID, 0x03)
        Method (_STA, 0, NotSerialized) { Return (0x0F) }
    }

    Device (P004)
    {
        Name (_HID, "ACPI0007")
        Name (_UID, 0x04)
        Method (_STA, 0, NotSerialized) { Return (0x0F) }
    }
}
