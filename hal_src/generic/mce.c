/*
 * mce.c -- machine checks and the NT 6.x hardware-error (WHEA) entry points.
 *
 * This HAL registers no WHEA error sources and does no error recovery. A machine check or a fatal error record
 * therefore ends the system, with the best description we have in the bug-check parameters.
 */
#include "halp.h"

/* Called by the kernel's machine-check handler. MCG_STATUS / MCG_CAP exist only when CPUID says the processor
 * has the machine-check architecture; reading them otherwise would raise #GP. */
VOID NTAPI HalHandleMcheck(PVOID TrapFrame, PVOID ExceptionFrame)
{
    ULONG Regs[4];
    ULONG64 McgStatus = 0, McgCap = 0;

    UNREFERENCED_PARAMETER(TrapFrame);
    UNREFERENCED_PARAMETER(ExceptionFrame);

    HalpCpuid(CPUID_LEAF_FEATURES, 0, Regs);
    if (Regs[3] & CPUID1_EDX_MCA)
    {
        McgStatus = HalpReadMsr(MSR_IA32_MCG_STATUS);
        McgCap = HalpReadMsr(MSR_IA32_MCG_CAP);
    }
    DbgPrint("gen2hal: machine check (MCG_STATUS %I64x, MCG_CAP %I64x)\n", McgStatus, McgCap);
    KeBugCheckEx(HALP_BUGCHECK_MACHINE_CHECK_EXCEPTION, 0, (ULONG_PTR)McgStatus, (ULONG_PTR)McgCap, 0);
}

/* PSHED's request to stop the system for a fatal hardware error: the error source's type and the record go into
 * the bug check. (mingw-w64 declares the descriptor without members; its Type follows Length and Version in the
 * WDK layout.) */
#define HALP_WHEA_SOURCE_TYPE_OFFSET 8

#if defined(GEN2HAL_TARGET_WIN7SP1_AMD64)
VOID NTAPI HalBugCheckSystem(PWHEA_ERROR_SOURCE_DESCRIPTOR ErrorSource, PWHEA_ERROR_RECORD ErrorRecord)
{
    ULONG_PTR SourceType = ErrorSource ? HALP_FIELD(ULONG, ErrorSource, HALP_WHEA_SOURCE_TYPE_OFFSET) : 0;

    KeBugCheckEx(HALP_BUGCHECK_WHEA_UNCORRECTABLE_ERROR, SourceType, (ULONG_PTR)ErrorRecord, 0, 0);
}
#endif

/* A request for deferred recovery of a hardware error: we registered no error source that could need it, and
 * silently dropping a recovery request would leave the error unhandled. */
VOID NTAPI HalRequestDeferredRecoveryServiceInterrupt(PVOID Context)
{
    HALP_UNSUPPORTED(HALP_SERVICE_DEFERRED_RECOVERY, Context);
}
