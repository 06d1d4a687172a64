/*
 * halp.h -- internal declarations of the gen2hal reference HAL (a legacy-PC x64 APIC HAL).
 *
 * Include this first in every C file. It pulls in the DDK, our compatibility fixes, the target's ABI
 * (target_abi.h, rendered from specs/targets/<target>.toml by the build), the hardware names and primitives, and
 * declares what the HAL's files share: globals, internal routines, kernel imports the DDK does not declare, and
 * the bug checks we raise (with the parameters documented in hal_src/README.md).
 */
#ifndef GEN2HAL_HALP_H
#define GEN2HAL_HALP_H

/* mingw-w64 10's wdm.h tests NTDDI_WINVISTA, which sdkddkver.h never defines (it defines NTDDI_VISTA); an
 * undefined macro is 0, so an NT 5.2 build would see Vista-only members with undefined types. */
#include <sdkddkver.h>
#ifndef NTDDI_WINVISTA
#define NTDDI_WINVISTA NTDDI_VISTA
#endif

#include <ntddk.h>

#include "compat.h"
#include "target_abi.h"
#include "halhw.h"
#include "acpi.h"
#include "hwio.h"

#if !defined(GEN2HAL_TARGET_REACTOS_AMD64) && !defined(GEN2HAL_TARGET_WIN7SP1_AMD64)
#error "build with -DGEN2HAL_TARGET_REACTOS_AMD64=1 or -DGEN2HAL_TARGET_WIN7SP1_AMD64=1"
#endif
#if defined(GEN2HAL_TARGET_REACTOS_AMD64) && defined(GEN2HAL_TARGET_WIN7SP1_AMD64)
#error "exactly one target define"
#endif

/* ==== Kernel structures the HAL only passes around or reads at target_abi.h offsets ============================== */

typedef struct _LOADER_PARAMETER_BLOCK LOADER_PARAMETER_BLOCK, *PLOADER_PARAMETER_BLOCK;
typedef struct _KTRAP_FRAME KTRAP_FRAME, *PKTRAP_FRAME;
typedef struct _KPROCESSOR_STATE KPROCESSOR_STATE, *PKPROCESSOR_STATE;
typedef struct _CONFIGURATION_COMPONENT_DATA CONFIGURATION_COMPONENT_DATA, *PCONFIGURATION_COMPONENT_DATA;
typedef struct _X86_BIOS_REGISTERS X86_BIOS_REGISTERS, *PX86_BIOS_REGISTERS;

/* Read a field of a structure we know only by offset. */
#define HALP_FIELD(Type, Base, Offset) (*(Type *)((PUCHAR)(Base) + (Offset)))

/* HalReturnToFirmware's routine codes (NT ARC convention). */
typedef enum _FIRMWARE_REENTRY
{
    HalHaltRoutine,
    HalPowerDownRoutine,
    HalRestartRoutine,
    HalRebootRoutine,
    HalInteractiveModeRoutine,
    HalMaximumRoutine
} FIRMWARE_REENTRY, *PFIRMWARE_REENTRY;

/* ARC status codes returned by Hal{Get,Set}EnvironmentVariable (ARC specification numbering). */
typedef ULONG ARC_STATUS;
#define HALP_ARC_ESUCCESS   0
#define HALP_ARC_ENODEV     13

#if defined(GEN2HAL_TARGET_WIN7SP1_AMD64)
/* NT 6.1 processor-set argument of the IPI services (KAFFINITY_EX): group count, capacity, bitmap per group. */
typedef struct _KAFFINITY_EX
{
    USHORT Count;
    USHORT Size;
    ULONG Reserved;
    KAFFINITY Bitmap[4];
} KAFFINITY_EX, *PKAFFINITY_EX;
#endif

/* ==== Kernel routines the HAL imports that the DDK does not declare ================================================ */

NTKERNELAPI VOID NTAPI KeSetTimeIncrement(ULONG MaxIncrement, ULONG MinIncrement);
NTKERNELAPI VOID NTAPI KeProfileInterruptWithSource(PKTRAP_FRAME TrapFrame, KPROFILE_SOURCE ProfileSource);
/* Class and Type are the ARC CONFIGURATION_CLASS / CONFIGURATION_TYPE enumerations (passed as 32-bit values);
 * NextLink holds the node to resume after (NULL: from the start). */
NTKERNELAPI PCONFIGURATION_COMPONENT_DATA NTAPI KeFindConfigurationNextEntry(
    PCONFIGURATION_COMPONENT_DATA Child, ULONG Class, ULONG Type, PULONG ComponentKey,
    PCONFIGURATION_COMPONENT_DATA *NextLink);

/* The clock-tick routine: ABI_TICK_ROUTINE_ARGS says what each target's kernel takes. */
#if defined(GEN2HAL_TARGET_REACTOS_AMD64)
NTKERNELAPI VOID NTAPI KeUpdateSystemTime(PKTRAP_FRAME TrapFrame, ULONG Increment, KIRQL OldIrql);
NTKERNELAPI VOID FASTCALL IoAssignDriveLetters(PLOADER_PARAMETER_BLOCK LoaderBlock, PSTRING NtDeviceName,
                                               PUCHAR NtSystemPath, PSTRING NtSystemPathString);
#else
NTKERNELAPI VOID NTAPI KeUpdateSystemTime(PKTRAP_FRAME TrapFrame, ULONG64 Increment);
#endif

/* ==== Bug checks we raise (parameters: hal_src/README.md) ========================================================= */

/* The contract's codes come from the target description when it has a [bugcheck] section (target_abi.h). */
#if defined(BUGCHECK_HAL_INITIALIZATION_FAILED)
#define HALP_BUGCHECK_HAL_INITIALIZATION_FAILED BUGCHECK_HAL_INITIALIZATION_FAILED
#else
#define HALP_BUGCHECK_HAL_INITIALIZATION_FAILED 0x5C
#endif
#if defined(BUGCHECK_MISMATCHED_HAL)
#define HALP_BUGCHECK_MISMATCHED_HAL            BUGCHECK_MISMATCHED_HAL
#else
#define HALP_BUGCHECK_MISMATCHED_HAL            0x79
#endif
#define HALP_BUGCHECK_NMI_HARDWARE_FAILURE      0x80
#define HALP_BUGCHECK_MACHINE_CHECK_EXCEPTION   0x9C
#define HALP_BUGCHECK_ACPI_BIOS_ERROR           0xA5
#define HALP_BUGCHECK_HAL_MEMORY_ALLOCATION     0xAC
#define HALP_BUGCHECK_WHEA_UNCORRECTABLE_ERROR  0x124

/* MISMATCHED_HAL parameter 1. */
#if defined(BUGCHECK_MISMATCHED_HAL_PRCB_VERSION)
#define HALP_MISMATCH_PRCB_VERSION      BUGCHECK_MISMATCHED_HAL_PRCB_VERSION    /* (1, found, expected, 0) */
#define HALP_MISMATCH_NO_PCAT_COMPAT    BUGCHECK_MISMATCHED_HAL_NO_PCAT_COMPAT  /* (6, 0, 0, 0) */
#else
#define HALP_MISMATCH_PRCB_VERSION      1       /* (1, version found, version expected, 0) */
#define HALP_MISMATCH_NO_PCAT_COMPAT    6       /* (6, 0, 0, 0): MADT without PC-AT compatibility */
#endif

/* ACPI_BIOS_ERROR parameter 1: ours, in a range of their own, except 0x11 which is acpi.sys's. */
#define HALP_ACPI_ENABLE_FAILED         0x11    /* (0x11, 6, 0, 0): SCI_EN never came up */
#define HALP_ACPI_ENABLE_FAILED_SCI_EN  6
#define HALP_ACPI_NO_BIOS_NODE          0x20001 /* (.., ConfigurationData length or 0, 0, 0) */
#define HALP_ACPI_BAD_ROOT              0x20002 /* (.., root physical address, signature found, 0) */
#define HALP_ACPI_BAD_CHECKSUM          0x20003 /* (.., signature, physical address, byte sum) */
#define HALP_ACPI_TABLE_MISSING         0x20004 /* (.., signature, 0, 0) */
#define HALP_ACPI_BAD_MADT_ENTRY        0x20005 /* (.., offset in MADT, type, length) */
#define HALP_ACPI_BAD_TABLE_LENGTH      0x20006 /* (.., signature, physical address, length) */
#define HALP_ACPI_NO_PM_TIMER           0x20007 /* (.., 0, 0, 0): FADT PM_TMR_BLK is 0 */
#define HALP_ACPI_NO_IO_APIC            0x20008 /* (.., 0, 0, 0): MADT lists no usable IOAPIC */

/* HAL_INITIALIZATION_FAILED parameter 1 (Windows HALs use 0x5C with a reason code too). */
#define HALP_INIT_UNSUPPORTED_SERVICE   0x10    /* (0x10, service id, argument, caller's return address) */
#define HALP_INIT_SECOND_PROCESSOR      0x11    /* (0x11, processor number, 0, 0): uniprocessor HAL */
#define HALP_INIT_NO_LOCAL_APIC         0x12    /* (0x12, CPUID.1:EDX, 0, 0) */
#define HALP_INIT_NO_TSC                0x13    /* (0x13, CPUID.1:EDX, 0, 0) */
#define HALP_INIT_BAD_SOFTWARE_IRQL     0x14    /* (0x14, IRQL, 0, 0): software interrupt other than APC/DPC */
#define HALP_INIT_DISPATCH_VERSION      0x15    /* (0x15, table: 1 HalDispatchTable / 2 HalPrivateDispatchTable,
                                                   version found, version expected) */

/* Service ids of HALP_INIT_UNSUPPORTED_SERVICE: calls whose honest answer cannot be returned. */
#define HALP_SERVICE_IO_MAP_TRANSFER            1
#define HALP_SERVICE_IO_FREE_ADAPTER_CHANNEL    2
#define HALP_SERVICE_IO_FREE_MAP_REGISTERS      3
#define HALP_SERVICE_FREE_COMMON_BUFFER         4
#define HALP_SERVICE_READ_DMA_COUNTER           5
#define HALP_SERVICE_INITIALIZE_ON_RESUME       6
#define HALP_SERVICE_DEFERRED_RECOVERY          7

DECLSPEC_NORETURN VOID HalpBugCheckUnsupported(ULONG Service, ULONG_PTR Argument, PVOID Caller);
#define HALP_UNSUPPORTED(Service, Argument) \
    HalpBugCheckUnsupported((Service), (ULONG_PTR)(Argument), __builtin_return_address(0))

/* The legacy behaviours live in functions of their own (product.md, "The reference HAL"); they stay out of line
 * so that the built image shows each one under its name (traces, link map, tests of the built code). */
#define HALP_NOINLINE __attribute__((__noinline__))

/* ==== Limits ====================================================================================================== */

#define HALP_MAX_PROCESSORS         1       /* a uniprocessor HAL: HalStartNextProcessor always says "no more" */
#define HALP_MAX_IO_APICS           8
#define HALP_ISA_IRQ_COUNT          16
#define HALP_NO_GSI                 0xFFFFFFFFUL

/* Device vectors HalGetInterruptVector hands out: IRQL 5..12 (CMCI_LEVEL .. SYNCH_LEVEL), as x64 NT does. */
#define HALP_DEVICE_IRQL_LOWEST     5
#define HALP_DEVICE_IRQL_HIGHEST    12

/* ==== generic/ ==================================================================================================== */

/* halinit.c */
extern ULONG HalpActiveProcessors;
BOOLEAN NTAPI HalInitSystem(ULONG Phase, PLOADER_PARAMETER_BLOCK LoaderBlock);
VOID NTAPI HalInitializeProcessor(ULONG ProcessorNumber, PLOADER_PARAMETER_BLOCK LoaderBlock);

/* memory.c: phase-0 mappings through the page-table self-map */
PVOID HalpMapPhysicalMemory64(PHYSICAL_ADDRESS PhysicalAddress, ULONG PageCount, BOOLEAN Uncached);
VOID HalpUnmapVirtualAddress(PVOID VirtualAddress, ULONG PageCount);

/* cmos.c */
UCHAR HalpReadCmos(UCHAR Register);
VOID HalpWriteCmos(UCHAR Register, UCHAR Value);
BOOLEAN NTAPI HalQueryRealTimeClock(PTIME_FIELDS Time);
BOOLEAN NTAPI HalSetRealTimeClock(PTIME_FIELDS Time);
ARC_STATUS NTAPI HalGetEnvironmentVariable(PCH Variable, USHORT Length, PCH Buffer);
ARC_STATUS NTAPI HalSetEnvironmentVariable(PCH Variable, PCH Value);

/* pic.c */
HALP_NOINLINE VOID HalpInitializeLegacyPICs(VOID);

/* reboot.c */
HALP_NOINLINE VOID HalpReboot(VOID);
VOID NTAPI HalReturnToFirmware(FIRMWARE_REENTRY Action);

/* nmi.c */
VOID NTAPI HalHandleNMI(PVOID NmiInfo);

/* dispatch.c: the HAL's entries in the kernel's dispatch tables (targets whose description has them) */
VOID HalpInstallDispatchEntries(VOID);
extern PVOID HalpPciErrorHandlerCallback;

/* beep.c */
BOOLEAN NTAPI HalMakeBeep(ULONG Frequency);

/* ==== acpi/ ======================================================================================================= */

/* halacpi.c */
ULONG64 HalpAcpiFindRootFromLoaderBlock(PLOADER_PARAMETER_BLOCK LoaderBlock);
VOID HalpAcpiInitializeTables(PLOADER_PARAMETER_BLOCK LoaderBlock);
PVOID HalpAcpiGetTable(ULONG Signature);
BOOLEAN HalpAcpiChecksumValid(PVOID Table, ULONG Length);
extern PUCHAR HalpAcpiBiosMultiNode;            /* ACPI_BIOS_MULTI_NODE: RsdtAddress, Count, E820 entries */
extern ULONG HalpAcpiBiosMultiNodeLength;       /* bytes of it the loader's configuration data holds */

/* madt.c: what the MADT told us */
typedef struct _HALP_IO_APIC
{
    UCHAR Id;
    ULONG PhysicalAddress;
    ULONG GsiBase;
    ULONG InputCount;           /* from the IOAPIC's version register */
    volatile ULONG *Registers;  /* our uncached mapping */
} HALP_IO_APIC, *PHALP_IO_APIC;

typedef struct _HALP_ISA_OVERRIDE
{
    BOOLEAN Present;
    ULONG Gsi;
    USHORT Flags;               /* MPS INTI flags */
} HALP_ISA_OVERRIDE;

typedef struct _HALP_APIC_INFO
{
    ULONG LocalApicAddress;
    ULONG MadtFlags;
    ULONG ProcessorCount;       /* enabled or online-capable local APIC / x2APIC entries */
    ULONG IoApicCount;
    HALP_IO_APIC IoApic[HALP_MAX_IO_APICS];
    HALP_ISA_OVERRIDE IsaOverride[HALP_ISA_IRQ_COUNT];
    ULONG NmiSourceCount;
    struct
    {
        UCHAR AcpiProcessorUid;
        UCHAR Lint;
        USHORT Flags;
    } NmiSource[4];
    UCHAR BootProcessorUid;     /* ACPI UID of the local APIC entry whose ID is ours */
} HALP_APIC_INFO;

extern HALP_APIC_INFO HalpApicInfo;
VOID HalpParseApicTables(VOID);
HALP_NOINLINE VOID HalpVerifyPcatCompatibility(VOID);
BOOLEAN HalpIrqToGsi(UCHAR IsaIrq, PULONG Gsi, PBOOLEAN LevelSensitive, PBOOLEAN ActiveLow);

/* fadt.c */
extern ACPI_FADT HalpFadt;
VOID HalpParseFadt(VOID);
HALP_NOINLINE VOID HalpAcpiEnable(VOID);

/* pmtimer.c */
HALP_NOINLINE ULONG64 HalpReadPmTimer(VOID);

/* ==== apic/ ======================================================================================================= */

/* apic.c */
extern ULONG HalpLocalApicId;
VOID HalpInitializeLocalApic(ULONG ProcessorNumber);
VOID HalpConfigureLocalApicNmi(VOID);
VOID HalpInitializeIoApic(VOID);
BOOLEAN HalpEnableIsaInterrupt(UCHAR IsaIrq, UCHAR Vector);
HALP_NOINLINE BOOLEAN HalpEnableIoApicInput(ULONG Gsi, UCHAR Vector, BOOLEAN LevelSensitive, BOOLEAN ActiveLow);
VOID HalpSendEOI(VOID);
VOID HalpSetIdtEntry(UCHAR Vector, PVOID Handler);
typedef VOID (*PHALP_INTERRUPT_HANDLER)(PKTRAP_FRAME TrapFrame);
BOOLEAN HalpConnectInterrupt(UCHAR Vector, PHALP_INTERRUPT_HANDLER Handler);
VOID HalpDispatchInterrupt(PKTRAP_FRAME TrapFrame, ULONG Vector);
VOID HalpApicErrorHandler(PKTRAP_FRAME TrapFrame);

/* apictrap.S: interrupt entry stubs. Each builds a KTRAP_FRAME and calls HalpDispatchInterrupt with its vector. */
VOID HalpClockInterrupt(VOID);          /* VECTOR_CLOCK */
VOID HalpProfileInterrupt(VOID);        /* VECTOR_PROFILE */
VOID HalpApicErrorInterrupt(VOID);      /* VECTOR_APIC_ERROR */
VOID HalpApicSpuriousService(VOID);     /* bare iretq: a spurious interrupt needs no EOI */

/* rtctimer.c */
HALP_NOINLINE VOID HalpInitializeClock(VOID);
HALP_NOINLINE VOID HalpClockInterruptHandler(PKTRAP_FRAME TrapFrame);
ULONG NTAPI HalSetTimeIncrement(ULONG DesiredIncrement);

/* tsc.c */
extern ULONG64 HalpTscFrequency;
extern ULONG HalpApicTimerFrequency;
HALP_NOINLINE VOID HalpCalibrateStallExecution(VOID);
VOID NTAPI HalCalibratePerformanceCounter(volatile LONG *Count, ULONG64 NewCount);

/* profile.c */
VOID HalpProfileInterruptHandler(PKTRAP_FRAME TrapFrame);
ULONG_PTR NTAPI HalSetProfileInterval(ULONG_PTR Interval);
VOID NTAPI HalStartProfileInterrupt(KPROFILE_SOURCE ProfileSource);
VOID NTAPI HalStopProfileInterrupt(KPROFILE_SOURCE ProfileSource);

/* profile.c: the interval in use (100 ns units), for HaliQuerySystemInformation */
ULONG_PTR HalpQueryProfileInterval(VOID);

/* processor.c */
DECLSPEC_NORETURN VOID HaliHaltSystem(VOID);
VOID NTAPI HalProcessorIdle(VOID);

#endif /* GEN2HAL_HALP_H */
