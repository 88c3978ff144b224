/* Colour on a Game Boy Color (colour.c) and the joypad (pad.c): kept out of main.c, which only
 * calls these hooks. The serial interrupt answers the host's joypad and model queries (isr.s). */
#ifndef PXBY_COLOUR_H
#define PXBY_COLOUR_H

#include <stdint.h>

extern uint8_t colour_staged; /* palettes wait for the next FLIP */

void colour_reset(void); /* HELLO, LCD off: white palettes, bank-1 attributes zero (CGB only) */
/* the serial interrupt checked the payloads (isr.s check_palette, check_attr) */
void colour_palette(const uint8_t *p, uint8_t len); /* T_PALETTE: stage them for the next FLIP */
void colour_attr(const uint8_t *p, uint8_t len); /* T_ATTR: address + bytes into VRAM bank 1 */
/* 1 once the staged palettes and FLIP_LCDC are applied, in a VBlank after the one counted ``since`` */
uint8_t colour_flip(uint8_t since);

void pad_poll(void); /* once per VBlank: buttons gone down are latched until the host's Q_CLEAR */

#endif
