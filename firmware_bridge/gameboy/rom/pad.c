/* The joypad, read by the main loop once per VBlank and reported on the host's request by the
 * serial interrupt (isr.s, hunt).
 *
 * Outside a packet the host may clock a query byte instead of idle (docs/protocol.md, "Joypad
 * and model"); the ROM answers in its status byte, whose high nibble (5, 6, 7) never starts an
 * ACK (8..F), an error (4) or ready/busy (1..3):
 *   50 -> 5x  buttons  x: A 1, B 2, Select 4, Start 8 pressed (gone down) since the last clear
 *   60 -> 6x  d-pad    x: Right 1, Left 2, Up 4, Down 8 (the same)
 *   70 -> 7x  clear what was latched; x: bit 0 set on a Game Boy Color
 * A press is latched until the host has read it, so a short one is never missed, and a button
 * held across reads counts once: each press is one action, as a player means it. */
#include <stdint.h>

#include "colour.h"
#include "hram.h"

/* P1: write 0x20 to select the d-pad, 0x10 for the buttons; read a few times (the lines settle
 * after the select); a pressed line reads 0. */
static uint8_t pad_read(uint8_t select)
{
    uint8_t v;
    HR(R_P1) = select;
    v = HR(R_P1);
    v = HR(R_P1);
    v = HR(R_P1);
    v = HR(R_P1);
    return (uint8_t)(~v) & 0x0Fu;
}

void pad_poll(void)
{
    uint8_t held = pad_read(0x10u) | (uint8_t)(pad_read(0x20u) << 4);
    uint8_t down = held & (uint8_t)~HR(PAD_HELD); /* went down since the last poll */
    HR(R_P1) = 0x30u;
    HR(PAD_HELD) = held;
    /* with interrupts off: the serial interrupt clears the latch on a Q_CLEAR, and a clear lost
     * between this read and write would report the same press twice */
    __asm__("di");
    HR(PAD_LATCH) = HR(PAD_LATCH) | down;
    __asm__("ei");
}
