;; The timing-critical parts in assembly: the serial interrupt (re-armed first, then the byte goes
;; into the receive ring), the VBlank and LYC interrupts (frame flip, tile data addressing), and
;; the VRAM copy that writes only inside VBlank. Addresses: see hram.h.

        .module isr
        .globl  _serial_isr, _vblank_isr, _stat_isr, _vram_copy, _vram_clear

        RING_PAGE = 0xDE
        H_HEAD = 0x80
        H_TAIL = 0x81
        H_STATUS = 0x82
        H_OVERRUN = 0x83
        H_VBLANKS = 0x84
        H_LCDC_TOP = 0x85
        H_FLIP = 0x86
        H_FLIP_LCDC = 0x87
        H_FLIP_BGP = 0x88
        H_SRC = 0x8A
        H_DST = 0x8C
        H_LEN = 0x8E
        R_SB = 0x01
        R_SC = 0x02
        R_LCDC = 0x40
        R_LY = 0x44
        R_BGP = 0x47

        .area   _CODE

;; Serial: the port is re-armed 32 M-cycles after the interrupt is taken (dispatch 5 and jp 4
;; included) and the handler returns after 72; the host may clock the next byte once re-armed.
_serial_isr::
        push    af
        push    hl
        ldh     a, (R_SB)
        ld      l, a
        ldh     a, (H_STATUS)
        ldh     (R_SB), a
        ld      a, #0x80                ; external clock: the host is the master
        ldh     (R_SC), a
        ld      a, l
        push    bc
        ld      b, a
        ldh     a, (H_HEAD)
        ld      l, a
        ld      h, #RING_PAGE
        ld      (hl), b
        inc     a
        ld      b, a
        ldh     a, (H_TAIL)
        cp      b
        jr      z, 2$                   ; full: this byte is lost, say so
        ld      a, b
        ldh     (H_HEAD), a
1$:
        pop     bc
        pop     hl
        pop     af
        reti
2$:
        ld      a, #1
        ldh     (H_OVERRUN), a
        jr      1$

;; VBlank: apply a pending flip (map and palette) so a frame changes between two screens, then
;; put the tile data addressing back to 0x8000 for the top rows.
_vblank_isr::
        push    af
        ldh     a, (H_FLIP)
        or      a
        jr      z, 1$
        ldh     a, (H_FLIP_LCDC)
        ldh     (H_LCDC_TOP), a
        ldh     a, (H_FLIP_BGP)
        ldh     (R_BGP), a
        xor     a
        ldh     (H_FLIP), a
1$:
        ldh     a, (H_LCDC_TOP)
        ldh     (R_LCDC), a
        ldh     a, (H_VBLANKS)
        inc     a
        ldh     (H_VBLANKS), a
        pop     af
        reti

;; LYC (line 68, inside tile row 8): rows 9..17 read tile data with 0x8800 addressing, so the
;; screen can show 360 different tiles with 8-bit map entries. Row 8 uses only tiles 128..255,
;; which both addressings agree on, so the exact cycle of this write does not matter.
_stat_isr::
        push    af
        ldh     a, (H_LCDC_TOP)
        and     #0xEF
        ldh     (R_LCDC), a
        pop     af
        reti

;; Copy H_LEN bytes from H_SRC to H_DST (VRAM), 16 bytes at a time, each run started only on
;; lines 144..150: 3 lines (342 M-cycles) remain for a run of at most 180 plus one serial
;; interrupt (72), so no write can land in mode 2 or 3 however the interrupts fall.
_vram_copy::
        ldh     a, (H_SRC)
        ld      l, a
        ldh     a, (H_SRC + 1)
        ld      h, a
        ldh     a, (H_DST)
        ld      e, a
        ldh     a, (H_DST + 1)
        ld      d, a
        ldh     a, (H_LEN)
        ld      c, a
1$:
        ld      a, c
        or      a
        ret     z
2$:
        ldh     a, (R_LY)
        cp      #144
        jr      c, 2$
        cp      #151
        jr      nc, 2$
        ld      b, #16
        ld      a, c
        cp      b
        jr      nc, 3$
        ld      b, c
3$:
        ld      a, c
        sub     b
        ld      c, a
4$:
        ld      a, (hl+)
        ld      (de), a
        inc     de
        dec     b
        jr      nz, 4$
        jr      1$

;; Zero 0x8000..0x9FFF (tiles and both maps); only with the LCD off.
_vram_clear::
        ld      hl, #0x8000
        xor     a
        ld      c, #0x20
        ld      b, a
1$:
        ld      (hl+), a
        dec     b
        jr      nz, 1$
        dec     c
        jr      nz, 1$
        ret
