/*
 * apictrap.S -- interrupt entry stubs for the vectors this HAL owns.
 *
 * On an interrupt the processor pushes SS, RSP, RFLAGS, CS and RIP: exactly the tail of a KTRAP_FRAME, ending at
 * KTRAP_FRAME_Rip. Each stub pushes the error-code slot and moves RSP down to the frame's base, so the C handler
 * receives a real KTRAP_FRAME (its first 0x20 bytes double as the callee's home space). It saves the registers
 * the Microsoft x64 convention lets a callee destroy (RAX, RCX, RDX, R8-R11, XMM0-5) in their frame slots; the
 * handler preserves the rest. The frame is 16-byte aligned (the processor aligns RSP before pushing its five
 * quadwords; with the error-code slot that is 48 bytes, and KTRAP_FRAME_ErrorCode is a multiple of 16), so
 * MOVDQA and the call are aligned. An interrupt from user mode swaps GS to the kernel's PCR first.
 *
 * Every stub calls HalpDispatchInterrupt(TrapFrame, Vector), which runs the handler HalpConnectInterrupt
 * recorded for the vector (apic.c): the C side decides what a vector does, the stubs only build frames.
 */
#include "target_abi.h"

        .intel_syntax noprefix
        .text

/* ReactOS's kernel checks this marker in the error-code slot of clock interrupt frames. */
#define CLOCK_FRAME_MARKER 0xC10C4

.macro HALP_TRAP_STUB Name, Vector, ErrorCode
        .globl \Name
        .p2align 4
\Name:
        push    \ErrorCode
        sub     rsp, KTRAP_FRAME_ErrorCode
        mov     [rsp + KTRAP_FRAME_Rax], rax
        mov     [rsp + KTRAP_FRAME_Rcx], rcx
        mov     [rsp + KTRAP_FRAME_Rdx], rdx
        mov     [rsp + KTRAP_FRAME_R8], r8
        mov     [rsp + KTRAP_FRAME_R9], r9
        mov     [rsp + KTRAP_FRAME_R10], r10
        mov     [rsp + KTRAP_FRAME_R11], r11
        movdqa  [rsp + KTRAP_FRAME_Xmm0], xmm0
        movdqa  [rsp + KTRAP_FRAME_Xmm1], xmm1
        movdqa  [rsp + KTRAP_FRAME_Xmm2], xmm2
        movdqa  [rsp + KTRAP_FRAME_Xmm3], xmm3
        movdqa  [rsp + KTRAP_FRAME_Xmm4], xmm4
        movdqa  [rsp + KTRAP_FRAME_Xmm5], xmm5
        test    byte ptr [rsp + KTRAP_FRAME_SegCs], 1
        jz      1f
        swapgs
1:
        cld
        mov     rcx, rsp
        mov     edx, \Vector
        call    HalpDispatchInterrupt
        test    byte ptr [rsp + KTRAP_FRAME_SegCs], 1
        jz      2f
        swapgs
2:
        movdqa  xmm0, [rsp + KTRAP_FRAME_Xmm0]
        movdqa  xmm1, [rsp + KTRAP_FRAME_Xmm1]
        movdqa  xmm2, [rsp + KTRAP_FRAME_Xmm2]
        movdqa  xmm3, [rsp + KTRAP_FRAME_Xmm3]
        movdqa  xmm4, [rsp + KTRAP_FRAME_Xmm4]
        movdqa  xmm5, [rsp + KTRAP_FRAME_Xmm5]
        mov     r11, [rsp + KTRAP_FRAME_R11]
        mov     r10, [rsp + KTRAP_FRAME_R10]
        mov     r9, [rsp + KTRAP_FRAME_R9]
        mov     r8, [rsp + KTRAP_FRAME_R8]
        mov     rdx, [rsp + KTRAP_FRAME_Rdx]
        mov     rcx, [rsp + KTRAP_FRAME_Rcx]
        mov     rax, [rsp + KTRAP_FRAME_Rax]
        add     rsp, KTRAP_FRAME_ErrorCode + 8
        iretq
.endm

/* System clock (VECTOR_CLOCK). */
HALP_TRAP_STUB HalpClockInterrupt, VECTOR_CLOCK, CLOCK_FRAME_MARKER

/* Profiling (local-APIC timer, VECTOR_PROFILE). */
HALP_TRAP_STUB HalpProfileInterrupt, VECTOR_PROFILE, 0

/* Local APIC error (VECTOR_APIC_ERROR). */
HALP_TRAP_STUB HalpApicErrorInterrupt, VECTOR_APIC_ERROR, 0

/* A spurious interrupt is not in service: no EOI, no work, just return. */
        .globl HalpApicSpuriousService
        .p2align 4
HalpApicSpuriousService:
        iretq
