/*
 * compat.h -- what mingw-w64 10's headers lack for kernel code built with gcc.
 *
 * _disable, _enable and __invlpg are declared by <intrin.h> but gcc has no definition for them (a call would be
 * an unresolved import); __halt is not declared at all. gnu_inline "extern inline" matches the existing
 * declarations and never emits an out-of-line copy.
 */
#ifndef GEN2HAL_COMPAT_H
#define GEN2HAL_COMPAT_H

extern __inline__ __attribute__((__gnu_inline__, __always_inline__)) void _disable(void)
{
    __asm__ __volatile__("cli" ::: "memory");
}

extern __inline__ __attribute__((__gnu_inline__, __always_inline__)) void _enable(void)
{
    __asm__ __volatile__("sti" ::: "memory");
}

extern __inline__ __attribute__((__gnu_inline__, __always_inline__)) void __invlpg(void *Address)
{
    __asm__ __volatile__("invlpg (%0)" : : "r"(Address) : "memory");
}

static __inline__ __attribute__((__always_inline__)) void __halt(void)
{
    __asm__ __volatile__("hlt" ::: "memory");
}

/* RFLAGS.IF: the interrupt-enable flag. */
#define HALP_RFLAGS_IF 0x200ULL

/* Disable interrupts and return the previous RFLAGS, so that nested users restore exactly what they found. */
static __inline__ __attribute__((__always_inline__)) ULONG64 HalpDisableInterrupts(void)
{
    ULONG64 Flags;
    __asm__ __volatile__("pushfq; popq %0; cli" : "=r"(Flags) : : "memory");
    return Flags;
}

static __inline__ __attribute__((__always_inline__)) void HalpRestoreInterrupts(ULONG64 Flags)
{
    if (Flags & HALP_RFLAGS_IF)
        _enable();
}

/* "pause": the spin-wait hint (the intrinsic header's version is SSE-flavoured; this one is plain). */
static __inline__ __attribute__((__always_inline__)) void HalpYieldProcessor(void)
{
    __asm__ __volatile__("pause" ::: "memory");
}

#endif /* GEN2HAL_COMPAT_H */
