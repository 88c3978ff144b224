/* Fixed addresses shared by the C code and the assembly (isr.s): HRAM for the interrupt state,
 * a 256-byte aligned WRAM page for the receive ring so the ISR indexes it with one register.
 * Keep in step with the .equ lines at the top of isr.s. */
#ifndef PXBY_HRAM_H
#define PXBY_HRAM_H

#include <stdint.h>

#define HR(a) (*(volatile uint8_t *)(a))

#define RING ((volatile uint8_t *)0xDE00) /* 256 bytes; the stack lives above it, at 0xDF00..0xDFFF */
#define RING_HEAD 0xFF80 /* next slot the ISR writes */
#define RING_TAIL 0xFF81 /* next slot main reads */
#define STATUS 0xFF82 /* the byte the ISR loads into SB for the host's next exchange */
#define OVERRUN 0xFF83 /* set by the ISR when the ring was full and a byte was dropped */
#define VBLANKS 0xFF84 /* VBlank count, mod 256 */
#define LCDC_TOP 0xFF85 /* LCDC written at every VBlank (tile data at 0x8000 for the top rows) */
#define FLIP_PENDING 0xFF86 /* main asks the VBlank ISR to switch maps and palette ... */
#define FLIP_LCDC 0xFF87 /* ... to this LCDC */
#define FLIP_BGP 0xFF88 /* ... and this BGP */
#define COPY_SRC 0xFF8A /* vram_copy arguments: source (2 bytes), destination (2), length (1) */
#define COPY_DST 0xFF8C
#define COPY_LEN 0xFF8E
#define BOOT_A 0xFFA0 /* A at the cartridge entry, kept by crt0: 0x11 on a Game Boy Color */
#define PAD_HELD 0xFFA1 /* buttons held at the last poll (pad.c) */

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
void vram_copy(void); /* isr.s: COPY_LEN bytes (1..255), 16 at a time, only while in VBlank */

#endif
