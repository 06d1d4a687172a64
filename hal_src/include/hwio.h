/*
 * hwio.h -- THE hardware primitives of the HAL.
 *
 * Every port, MSR, CPUID, TSC and APIC register access in hal_src goes through one of these small inline
 * functions, and nothing else touches hardware. That keeps the code honest about what it depends on, and lets
 * the generator's analyzer find each touch point as a call with a (macro-named) port, MSR or register argument.
 * The PCR/PRCB accessors read the kernel's per-processor structures through GS at the offsets target_abi.h
 * gives for the target's kernel.
 */
#ifndef GEN2HAL_HWIO_H
#define GEN2HAL_HWIO_H

#define HWIO_INLINE static __inline__ __attribute__((__always_inline__))

/* ---- I/O ports ------------------------------------------------------------------------------------------------ */

HWIO_INLINE UCHAR HalpReadPortUchar(USHORT Port)
{
    UCHAR Value;
    __asm__ __volatile__("inb %w1, %b0" : "=a"(Value) : "Nd"(Port) : "memory");
    return Value;
}

HWIO_INLINE USHORT HalpReadPortUshort(USHORT Port)
{
    USHORT Value;
    __asm__ __volatile__("inw %w1, %w0" : "=a"(Value) : "Nd"(Port) : "memory");
    return Value;
}

HWIO_INLINE ULONG HalpReadPortUlong(USHORT Port)
{
    ULONG Value;
    __asm__ __volatile__("inl %w1, %k0" : "=a"(Value) : "Nd"(Port) : "memory");
    return Value;
}

HWIO_INLINE VOID HalpWritePortUchar(USHORT Port, UCHAR Value)
{
    __asm__ __volatile__("outb %b0, %w1" : : "a"(Value), "Nd"(Port) : "memory");
}

HWIO_INLINE VOID HalpWritePortUshort(USHORT Port, USHORT Value)
{
    __asm__ __volatile__("outw %w0, %w1" : : "a"(Value), "Nd"(Port) : "memory");
}

HWIO_INLINE VOID HalpWritePortUlong(USHORT Port, ULONG Value)
{
    __asm__ __volatile__("outl %k0, %w1" : : "a"(Value), "Nd"(Port) : "memory");
}

/* ---- Model-specific registers, CPUID, time-stamp counter ----------------------------------------------------- */

HWIO_INLINE ULONG64 HalpReadMsr(ULONG Msr)
{
    ULONG Low, High;
    __asm__ __volatile__("rdmsr" : "=a"(Low), "=d"(High) : "c"(Msr) : "memory");
    return ((ULONG64)High << 32) | Low;
}

HWIO_INLINE VOID HalpWriteMsr(ULONG Msr, ULONG64 Value)
{
    __asm__ __volatile__("wrmsr" : : "c"(Msr), "a"((ULONG)Value), "d"((ULONG)(Value >> 32)) : "memory");
}

/* Regs receives EAX, EBX, ECX, EDX in that order. */
HWIO_INLINE VOID HalpCpuid(ULONG Leaf, ULONG Subleaf, ULONG Regs[4])
{
    __asm__ __volatile__("cpuid"
                         : "=a"(Regs[0]), "=b"(Regs[1]), "=c"(Regs[2]), "=d"(Regs[3])
                         : "a"(Leaf), "c"(Subleaf));
}

HWIO_INLINE ULONG64 HalpReadTsc(VOID)
{
    ULONG Low, High;
    __asm__ __volatile__("rdtsc" : "=a"(Low), "=d"(High) : : "memory");
    return ((ULONG64)High << 32) | Low;
}

/* ---- Local APIC (xAPIC MMIO; the loader maps its page at ADDR_APIC_BASE_VA) ------------------------------------ */

HWIO_INLINE ULONG ApicRead(ULONG Offset)
{
    return *(volatile ULONG *)(ULONG_PTR)(ADDR_APIC_BASE_VA + Offset);
}

HWIO_INLINE VOID ApicWrite(ULONG Offset, ULONG Value)
{
    *(volatile ULONG *)(ULONG_PTR)(ADDR_APIC_BASE_VA + Offset) = Value;
}

/* ---- I/O APIC (its page is mapped by the HAL; IoApic is that mapping) ----------------------------------------- */

HWIO_INLINE ULONG IoApicRead(volatile ULONG *IoApic, ULONG Register)
{
    IoApic[IOAPIC_REGSEL / sizeof(ULONG)] = Register;
    return IoApic[IOAPIC_WINDOW / sizeof(ULONG)];
}

HWIO_INLINE VOID IoApicWrite(volatile ULONG *IoApic, ULONG Register, ULONG Value)
{
    IoApic[IOAPIC_REGSEL / sizeof(ULONG)] = Register;
    IoApic[IOAPIC_WINDOW / sizeof(ULONG)] = Value;
}

/* ---- KPCR / KPRCB fields through GS (offsets: target_abi.h) ------------------------------------------------------ */

HWIO_INLINE UCHAR HalpReadPcrUchar(ULONG Offset)
{
    UCHAR Value;
    __asm__ __volatile__("movb %%gs:(%1), %0" : "=q"(Value) : "r"((ULONG64)Offset) : "memory");
    return Value;
}

HWIO_INLINE USHORT HalpReadPcrUshort(ULONG Offset)
{
    USHORT Value;
    __asm__ __volatile__("movw %%gs:(%1), %0" : "=r"(Value) : "r"((ULONG64)Offset) : "memory");
    return Value;
}

HWIO_INLINE ULONG HalpReadPcrUlong(ULONG Offset)
{
    ULONG Value;
    __asm__ __volatile__("movl %%gs:(%1), %0" : "=r"(Value) : "r"((ULONG64)Offset) : "memory");
    return Value;
}

HWIO_INLINE ULONG64 HalpReadPcrUlong64(ULONG Offset)
{
    ULONG64 Value;
    __asm__ __volatile__("movq %%gs:(%1), %0" : "=r"(Value) : "r"((ULONG64)Offset) : "memory");
    return Value;
}

HWIO_INLINE VOID HalpWritePcrUlong(ULONG Offset, ULONG Value)
{
    __asm__ __volatile__("movl %0, %%gs:(%1)" : : "r"(Value), "r"((ULONG64)Offset) : "memory");
}

/* The KPRCB is embedded in the KPCR at KPCR_Prcb. */
#define HalpReadPrcbUchar(Field)        HalpReadPcrUchar(KPCR_Prcb + (Field))
#define HalpReadPrcbUshort(Field)       HalpReadPcrUshort(KPCR_Prcb + (Field))
#define HalpReadPrcbUlong(Field)        HalpReadPcrUlong(KPCR_Prcb + (Field))
#define HalpWritePrcbUlong(Field, V)    HalpWritePcrUlong(KPCR_Prcb + (Field), (V))

#endif /* GEN2HAL_HWIO_H */
