/*
 * halacpi.c -- finding and reading the ACPI tables.
 *
 * The loader, not the HAL, finds the RSDP: it leaves an "ACPI BIOS" component in the ARC configuration tree
 * (LoaderBlock->ConfigurationRoot) whose data ends in an ACPI_BIOS_MULTI_NODE holding the physical address of the
 * root table (the XSDT when the RSDP has one, else the RSDT). We map the root, check it, and look tables up by
 * signature on request. Every table we use is checksummed first; a firmware that fails any of this stops the
 * boot with ACPI_BIOS_ERROR (parameters in README.md).
 */
#include "halp.h"

/* Longest table we accept (a sanity bound against a corrupt Length; real MADT/FADT/DSDT are far smaller). */
#define HALP_ACPI_MAX_TABLE_LENGTH (1024 * 1024)
#define HALP_ACPI_CACHE_SIZE 8

/* The loader's ACPI_BIOS_MULTI_NODE (root address, then the firmware's memory map) and how many of its bytes the
 * configuration data holds: kept for whoever checks an address against the RAM the loader described. */
PUCHAR HalpAcpiBiosMultiNode;
ULONG HalpAcpiBiosMultiNodeLength;

static PACPI_DESCRIPTION_HEADER HalpAcpiRoot;
static ULONG HalpAcpiRootEntrySize;             /* 8 for an XSDT, 4 for an RSDT */
static ULONG HalpAcpiRootEntryCount;

/* Tables already mapped and checked, by signature. */
static struct
{
    ULONG Signature;
    PACPI_DESCRIPTION_HEADER Table;
} HalpAcpiCache[HALP_ACPI_CACHE_SIZE];

static BOOLEAN HalpStringsEqual(PCSTR A, PCSTR B)
{
    while (*A != '\0' && *A == *B)
    {
        A++;
        B++;
    }
    return *A == *B;
}

ULONG64 HalpAcpiFindRootFromLoaderBlock(PLOADER_PARAMETER_BLOCK LoaderBlock)
{
    PCONFIGURATION_COMPONENT_DATA Root, Node, Resume = NULL;
    PCSTR Identifier;
    PUCHAR Data;
    ULONG DataLength;

    Root = HALP_FIELD(PCONFIGURATION_COMPONENT_DATA, LoaderBlock, LOADER_BLOCK_ConfigurationRoot);
    for (;;)
    {
        Node = KeFindConfigurationNextEntry(Root, ACPI_BIOS_NODE_COMPONENT_CLASS, ACPI_BIOS_NODE_COMPONENT_TYPE,
                                            NULL, &Resume);
        if (Node == NULL)
            KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_NO_BIOS_NODE, 0, 0, 0);

        Identifier = HALP_FIELD(PCSTR, Node, CONFIGURATION_COMPONENT_DATA_Identifier);
        if (Identifier != NULL && HalpStringsEqual(Identifier, ACPI_BIOS_NODE_IDENTIFIER))
            break;
        Resume = Node;
    }

    /* Data: a CM_PARTIAL_RESOURCE_LIST with one device-specific descriptor, then the multi node. */
    Data = HALP_FIELD(PUCHAR, Node, CONFIGURATION_COMPONENT_DATA_ConfigurationData);
    DataLength = HALP_FIELD(ULONG, Node, CONFIGURATION_COMPONENT_DATA_ConfigurationDataLength);
    if (Data == NULL || DataLength < ACPI_BIOS_NODE_MULTI_NODE_OFFSET + ACPI_BIOS_NODE_Count + sizeof(ULONG64))
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_NO_BIOS_NODE, DataLength, 0, 0);

    HalpAcpiBiosMultiNode = Data + ACPI_BIOS_NODE_MULTI_NODE_OFFSET;
    HalpAcpiBiosMultiNodeLength = DataLength - ACPI_BIOS_NODE_MULTI_NODE_OFFSET;
    return HALP_FIELD(ULONG64, Data, ACPI_BIOS_NODE_MULTI_NODE_OFFSET + ACPI_BIOS_NODE_RsdtAddress);
}

/* A table is valid when all its bytes, checksum included, add up to 0 modulo 256. */
static UCHAR HalpAcpiByteSum(PVOID Table, ULONG Length)
{
    PUCHAR Byte = Table;
    UCHAR Sum = 0;
    ULONG i;

    for (i = 0; i < Length; i++)
        Sum = (UCHAR)(Sum + Byte[i]);
    return Sum;
}

BOOLEAN HalpAcpiChecksumValid(PVOID Table, ULONG Length)
{
    return HalpAcpiByteSum(Table, Length) == 0;
}

static ULONG HalpPagesSpanned(ULONG64 PhysicalAddress, ULONG Length)
{
    return (ULONG)(((PhysicalAddress & (PAGE_SIZE - 1)) + Length + PAGE_SIZE - 1) / PAGE_SIZE);
}

/* Map a whole table (header first, to learn its length) and check its length and checksum. The mapping is
 * kept: tables are read for the life of the system. */
static PACPI_DESCRIPTION_HEADER HalpAcpiMapTable(ULONG64 PhysicalAddress)
{
    PHYSICAL_ADDRESS Pa;
    PACPI_DESCRIPTION_HEADER Header;
    ULONG Length, Signature, HeaderPages;

    Pa.QuadPart = (LONGLONG)PhysicalAddress;
    HeaderPages = HalpPagesSpanned(PhysicalAddress, sizeof(ACPI_DESCRIPTION_HEADER));
    Header = HalpMapPhysicalMemory64(Pa, HeaderPages, FALSE);
    Length = Header->Length;
    Signature = Header->Signature;
    HalpUnmapVirtualAddress(Header, HeaderPages);

    if (Length < sizeof(ACPI_DESCRIPTION_HEADER) || Length > HALP_ACPI_MAX_TABLE_LENGTH)
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_BAD_TABLE_LENGTH, Signature, PhysicalAddress, Length);

    Header = HalpMapPhysicalMemory64(Pa, HalpPagesSpanned(PhysicalAddress, Length), FALSE);
    if (!HalpAcpiChecksumValid(Header, Length))
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_BAD_CHECKSUM, Signature, PhysicalAddress,
                     HalpAcpiByteSum(Header, Length));
    return Header;
}

/* Peek at a table's signature without keeping a mapping. */
static ULONG HalpAcpiPeekSignature(ULONG64 PhysicalAddress)
{
    PHYSICAL_ADDRESS Pa;
    PACPI_DESCRIPTION_HEADER Header;
    ULONG Pages = HalpPagesSpanned(PhysicalAddress, sizeof(ULONG)), Signature;

    Pa.QuadPart = (LONGLONG)PhysicalAddress;
    Header = HalpMapPhysicalMemory64(Pa, Pages, FALSE);
    Signature = Header->Signature;
    HalpUnmapVirtualAddress(Header, Pages);
    return Signature;
}

VOID HalpAcpiInitializeTables(PLOADER_PARAMETER_BLOCK LoaderBlock)
{
    ULONG64 RootAddress = HalpAcpiFindRootFromLoaderBlock(LoaderBlock);
    ULONG Signature = HalpAcpiPeekSignature(RootAddress);

    /* Check the signature before trusting the length and checksum of whatever is there. */
    if (Signature == ACPI_XSDT_SIGNATURE)
        HalpAcpiRootEntrySize = sizeof(ULONG64);
    else if (Signature == ACPI_RSDT_SIGNATURE)
        HalpAcpiRootEntrySize = sizeof(ULONG);
    else
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_BAD_ROOT, RootAddress, Signature, 0);

    HalpAcpiRoot = HalpAcpiMapTable(RootAddress);
    HalpAcpiRootEntryCount = (HalpAcpiRoot->Length - sizeof(ACPI_DESCRIPTION_HEADER)) / HalpAcpiRootEntrySize;
}

static ULONG64 HalpAcpiRootEntry(ULONG Index)
{
    PUCHAR Entries = (PUCHAR)(HalpAcpiRoot + 1);

    /* Entries are packed, not necessarily naturally aligned. */
    if (HalpAcpiRootEntrySize == sizeof(ULONG64))
        return *(ULONG64 UNALIGNED *)(Entries + Index * sizeof(ULONG64));
    return *(ULONG UNALIGNED *)(Entries + Index * sizeof(ULONG));
}

static PACPI_DESCRIPTION_HEADER HalpAcpiCacheLookup(ULONG Signature)
{
    ULONG i;

    for (i = 0; i < HALP_ACPI_CACHE_SIZE; i++)
        if (HalpAcpiCache[i].Table != NULL && HalpAcpiCache[i].Signature == Signature)
            return HalpAcpiCache[i].Table;
    return NULL;
}

static VOID HalpAcpiCacheInsert(ULONG Signature, PACPI_DESCRIPTION_HEADER Table)
{
    ULONG i;

    for (i = 0; i < HALP_ACPI_CACHE_SIZE; i++)
    {
        if (HalpAcpiCache[i].Table == NULL)
        {
            HalpAcpiCache[i].Signature = Signature;
            HalpAcpiCache[i].Table = Table;
            return;
        }
    }
    /* A full cache only costs a repeated mapping next time. */
}

/* The first table with this signature, mapped and checked; NULL if the firmware has none. The DSDT is not in
 * the root table: the FADT points at it (X_DSDT when present, else the 32-bit DSDT field). */
PVOID HalpAcpiGetTable(ULONG Signature)
{
    PACPI_DESCRIPTION_HEADER Table = HalpAcpiCacheLookup(Signature);
    ULONG64 Address = 0;
    ULONG i;

    if (Table != NULL || HalpAcpiRoot == NULL)
        return Table;

    if (Signature == ACPI_DSDT_SIGNATURE)
    {
        PACPI_FADT Fadt = HalpAcpiGetTable(ACPI_FADT_SIGNATURE);

        if (Fadt == NULL)
            return NULL;
        if (Fadt->Header.Length >= FIELD_OFFSET(ACPI_FADT, XDsdt) + sizeof(ULONG64) && Fadt->XDsdt != 0)
            Address = Fadt->XDsdt;
        else
            Address = Fadt->Dsdt;
    }
    else
    {
        for (i = 0; i < HalpAcpiRootEntryCount; i++)
        {
            ULONG64 Entry = HalpAcpiRootEntry(i);

            if (Entry != 0 && HalpAcpiPeekSignature(Entry) == Signature)
            {
                Address = Entry;
                break;
            }
        }
    }
    if (Address == 0)
        return NULL;

    Table = HalpAcpiMapTable(Address);
    if (Table->Signature != Signature)
        return NULL;
    HalpAcpiCacheInsert(Signature, Table);
    return Table;
}
