/*
 * runtime.c -- the memory routines gcc may emit calls to on its own (structure copies, zeroing, loops it
 * recognises), even in a freestanding build. The HAL links no C library, so they live here; string
 * instructions keep gcc from turning these very loops back into calls to themselves.
 */
#include "halp.h"

void *memcpy(void *Destination, const void *Source, size_t Length)
{
    void *D = Destination;
    const void *S = Source;

    __asm__ __volatile__("rep movsb" : "+D"(D), "+S"(S), "+c"(Length) : : "memory");
    return Destination;
}

void *memmove(void *Destination, const void *Source, size_t Length)
{
    PUCHAR D = Destination;
    const UCHAR *S = Source;

    if (D <= S || D >= S + Length)
        return memcpy(Destination, Source, Length);

    /* Overlapping, destination above source: copy backwards (direction flag set only for this). */
    D += Length - 1;
    S += Length - 1;
    __asm__ __volatile__("std; rep movsb; cld" : "+D"(D), "+S"(S), "+c"(Length) : : "memory");
    return Destination;
}

void *memset(void *Destination, int Value, size_t Length)
{
    void *D = Destination;

    __asm__ __volatile__("rep stosb" : "+D"(D), "+c"(Length) : "a"(Value) : "memory");
    return Destination;
}

int memcmp(const void *A, const void *B, size_t Length)
{
    const UCHAR *X = A, *Y = B;
    size_t i;

    for (i = 0; i < Length; i++)
        if (X[i] != Y[i])
            return X[i] < Y[i] ? -1 : 1;
    return 0;
}
