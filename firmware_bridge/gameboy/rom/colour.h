/* Colour on a Game Boy Color (colour.c) and the joypad (pad.c): kept out of main.c, which only
 * calls these hooks. */
#ifndef PXBY_COLOUR_H
#define PXBY_COLOUR_H

#include <stdint.h>

extern uint8_t colour_staged; /* palettes wait for the next FLIP */

void colour_reset(void); /* HELLO, LCD off: white palettes, bank-1 attributes zero (CGB only) */
uint8_t colour_palette(const uint8_t *p, uint8_t len); /* T_PALETTE: stage them; 0 or an error */
uint8_t colour_attr(const uint8_t *p, uint8_t len); /* T_ATTR: address + bytes into VRAM bank 1 */
uint8_t colour_flip(void); /* 1 once the staged palettes and FLIP_LCDC are applied in this VBlank */

void pad_poll(void); /* once per VBlank: the buttons held now are latched until a clear */
void pad_query(uint8_t byte); /* a host byte outside a packet: a joypad or model query, or nothing */

#endif
