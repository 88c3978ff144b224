/* Colour on a Game Boy Color. The same ROM runs on a DMG (header 0x143 = 0x80): crt0 keeps the
 * boot ROM's A (0x11 on a CGB) in BOOT_A, and on a DMG the colour packets are checked and
 * acknowledged but change nothing, so the DMG shows its 4 shades as before.
 *
 * T_PALETTE stages up to 8 background palettes (4 RGB555 colours, little-endian); the next FLIP
 * applies them and the new map in the same VBlank, so a frame never shows the new map with the
 * old palettes. T_ATTR writes tile attributes (bits 0-2: palette) into VRAM bank 1 at the map
 * addresses, with the same VBlank-only copy as T_VRAM. */
#include <stdint.h>

#include "colour.h"
#include "hram.h"

#define PAL_BYTES 64u

uint8_t colour_staged;
static uint8_t pal_stage[PAL_BYTES];
static uint8_t pal_len, pal_first; /* bytes staged, and BCPS for the first: auto-increment | palette * 8 */

static uint8_t is_cgb(void)
{
    return HR(BOOT_A) == 0x11u;
}

/* pal_len bytes from pal_stage into palette RAM from pal_first's palette on: 7 M-cycles a byte (a
 * palette or two as a sprite grows, 64 bytes at most: 4 lines), so a start on line 144..146 ends
 * inside VBlank with room for serial interrupts. */
static void palette_load(void) __naked
{
    __asm
        ld      a, (_pal_first)
        ldh     (0x68), a
        ld      hl, #_pal_stage
        ld      a, (_pal_len)
        srl     a
        ld      c, a
    1$:
        ld      a, (hl+)
        ldh     (0x69), a
        ld      a, (hl+)
        ldh     (0x69), a
        dec     c
        jr      nz, 1$
        ret
    __endasm;
}

/* Zero 0x9800..0x9FFF of the selected VRAM bank (6 M-cycles a byte: 0.7 frames); LCD off only. */
static void maps_clear(void) __naked
{
    __asm
        ld      hl, #0x9800
        xor     a
        ld      c, #0x08
        ld      b, a
    1$:
        ld      (hl+), a
        dec     b
        jr      nz, 1$
        dec     c
        jr      nz, 1$
        ret
    __endasm;
}

void colour_reset(void)
{
    uint8_t i;
    colour_staged = 0;
    if (!is_cgb())
        return;
    for (i = 0; i < PAL_BYTES; i++)
        pal_stage[i] = 0xFFu; /* white: a blank screen before the first FLIP */
    pal_len = PAL_BYTES;
    pal_first = 0x80u;
    palette_load();
    HR(R_VBK) = 1;
    maps_clear();
    HR(R_VBK) = 0;
}

void colour_palette(const uint8_t *p, uint8_t len)
{
    uint8_t i;
    if (!is_cgb())
        return;
    for (i = 1; i < len; i++)
        pal_stage[i - 1u] = p[i];
    pal_len = len - 1u;
    pal_first = 0x80u | (uint8_t)(p[0] << 3);
    colour_staged = 1;
}

/* VRAM bank 1 for one copy: vram_copy writes around mode 3 at any point of the frame. */
void colour_attr(const uint8_t *p, uint8_t len)
{
    if (!is_cgb())
        return;
    HR(COPY_SRC) = (uint8_t)(uint16_t)(p + 2);
    HR(COPY_SRC + 1) = (uint8_t)((uint16_t)(p + 2) >> 8);
    HR(COPY_DST) = p[0];
    HR(COPY_DST + 1) = p[1];
    HR(COPY_LEN) = len - 2u;
    HR(R_VBK) = 1;
    vram_copy();
    HR(R_VBK) = 0;
}

/* Reading LY >= 144 means this VBlank's interrupt has run (it is taken at the next instruction
 * once LY reaches 144), so nothing rewrites LCDC after us until the next one. Not in the VBlank
 * counted ``since``: a flip the VBlank interrupt made in it would never be shown. */
uint8_t colour_flip(uint8_t since)
{
    uint8_t ly = HR(R_LY);
    if (ly < 144u || ly > 146u || HR(VBLANKS) == since)
        return 0;
    palette_load();
    HR(LCDC_TOP) = HR(FLIP_LCDC);
    HR(R_LCDC) = HR(FLIP_LCDC);
    HR(R_BGP) = HR(FLIP_BGP);
    HR(FLIPS) = HR(FLIPS) + 1u; /* as the VBlank interrupt counts its flips */
    colour_staged = 0;
    return 1;
}
