/* Fixed addresses shared by the C code and the assembly (isr.s): HRAM for the interrupt state and
 * the packet parser, 8 WRAM pages for the queue of received packets (slot i at 0xD000 + 256 i:
 * seq, len, type, payload). Keep in step with the .equ lines at the top of isr.s. */
#ifndef PXBY_HRAM_H
#define PXBY_HRAM_H

#include <stdint.h>

#define HR(a) (*(volatile uint8_t *)(a))

#define PARSE_STATE 0xFF80 /* the serial parser's state (isr.s S_*); 1 = hunting for the sync byte */
#define PARSE_PTR 0xFF81 /* next offset it writes in the slot */
#define STATUS 0xFF82 /* the byte the ISR loads into SB for the host's next exchange */
#define REARMS 0xFF83 /* times the watchdog re-armed the port (found unarmed, or realigned after quiet) */
#define VBLANKS 0xFF84 /* VBlank count, mod 256 */
#define LCDC_TOP 0xFF85 /* LCDC written at every VBlank (tile data at 0x8000 for the top rows) */
#define FLIP_PENDING 0xFF86 /* main asks the VBlank ISR to switch maps and palette ... */
#define FLIP_LCDC 0xFF87 /* ... to this LCDC */
#define FLIP_BGP 0xFF88 /* ... and this BGP */
#define FLIPS 0xFF89 /* flips done, mod 256 (an emulator test captures the frame after each) */
#define COPY_SRC 0xFF8A /* vram_copy arguments: source (2 bytes), destination (2), length (1) */
#define COPY_DST 0xFF8C
#define COPY_LEN 0xFF8E
#define Q_WR 0xFF90 /* slot the parser fills; published (and acknowledged) by advancing it */
#define Q_RD 0xFF91 /* slot the main loop applies; Q_RD == Q_WR: every packet is applied */
#define EXPECT 0xFF92 /* the next seq to accept */
#define SESSION 0xFF93 /* 1 once a HELLO was accepted */
#define LAST_SEQ 0xFF94 /* the last seq accepted */
#define PARSE_SUMS 0xFF95 /* Fletcher sums a, b; then the payload's end offset, the slot's page, */
#define PARSE_END 0xFF97 /* and a flag for a SOUND register out of range */
#define PARSE_PAGE 0xFF98
#define PARSE_BAD 0xFF99
#define PARSE_VSEQ 0xFF9A /* the seq's class (next, repeat, other) */
#define PARSE_VERDICT 0xFF9B /* 0 accept, 1 acknowledge again, else the error status */
#define QUIET 0xFF9C /* VBlanks since the last byte (the watchdog realigns the port after 7) */
#define BOOT_A 0xFFA0 /* A at the cartridge entry, kept by crt0: 0x11 on a Game Boy Color */
#define PAD_HELD 0xFFA1 /* buttons held at the last poll (pad.c): A B Select Start, then Right Left Up Down */
#define PAD_LATCH 0xFFA2 /* buttons gone down since the host's last Q_CLEAR (the serial interrupt clears it) */

#define SLOTS ((volatile uint8_t *)0xD000)
#define SLOT_MASK 7u

#define R_P1 0xFF00
#define R_SB 0xFF01
#define R_SC 0xFF02
#define R_IF 0xFF0F
#define R_NR50 0xFF24
#define R_NR51 0xFF25
#define R_NR52 0xFF26
#define R_LCDC 0xFF40
#define R_STAT 0xFF41
#define R_LY 0xFF44
#define R_LYC 0xFF45
#define R_BGP 0xFF47
#define R_VBK 0xFF4F
#define R_IE 0xFFFF

void vram_clear(void); /* isr.s: zero 0x8000..0x9FFF, LCD off only */
void vram_copy(void); /* isr.s: COPY_LEN bytes (1..255), at any time, never in mode 3 */
void watchdog(void); /* isr.s: re-arm the port if it is unarmed with nothing pending, or quiet 7 frames */

#endif
