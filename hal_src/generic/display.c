/*
 * display.c -- the HAL's text display services.
 *
 * This HAL drives no display hardware (no VGA text mode, no boot video): strings go to the kernel debugger
 * through DbgPrint, which is where a headless or virtual machine's early text can be read.
 */
#include "halp.h"

/* The routine the display owner asks us to call before we use the display ourselves. We never take the display
 * over, so it is recorded and never called. */
static PHAL_RESET_DISPLAY_PARAMETERS HalpResetDisplayParameters;

VOID NTAPI HalDisplayString(PUCHAR String)
{
    DbgPrint("%s", (PCSTR)String);
}

VOID NTAPI HalAcquireDisplayOwnership(PHAL_RESET_DISPLAY_PARAMETERS ResetDisplayParameters)
{
    HalpResetDisplayParameters = ResetDisplayParameters;
}

/* No text display: zero columns and rows, cursor at the origin. */
VOID NTAPI HalQueryDisplayParameters(PULONG WidthInCharacters, PULONG HeightInCharacters, PULONG CursorColumn,
                                     PULONG CursorRow)
{
    *WidthInCharacters = 0;
    *HeightInCharacters = 0;
    *CursorColumn = 0;
    *CursorRow = 0;
}

/* No cursor to move. */
VOID NTAPI HalSetDisplayParameters(ULONG CursorColumn, ULONG CursorRow)
{
    UNREFERENCED_PARAMETER(CursorColumn);
    UNREFERENCED_PARAMETER(CursorRow);
}
