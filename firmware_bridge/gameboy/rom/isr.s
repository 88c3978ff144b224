;; The timing-critical parts in assembly: the serial interrupt (re-armed first, then the byte goes
;; through the packet parser into a queue slot), the VBlank and LYC interrupts (frame flip, tile
;; data addressing), and the VRAM copy that writes only inside VBlank. Addresses: see hram.h.
;;
;; The whole receive path runs in the serial interrupt, so the main loop may block for as long as
;; an operation takes (clearing VRAM with the LCD off, waiting for VBlank or for sound room) and
;; no byte is ever left waiting for it: there is no receive ring to overrun. A packet whose
;; checksum, sequence and payload hold is published into the next of 8 queue slots and
;; acknowledged at once; the main loop applies the slots in order.

        .module isr
        .globl  _serial_isr, _vblank_isr, _stat_isr, _vram_copy, _vram_clear, _ack_status

        H_STATE = 0x80
        H_PTR = 0x81
        H_STATUS = 0x82
        H_REARMS = 0x83
        H_VBLANKS = 0x84
        H_LCDC_TOP = 0x85
        H_FLIP = 0x86
        H_FLIP_LCDC = 0x87
        H_FLIP_BGP = 0x88
        H_FLIPS = 0x89
        H_SRC = 0x8A
        H_DST = 0x8C
        H_LEN = 0x8E
        H_WR = 0x90
        H_RD = 0x91
        H_EXPECT = 0x92
        H_SESSION = 0x93
        H_LAST = 0x94
        H_SUMA = 0x95
        H_SUMB = 0x96
        H_END = 0x97
        H_PAGE = 0x98
        H_BAD = 0x99
        R_SB = 0x01
        R_SC = 0x02
        R_LCDC = 0x40
        R_STAT = 0x41
        R_LY = 0x44
        R_BGP = 0x47

        SLOT_PAGE = 0xD0        ; slot i is the 256-byte page 0xD0 + i: seq, len, type, payload
        SLOT_MASK = 7
        ;; parser states; 0 is the hot one
        S_PAYLOAD = 0
        S_HUNT = 1
        S_SEQ = 2
        S_LEN = 3
        S_TYPE = 4
        S_CKA = 5
        S_CKB = 6
        S_SOUND = 7             ; payload of a SOUND packet: every register byte is checked
        ;; packets.h, as numbers the assembler takes
        SYNC = 0xA5
        MAX_LEN = 130
        SEQ_MOD = 63
        T_HELLO = 1
        T_VRAM = 2
        T_FLIP = 3
        T_SOUND = 4
        ST_BUSY_RX = 0x22
        ST_BUSY_APPLY = 0x33
        ST_ERR = 0x40
        ST_ACK = 0x80
        ST_APPLIED = 0x40
        E_CHECKSUM = 1
        E_LENGTH = 2
        E_TYPE = 3
        E_SEQ = 4
        E_OVERRUN = 5
        E_PAYLOAD = 6
        E_SESSION = 7

        .area   _CODE

;; Serial: the port is re-armed 32 M-cycles after the interrupt is requested (dispatch 5 and jp 4
;; included), before anything else; a payload byte costs 92 M-cycles in all, the byte that ends a
;; packet (the verdict) at most 160.
_serial_isr::
        push    af
        push    bc
        ldh     a, (R_SB)
        ld      c, a                    ; c: the host's byte
        ldh     a, (H_STATUS)
        ldh     (R_SB), a
        ld      a, #0x80                ; external clock: the host is the master
        ldh     (R_SC), a
        push    hl
        ldh     a, (H_PAGE)
        ld      h, a
        ldh     a, (H_PTR)
        ld      l, a                    ; hl: where this byte goes in the slot being written
        ldh     a, (H_STATE)
        or      a
        jr      nz, not_payload
payload:
        ld      (hl), c
        inc     l
        ld      a, l
        ldh     (H_PTR), a
        ld      b, a
        ldh     a, (H_END)
        cp      b
        jr      nz, sums
        ld      a, #S_CKA
        ldh     (H_STATE), a
sums:                                   ; Fletcher: a += x; b += a
        ldh     a, (H_SUMA)
        add     c
        ldh     (H_SUMA), a
        ld      b, a
        ldh     a, (H_SUMB)
        add     b
        ldh     (H_SUMB), a
out:
        pop     hl
        pop     bc
        pop     af
        reti

not_payload:
        cp      #S_SOUND
        jr      z, sound
        dec     a
        jr      z, hunt
        dec     a
        jr      z, seq
        dec     a
        jr      z, length
        dec     a
        jr      z, ptype
        dec     a
        jr      z, check_a
        ;; S_CKB
        ldh     a, (H_SUMB)
        cp      c
        jr      nz, bad_sum
        jp      verdict
check_a:
        ldh     a, (H_SUMA)
        cp      c
        jr      nz, bad_sum
        ld      a, #S_CKB
        ldh     (H_STATE), a
        jr      out
bad_sum:
        ld      a, #ST_ERR | E_CHECKSUM
        jp      fail

;; register bytes sit at odd slot offsets (payload offset 0, 2, ...): 0x10..0x3F or the frame end
sound:
        bit     0, l
        jr      z, payload
        ld      a, c
        inc     a
        jr      z, payload              ; 0xFF ends a sound frame
        ld      a, c
        sub     #0x10
        cp      #0x30
        jr      c, payload
        ld      a, #1
        ldh     (H_BAD), a
        jr      payload

hunt:
        ld      a, c
        cp      #SYNC
        jr      nz, out
        ldh     a, (H_WR)
        add     #SLOT_PAGE
        ldh     (H_PAGE), a
        xor     a
        ldh     (H_PTR), a
        ldh     (H_SUMA), a
        ldh     (H_SUMB), a
        ldh     (H_BAD), a
        ld      a, #S_SEQ
        ldh     (H_STATE), a
        ld      a, #ST_BUSY_RX
        ldh     (H_STATUS), a
        jr      out

seq:
        ld      a, #S_LEN
        jr      header
length:
        ld      a, c
        cp      #MAX_LEN + 1
        jr      nc, too_long
        add     #3
        ldh     (H_END), a
        ld      a, #S_TYPE
        jr      header
too_long:
        ld      a, #ST_ERR | E_LENGTH
        jp      fail
ptype:
        ldh     a, (H_END)
        cp      #3
        ld      a, #S_CKA               ; no payload
        jr      z, header
        ld      a, c
        cp      #T_SOUND
        ld      a, #S_SOUND
        jr      z, header
        xor     a                       ; S_PAYLOAD
header:                                 ; store the byte, next state in a, then the sums
        ldh     (H_STATE), a
        ld      (hl), c
        inc     l
        ld      a, l
        ldh     (H_PTR), a
        jp      sums

;; The packet is whole and its checksum holds: hl points into its slot. Accept it (publish the
;; slot, acknowledge), acknowledge a repeat of the last one again, or refuse it with an error.
verdict:
        ld      a, #S_HUNT
        ldh     (H_STATE), a
        ld      l, #0
        ld      a, (hl)                 ; seq
        cp      #SEQ_MOD
        jr      nc, bad_seq
        ld      c, a
        ld      l, #2
        ld      a, (hl)                 ; type
        cp      #T_HELLO
        jr      z, publish              ; any seq opens a session
        ld      b, a
        ldh     a, (H_SESSION)
        or      a
        ld      a, #ST_ERR | E_SESSION
        jp      z, fail
        ldh     a, (H_EXPECT)
        cp      c
        jr      z, in_order
        ;; the host missed our ack and sent the last packet again: say so once more
        ld      a, c
        inc     a
        cp      #SEQ_MOD
        jr      nz, 1$
        xor     a
1$:
        ld      l, a
        ldh     a, (H_EXPECT)
        cp      l
        jr      nz, bad_seq
        call    _ack_status
        jr      out2
bad_seq:
        ld      a, #ST_ERR | E_SEQ
        jr      fail
in_order:
        ld      l, #1
        ld      a, b
        cp      #T_VRAM
        jr      z, check_vram
        cp      #T_FLIP
        jr      z, check_flip
        cp      #T_SOUND
        ld      a, #ST_ERR | E_TYPE
        jr      nz, fail
        ld      a, (hl)                 ; len: whole (register, value) pairs, every register valid
        bit     0, a
        jr      nz, bad_payload
        ldh     a, (H_BAD)
        or      a
        jr      z, publish
bad_payload:
        ld      a, #ST_ERR | E_PAYLOAD
        jr      fail
check_flip:                             ; map 0 or 1, and a palette
        ld      a, (hl)
        cp      #2
        jr      nz, bad_payload
        ld      l, #3
        ld      a, (hl)
        cp      #2
        jr      nc, bad_payload
        jr      publish
check_vram:                             ; 3 <= len, 0x8000 <= address, address + len - 2 <= 0xA000
        ld      a, (hl)
        sub     #2
        jr      c, bad_payload
        jr      z, bad_payload
        ld      b, a                    ; b: bytes to write
        ld      l, #4
        ld      a, (hl)                 ; address high: 0x80..0x9F
        sub     #0x80
        jr      c, bad_payload
        cp      #0x20
        jr      nc, bad_payload
        dec     l
        ld      a, (hl)                 ; address low + bytes: the carry goes to the high byte
        add     b
        ld      b, a
        inc     l                       ; (inc keeps the carry)
        ld      a, (hl)
        adc     #0
        cp      #0xA0
        jr      c, publish              ; ends below 0xA000
        ld      a, b
        or      a
        jr      nz, bad_payload         ; ends past 0xA000 (at 0xA000 exactly is fine)
publish:
        ldh     a, (H_RD)
        ld      b, a
        ldh     a, (H_WR)
        inc     a
        and     #SLOT_MASK
        cp      b
        ld      b, a
        ld      a, #ST_ERR | E_OVERRUN
        jr      z, fail                 ; every slot holds a packet not yet applied
        ld      a, b
        ldh     (H_WR), a
        ld      l, #2
        ld      a, (hl)
        cp      #T_HELLO
        jr      nz, 2$
        ld      a, #1
        ldh     (H_SESSION), a
2$:
        ld      a, c
        ldh     (H_LAST), a
        inc     a
        cp      #SEQ_MOD
        jr      nz, 3$
        xor     a
3$:
        ldh     (H_EXPECT), a
        call    _ack_status
out2:
        jp      out
fail:                                   ; a: the error status; the parser hunts for the next packet
        ldh     (H_STATUS), a
        ld      a, #S_HUNT
        ldh     (H_STATE), a
        jp      out

;; The status for a session in step: 0x33 while every slot is taken, 0xC0 | last seq once every
;; packet received is applied, 0x80 | last seq otherwise. Called by the serial interrupt and, with
;; interrupts off, by the main loop after it applied a slot. Changes a and b.
_ack_status::
        ldh     a, (H_RD)
        ld      b, a
        ldh     a, (H_WR)
        cp      b
        jr      z, 2$
        inc     a
        and     #SLOT_MASK
        cp      b
        ld      a, #ST_BUSY_APPLY
        jr      z, 3$
        ldh     a, (H_LAST)
        or      #ST_ACK
        jr      3$
2$:
        ldh     a, (H_LAST)
        or      #ST_ACK | ST_APPLIED
3$:
        ldh     (H_STATUS), a
        ret

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
        ldh     a, (H_FLIPS)
        inc     a
        ldh     (H_FLIPS), a
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

;; Copy H_LEN bytes from H_SRC to H_DST (VRAM) at any point of the frame. VRAM is locked only
;; while the LCD draws a line (mode 3, at least 43 M-cycles); each group of 4 writes is bracketed
;; by two reads of STAT 28 M-cycles apart with interrupts off, and if either says mode 3 the group
;; is written again (a write in mode 3 is dropped, so nothing half-written stays). Neither read
;; saying mode 3 means no write fell in mode 3, as mode 3 cannot begin and end between them. The
;; interrupts are off for at most 30 M-cycles: the serial port is re-armed that much later at worst.
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
        cp      #4
        jr      c, 5$
2$:
        ldh     a, (R_STAT)             ; wait out mode 3 with interrupts on
        and     #3
        cp      #3
        jr      z, 2$
        di
        ldh     a, (R_STAT)
        ld      b, a
        .rept   4
        ld      a, (hl+)
        ld      (de), a
        inc     de
        .endm
        ldh     a, (R_STAT)
        ei
        or      #0xFC
        inc     a
        jr      z, 3$
        ld      a, b
        or      #0xFC
        inc     a
        jr      z, 3$
        ld      a, c
        sub     #4
        ld      c, a
        jr      1$
3$:                                     ; in mode 3: again
        .rept   4
        dec     hl
        dec     de
        .endm
        jr      2$
5$:                                     ; the last 1..3 bytes, one at a time
        or      a
        ret     z
6$:
        ldh     a, (R_STAT)
        and     #3
        cp      #3
        jr      z, 6$
        di
        ldh     a, (R_STAT)
        ld      b, a
        ld      a, (hl+)
        ld      (de), a
        inc     de
        ldh     a, (R_STAT)
        ei
        or      #0xFC
        inc     a
        jr      z, 7$
        ld      a, b
        or      #0xFC
        inc     a
        jr      z, 7$
        dec     c
        jr      1$
7$:
        dec     hl
        dec     de
        jr      6$

;; Zero 0x8000..0x9FFF (tiles and both maps); only with the LCD off. 8 bytes a pass (2.5 M-cycles
;; a byte), about one frame of CPU.
_vram_clear::
        ld      hl, #0x8000
        xor     a
        ld      c, #0
1$:
        .rept   8
        ld      (hl+), a
        .endm
        dec     c
        jr      nz, 1$
        bit     5, h                    ; 1024 passes: h reaches 0xA0
        jr      z, 1$
        ret
