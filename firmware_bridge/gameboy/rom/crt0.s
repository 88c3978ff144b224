;; Start-up for the pxby link ROM: the interrupt vectors this ROM uses, the cartridge entry at
;; 0x100, then zero DATA, copy INITIALIZER into INITIALIZED, set the stack and call main.
;; SDCC's own sm83 crt0 targets its simulator (vectors only return, its zero-fill reads), so the
;; ROM links with --no-std-crt0 and this file first.

        .module crt0
        .globl  _main
        .globl  _vblank_isr, _stat_isr, _serial_isr

        .area   _HEADER (ABS)
        .org    0x40            ; VBlank
        jp      _vblank_isr
        .org    0x48            ; STAT (LYC): switch tile data addressing mid-screen
        jp      _stat_isr
        .org    0x50            ; timer: unused
        reti
        .org    0x58            ; serial: one byte from the host
        jp      _serial_isr
        .org    0x60            ; joypad: unused
        reti

        .org    0x100
        nop
        jp      init
        ;; 0x104..0x14F: logo, title and checksums, written by makebin

        .org    0x150
init:
        di
        ldh     (0xA0), a       ; BOOT_A (hram.h): 0x11 when the boot ROM ran on a Game Boy Color
        ld      sp, #0xE000
        ;; zero the uninitialised globals
        ld      hl, #s__DATA
        ld      bc, #l__DATA
        inc     b
        inc     c
        xor     a
        jr      2$
1$:
        ld      (hl+), a
2$:
        dec     c
        jr      nz, 1$
        dec     b
        jr      nz, 1$
        ;; copy the initialised ones
        ld      de, #s__INITIALIZED
        ld      hl, #s__INITIALIZER
        ld      bc, #l__INITIALIZER
        inc     b
        inc     c
        jr      4$
3$:
        ld      a, (hl+)
        ld      (de), a
        inc     de
4$:
        dec     c
        jr      nz, 3$
        dec     b
        jr      nz, 3$
        call    _main
5$:
        halt
        jr      5$

        ;; segment order for the linker
        .area   _HOME
        .area   _CODE
        .area   _INITIALIZER
        .area   _GSINIT
        .area   _GSFINAL
        .area   _DATA
        .area   _INITIALIZED
        .area   _BSEG
        .area   _BSS
        .area   _HEAP
