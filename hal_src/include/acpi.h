/*
 * acpi.h -- the ACPI tables this HAL reads, as the ACPI specification (6.x) lays them out.
 *
 * Field names follow the specification's names in CamelCase (PM1a_CNT_BLK -> Pm1aCntBlk, X_PM_TMR_BLK ->
 * XPmTmrBlk). All structures are byte-packed: the tables are not naturally aligned in memory.
 */
#ifndef GEN2HAL_ACPI_H
#define GEN2HAL_ACPI_H

#pragma pack(push, 1)

/* Signatures as the little-endian ULONG of their four characters. */
#define ACPI_SIGNATURE(a, b, c, d) \
    ((ULONG)(UCHAR)(a) | ((ULONG)(UCHAR)(b) << 8) | ((ULONG)(UCHAR)(c) << 16) | ((ULONG)(UCHAR)(d) << 24))
#define ACPI_RSDT_SIGNATURE ACPI_SIGNATURE('R', 'S', 'D', 'T')
#define ACPI_XSDT_SIGNATURE ACPI_SIGNATURE('X', 'S', 'D', 'T')
#define ACPI_MADT_SIGNATURE ACPI_SIGNATURE('A', 'P', 'I', 'C')
#define ACPI_FADT_SIGNATURE ACPI_SIGNATURE('F', 'A', 'C', 'P')
#define ACPI_DSDT_SIGNATURE ACPI_SIGNATURE('D', 'S', 'D', 'T')

/* The header every system description table starts with. */
typedef struct _ACPI_DESCRIPTION_HEADER
{
    ULONG Signature;
    ULONG Length;               /* of the whole table, header included */
    UCHAR Revision;
    UCHAR Checksum;             /* makes the bytes of the whole table sum to 0 */
    CHAR OemId[6];
    CHAR OemTableId[8];
    ULONG OemRevision;
    ULONG CreatorId;
    ULONG CreatorRevision;
} ACPI_DESCRIPTION_HEADER, *PACPI_DESCRIPTION_HEADER;

/* Generic Address Structure. */
typedef struct _ACPI_GENERIC_ADDRESS
{
    UCHAR AddressSpaceId;       /* 0 = system memory, 1 = system I/O */
    UCHAR RegisterBitWidth;
    UCHAR RegisterBitOffset;
    UCHAR AccessSize;
    ULONG64 Address;
} ACPI_GENERIC_ADDRESS, *PACPI_GENERIC_ADDRESS;

#define ACPI_ADDRESS_SPACE_MEMORY 0
#define ACPI_ADDRESS_SPACE_IO     1

/* Fixed ACPI Description Table ("FACP"), up to the revision-6 end. Older, shorter FADTs are copied into a zeroed
 * instance of this structure, so fields past their end read as 0. */
typedef struct _ACPI_FADT
{
    ACPI_DESCRIPTION_HEADER Header;
    ULONG FirmwareCtrl;
    ULONG Dsdt;
    UCHAR Reserved0;
    UCHAR PreferredPmProfile;
    USHORT SciInt;
    ULONG SmiCmd;               /* port that takes AcpiEnable/AcpiDisable; 0 = always in ACPI mode */
    UCHAR AcpiEnable;
    UCHAR AcpiDisable;
    UCHAR S4BiosReq;
    UCHAR PstateCnt;
    ULONG Pm1aEvtBlk;           /* legacy 32-bit port fields ... */
    ULONG Pm1bEvtBlk;
    ULONG Pm1aCntBlk;
    ULONG Pm1bCntBlk;
    ULONG Pm2CntBlk;
    ULONG PmTmrBlk;
    ULONG Gpe0Blk;
    ULONG Gpe1Blk;              /* ... (0 on platforms that only fill the X_ fields) */
    UCHAR Pm1EvtLen;
    UCHAR Pm1CntLen;
    UCHAR Pm2CntLen;
    UCHAR PmTmrLen;
    UCHAR Gpe0BlkLen;
    UCHAR Gpe1BlkLen;
    UCHAR Gpe1Base;
    UCHAR CstCnt;
    USHORT PLvl2Lat;
    USHORT PLvl3Lat;
    USHORT FlushSize;
    USHORT FlushStride;
    UCHAR DutyOffset;
    UCHAR DutyWidth;
    UCHAR DayAlrm;
    UCHAR MonAlrm;
    UCHAR Century;              /* CMOS index of the century, 0 = not supported */
    USHORT IapcBootArch;
    UCHAR Reserved1;
    ULONG Flags;
    ACPI_GENERIC_ADDRESS ResetReg;
    UCHAR ResetValue;
    USHORT ArmBootArch;
    UCHAR FadtMinorVersion;
    ULONG64 XFirmwareCtrl;
    ULONG64 XDsdt;
    ACPI_GENERIC_ADDRESS XPm1aEvtBlk;
    ACPI_GENERIC_ADDRESS XPm1bEvtBlk;
    ACPI_GENERIC_ADDRESS XPm1aCntBlk;
    ACPI_GENERIC_ADDRESS XPm1bCntBlk;
    ACPI_GENERIC_ADDRESS XPm2CntBlk;
    ACPI_GENERIC_ADDRESS XPmTmrBlk;
    ACPI_GENERIC_ADDRESS XGpe0Blk;
    ACPI_GENERIC_ADDRESS XGpe1Blk;
    ACPI_GENERIC_ADDRESS SleepControlReg;
    ACPI_GENERIC_ADDRESS SleepStatusReg;
    ULONG64 HypervisorVendorIdentity;
} ACPI_FADT, *PACPI_FADT;

/* FADT Flags. */
#define ACPI_FADT_TMR_VAL_EXT       (1UL << 8)      /* PM timer counts 32 bits (else 24) */
#define ACPI_FADT_RESET_REG_SUP     (1UL << 10)
#define ACPI_FADT_HW_REDUCED_ACPI   (1UL << 20)

/* FADT IapcBootArch. */
#define ACPI_IAPC_LEGACY_DEVICES    0x0001
#define ACPI_IAPC_8042              0x0002
#define ACPI_IAPC_VGA_NOT_PRESENT   0x0004
#define ACPI_IAPC_CMOS_RTC_NOT_PRESENT 0x0020

/* Multiple APIC Description Table ("APIC"). */
typedef struct _ACPI_MADT
{
    ACPI_DESCRIPTION_HEADER Header;
    ULONG LocalApicAddress;
    ULONG Flags;
    /* Interrupt controller structures follow, each starting with ACPI_MADT_SUBTABLE. */
} ACPI_MADT, *PACPI_MADT;

#define ACPI_MADT_PCAT_COMPAT       0x00000001UL    /* a dual 8259 is present and must be masked */

typedef struct _ACPI_MADT_SUBTABLE
{
    UCHAR Type;
    UCHAR Length;
} ACPI_MADT_SUBTABLE, *PACPI_MADT_SUBTABLE;

#define ACPI_MADT_TYPE_LOCAL_APIC           0
#define ACPI_MADT_TYPE_IO_APIC              1
#define ACPI_MADT_TYPE_INTERRUPT_OVERRIDE   2
#define ACPI_MADT_TYPE_LOCAL_APIC_NMI       4
#define ACPI_MADT_TYPE_LOCAL_APIC_OVERRIDE  5
#define ACPI_MADT_TYPE_LOCAL_X2APIC         9

typedef struct _ACPI_MADT_LOCAL_APIC
{
    ACPI_MADT_SUBTABLE Subtable;
    UCHAR AcpiProcessorUid;
    UCHAR ApicId;
    ULONG Flags;
} ACPI_MADT_LOCAL_APIC, *PACPI_MADT_LOCAL_APIC;

#define ACPI_MADT_LAPIC_ENABLED         0x1
#define ACPI_MADT_LAPIC_ONLINE_CAPABLE  0x2

typedef struct _ACPI_MADT_IO_APIC
{
    ACPI_MADT_SUBTABLE Subtable;
    UCHAR IoApicId;
    UCHAR Reserved;
    ULONG IoApicAddress;
    ULONG GlobalSystemInterruptBase;
} ACPI_MADT_IO_APIC, *PACPI_MADT_IO_APIC;

typedef struct _ACPI_MADT_INTERRUPT_OVERRIDE
{
    ACPI_MADT_SUBTABLE Subtable;
    UCHAR Bus;                  /* 0 = ISA */
    UCHAR Source;               /* ISA IRQ */
    ULONG GlobalSystemInterrupt;
    USHORT Flags;               /* MPS INTI flags */
} ACPI_MADT_INTERRUPT_OVERRIDE, *PACPI_MADT_INTERRUPT_OVERRIDE;

typedef struct _ACPI_MADT_LOCAL_APIC_NMI
{
    ACPI_MADT_SUBTABLE Subtable;
    UCHAR AcpiProcessorUid;     /* 0xFF = every processor */
    USHORT Flags;               /* MPS INTI flags */
    UCHAR LocalApicLint;        /* 0 = LINT0, 1 = LINT1 */
} ACPI_MADT_LOCAL_APIC_NMI, *PACPI_MADT_LOCAL_APIC_NMI;

typedef struct _ACPI_MADT_LOCAL_X2APIC
{
    ACPI_MADT_SUBTABLE Subtable;
    USHORT Reserved;
    ULONG X2ApicId;
    ULONG Flags;
    ULONG AcpiProcessorUid;
} ACPI_MADT_LOCAL_X2APIC, *PACPI_MADT_LOCAL_X2APIC;

/* Local APIC Address Override: the 64-bit local-APIC address that replaces the MADT header's 32-bit one. */
typedef struct _ACPI_MADT_LOCAL_APIC_OVERRIDE
{
    ACPI_MADT_SUBTABLE Subtable;
    USHORT Reserved;
    ULONG64 LocalApicAddress;
} ACPI_MADT_LOCAL_APIC_OVERRIDE, *PACPI_MADT_LOCAL_APIC_OVERRIDE;

/* MPS INTI flags (interrupt source overrides, NMI sources). */
#define ACPI_MPS_POLARITY_MASK          0x0003
#define ACPI_MPS_POLARITY_CONFORMS      0x0000
#define ACPI_MPS_POLARITY_ACTIVE_HIGH   0x0001
#define ACPI_MPS_POLARITY_ACTIVE_LOW    0x0003
#define ACPI_MPS_TRIGGER_MASK           0x000C
#define ACPI_MPS_TRIGGER_CONFORMS       0x0000
#define ACPI_MPS_TRIGGER_EDGE           0x0004
#define ACPI_MPS_TRIGGER_LEVEL          0x000C

/* The loader's ACPI_BIOS_MULTI_NODE ends in the firmware's memory map: Count ranges right after the Count field,
 * 24 bytes each (the loader's layout; range types as ACPI 6.5 chapter 15, "INT 15H, E820H"). */
typedef struct _ACPI_E820_ENTRY
{
    ULONG64 Base;
    ULONG64 Length;
    ULONG64 Type;
} ACPI_E820_ENTRY, *PACPI_E820_ENTRY;

#define ACPI_E820_TYPE_RAM          1   /* AddressRangeMemory: RAM the OS may use */

#pragma pack(pop)

#endif /* GEN2HAL_ACPI_H */
