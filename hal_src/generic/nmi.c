/*
 * nmi.c -- non-maskable interrupts.
 *
 * On a PC/AT an NMI means hardware trouble: system control port B reports which kind (memory parity / PCI
 * SERR#, or an expansion card's I/O channel check). The kernel calls HalHandleNMI from its NMI handler; the
 * system cannot safely go on, so we say what we saw and stop with NMI_HARDWARE_FAILURE.
 */
#include "halp.h"

VOID NTAPI HalHandleNMI(PVOID NmiInfo)
{
    UCHAR Status = HalpReadPortUchar(SYSTEM_CONTROL_PORT_B);

    UNREFERENCED_PARAMETER(NmiInfo);

    DbgPrint("\n*** Hardware malfunction: non-maskable interrupt\n");
    if (Status & SCPB_PARITY_CHECK)
        DbgPrint("*** Memory parity error or PCI system error (SERR#)\n");
    if (Status & SCPB_CHANNEL_CHECK)
        DbgPrint("*** I/O channel check (an expansion card reported an error)\n");
    if (!(Status & (SCPB_PARITY_CHECK | SCPB_CHANNEL_CHECK)))
        DbgPrint("*** Source unknown (port 0x61 = 0x%02x)\n", Status);

    /* pci.sys registers a callback (HalSetPciErrorHandlerCallback, dispatch.c) that logs which device raised
     * SERR#; it runs before the system stops so that its findings reach the crash dump. */
    if (HalpPciErrorHandlerCallback != NULL)
        ((VOID (NTAPI *)(VOID))HalpPciErrorHandlerCallback)();

    KeBugCheckEx(HALP_BUGCHECK_NMI_HARDWARE_FAILURE, Status, 0, 0, 0);
}
