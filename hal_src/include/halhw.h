/*
 * halhw.h -- legacy-PC and APIC hardware: port numbers, register offsets and bits.
 *
 * Every port or register the HAL touches has a name here, so that a reader (and the generator's analyzer, which
 * resolves port numbers through these macros) can tell which device a hwio.h call talks to.
 * Facts: IBM PC/AT port map, Intel 8259A and 8254 data sheets, Motorola MC146818 data sheet, Intel SDM vol. 3
 * (local APIC), Intel 82093AA IOAPIC data sheet, ACPI specification 6.x (PM1 control, PM timer), PCI 3.0 (config
 * mechanism #1).
 */
#ifndef GEN2HAL_HALHW_H
#define GEN2HAL_HALHW_H

/* ---- 8259A programmable interrupt controllers (master and slave) ------------------------------------------- */
#define PIC1_CONTROL_PORT           0x20
#define PIC1_DATA_PORT              0x21
#define PIC2_CONTROL_PORT           0xA0
#define PIC2_DATA_PORT              0xA1
#define PIC_ICW1_INIT               0x10    /* ICW1: start initialisation */
#define PIC_ICW1_ICW4_NEEDED        0x01    /* ICW1: an ICW4 follows */
#define PIC_ICW4_8086_MODE          0x01    /* ICW4: 8086/88 mode, normal (non-automatic) EOI */
#define PIC1_VECTOR_BASE            0x30    /* where the master's IRQ 0-7 would land if it ever delivered */
#define PIC2_VECTOR_BASE            0x38    /* slave's IRQ 8-15 */
#define PIC_CASCADE_IRQ             2       /* the slave hangs off the master's IRQ 2 */
#define PIC_MASK_ALL                0xFF    /* OCW1: mask every input */

/* ---- 8254 programmable interval timer ----------------------------------------------------------------------- */
#define PIT_CH0                     0x40
#define PIT_CH2                     0x42
#define PIT_CMD                     0x43
#define PIT_FREQUENCY               1193182 /* input clock, Hz */
#define PIT_CMD_CH2_SQUARE_WAVE     0xB6    /* channel 2, low byte then high byte, mode 3, binary */

/* ---- System control port B (speaker gate, NMI status) -------------------------------------------------------- */
#define SYSTEM_CONTROL_PORT_B       0x61
#define SCPB_TIMER2_GATE            0x01
#define SCPB_SPEAKER_DATA           0x02
#define SCPB_PARITY_CHECK_DISABLE   0x04
#define SCPB_CHANNEL_CHECK_DISABLE  0x08
#define SCPB_CHANNEL_CHECK          0x40    /* IOCHK#: an expansion-bus device reported an error */
#define SCPB_PARITY_CHECK           0x80    /* memory parity / PCI SERR# */

/* ---- MC146818 real-time clock and CMOS RAM ----------------------------------------------------------------- */
#define CMOS_ADDRESS_PORT           0x70    /* bit 7 of the index byte masks NMI; we never set it */
#define CMOS_DATA_PORT              0x71
#define CMOS_REGISTER_LIMIT         0x80    /* the standard bank: 128 bytes */
#define RTC_REGISTER_SECONDS        0x00
#define RTC_REGISTER_MINUTES        0x02
#define RTC_REGISTER_HOURS          0x04
#define RTC_REGISTER_DAY_OF_WEEK    0x06
#define RTC_REGISTER_DAY_OF_MONTH   0x07
#define RTC_REGISTER_MONTH          0x08
#define RTC_REGISTER_YEAR           0x09
#define RTC_REGISTER_A              0x0A
#define RTC_REGISTER_B              0x0B
#define RTC_REGISTER_C              0x0C
#define RTC_REGISTER_D              0x0D
#define RTC_DEFAULT_CENTURY_REGISTER 0x32   /* the PC/AT convention when the FADT names none */
#define RTC_REG_A_UIP               0x80    /* update in progress: rises 244 us before each once-a-second update */
#define RTC_REG_A_RATE_MASK         0x0F    /* periodic rate select: 32768 >> (rate - 1) Hz for rates 3-15 */
#define RTC_REG_B_SET               0x80    /* freeze updates while the time is written */
#define RTC_REG_B_PIE               0x40    /* periodic interrupt enable */
#define RTC_REG_B_BINARY            0x04    /* data mode: binary (1) or BCD (0) */
#define RTC_REG_B_24_HOUR           0x02
#define RTC_HOUR_PM                 0x80    /* 12-hour mode: PM flag in the hours register */
#define RTC_IRQ                     8       /* the RTC's ISA interrupt line */
#define RTC_BASE_FREQUENCY          32768   /* Hz: the time base the periodic rates divide */

/* ---- 8042 keyboard controller (the PC/AT reset line) ---------------------------------------------------------- */
#define I8042_DATA_PORT             0x60
#define I8042_COMMAND_PORT          0x64    /* write: command; read: status */
#define I8042_STATUS_INPUT_FULL     0x02    /* the controller has not yet taken the last byte */
#define I8042_PULSE_RESET           0xFE    /* pulse output line 0 (CPU reset) low */

/* ---- PCI configuration mechanism #1 ---------------------------------------------------------------------------- */
#define PCI_CONFIG_ADDRESS_PORT     0xCF8
#define PCI_CONFIG_DATA_PORT        0xCFC
#define PCI_CONFIG_ENABLE           0x80000000UL
#define PCI_CONFIG_SPACE_SIZE       0x100
#define PCI_VENDOR_ID_NONE          0xFFFF  /* what an empty slot answers */

/* ---- ACPI fixed hardware (addresses come from the FADT) ----------------------------------------------------- */
#define ACPI_PM1_CNT_SCI_EN         0x0001  /* PM1 control: the platform is in ACPI mode */
#define ACPI_PM_TIMER_FREQUENCY     3579545 /* Hz */

/* ---- Local APIC (xAPIC MMIO register offsets) --------------------------------------------------------------- */
#define APIC_ID                     0x020   /* bits 31:24 */
#define APIC_VERSION                0x030   /* bits 23:16 = highest LVT entry index */
#define APIC_TPR                    0x080
#define APIC_EOI                    0x0B0
#define APIC_SVR                    0x0F0
#define APIC_ISR_BASE               0x100
#define APIC_ESR                    0x280
#define APIC_ICR_LOW                0x300
#define APIC_ICR_HIGH               0x310   /* bits 31:24 = destination APIC ID */
#define APIC_LVT_TIMER              0x320
#define APIC_LVT_THERMAL            0x330
#define APIC_LVT_PERF               0x340
#define APIC_LVT_LINT0              0x350
#define APIC_LVT_LINT1              0x360
#define APIC_LVT_ERROR              0x370
#define APIC_TIMER_INITIAL_COUNT    0x380
#define APIC_TIMER_CURRENT_COUNT    0x390
#define APIC_TIMER_DIVIDE           0x3E0

#define APIC_SVR_SOFTWARE_ENABLE    0x00000100UL
#define APIC_LVT_MASKED             0x00010000UL
#define APIC_LVT_LEVEL_TRIGGERED    0x00008000UL
#define APIC_LVT_ACTIVE_LOW         0x00002000UL
#define APIC_LVT_TIMER_PERIODIC     0x00020000UL
#define APIC_DELIVERY_FIXED         0x00000000UL
#define APIC_DELIVERY_NMI           0x00000400UL
#define APIC_DELIVERY_EXTINT        0x00000700UL
#define APIC_ICR_DELIVERY_PENDING   0x00001000UL
#define APIC_ICR_LEVEL_ASSERT       0x00004000UL
#define APIC_ICR_DEST_SELF          0x00040000UL
#define APIC_TIMER_DIVIDE_BY_1      0x0000000BUL
#define APIC_VERSION_MAX_LVT(v)     (((v) >> 16) & 0xFF)
#define APIC_ID_SHIFT               24

/* ---- I/O APIC (indirect registers behind IOREGSEL/IOWIN) ------------------------------------------------------ */
#define IOAPIC_REGSEL               0x00    /* byte offsets in the IOAPIC's MMIO page */
#define IOAPIC_WINDOW               0x10
#define IOAPIC_REG_ID               0x00
#define IOAPIC_REG_VERSION          0x01    /* bits 23:16 = index of the last redirection entry */
#define IOAPIC_VERSION_MAX_ENTRY_SHIFT 16     /* ... so the input count is ((v >> 16) & 0xFF) + 1 */
#define IOAPIC_VERSION_MAX_ENTRY_MASK  0xFF
#define IOAPIC_REG_REDIRECTION(n)   (0x10 + 2 * (n))    /* low dword; high dword follows */
#define IOAPIC_RTE_MASKED           0x00010000UL
#define IOAPIC_RTE_LEVEL_TRIGGERED  0x00008000UL
#define IOAPIC_RTE_ACTIVE_LOW       0x00002000UL
#define IOAPIC_RTE_DEST_SHIFT       24      /* in the high dword: physical destination APIC ID */

/* ---- Model-specific registers and CPUID bits ----------------------------------------------------------------- */
#define MSR_IA32_APIC_BASE          0x0000001B
#define APIC_BASE_GLOBAL_ENABLE     0x800ULL
#define APIC_BASE_X2APIC_ENABLE     0x400ULL
#define MSR_IA32_MCG_CAP            0x00000179
#define MSR_IA32_MCG_STATUS         0x0000017A

#define CPUID_LEAF_FEATURES         1
#define CPUID1_EDX_TSC              (1UL << 4)
#define CPUID1_EDX_MCA              (1UL << 14)
#define CPUID1_EDX_APIC             (1UL << 9)

/* ---- Page-table entries (the HAL maps through the loader's self-map) ----------------------------------------- */
#define PTE_PRESENT                 0x001ULL
#define PTE_WRITE                   0x002ULL
#define PTE_WRITE_THROUGH           0x008ULL
#define PTE_CACHE_DISABLE           0x010ULL
#define PTE_FRAME_MASK              0x000FFFFFFFFFF000ULL

#endif /* GEN2HAL_HALHW_H */
