;; The timing-critical parts in assembly: the serial interrupt (re-armed first, then the byte goes
;; through the packet parser into a queue slot), the VBlank and LYC interrupts (frame flip, tile
;; data addressing), the VRAM copy that never writes in mode 3, and the port's watchdog.
;; Addresses: see hram.h. Cycle counts per path: docs/protocol.md, "Timing budget".
;;
;; The whole receive path runs in the serial interrupt, so the main loop may block for as long as
;; an operation takes (clearing VRAM with the LCD off, waiting for VBlank or for sound room) and
;; no byte is ever left waiting for it: there is no receive ring to overrun. A packet whose
;; checksum, sequence and payload hold is published into the next of 8 queue slots and
;; acknowledged at once; the main loop applies the slots in order.

        .module isr
        .globl  _serial_isr, _vblank_isr, _stat_isr, _vram_copy, _vram_clear, _ack_status, _watchdog

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
        H_VSEQ = 0x9A
        H_VERDICT = 0x9B
        H_QUIET = 0x9C
        QUIET_FRAMES = 7        ; 6 whole frames (100 ms) > 8 bits at 8192 Hz + a 65535 us gap + jitter
        H_BOOT_A = 0xA0         ; colour.c, pad.c: the boot ROM's A, the presses latched
        H_PAD_LATCH = 0xA2
        R_SB = 0x01
        R_SC = 0x02
        R_IF = 0x0F
        R_LCDC = 0x40
        R_STAT = 0x41
        R_LY = 0x44
        R_BGP = 0x47

        SLOT_PAGE = 0xD0        ; slot i is the 256-byte page 0xD0 + i: seq, len, type, payload
        SLOT_MASK = 7
        ;; parser states; 0 is the hot one, the costlier ones come early in the dispatch
        S_PAYLOAD = 0
        S_HUNT = 1
        S_TYPE = 2
        S_CKB = 3
        S_CKA = 4
        S_SEQ = 5
        S_LEN = 6
        S_SOUND = 7             ; payload of a SOUND packet: every register byte is checked
        ;; packets.h, as numbers the assembler takes
        SYNC = 0xA5
        MAX_LEN = 130
        SEQ_MOD = 63
        T_HELLO = 1
        T_VRAM = 2
        T_FLIP = 3
        T_SOUND = 4
        T_PALETTE = 7
        T_ATTR = 8
        Q_BUTTONS = 0x50
        Q_DPAD = 0x60
        Q_CLEAR = 0x70
        ST_READY = 0x11
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
;; included), before anything else. The parser's work is spread over the packet's bytes so that no
;; byte costs more than about 150 M-cycles in all (a payload byte 93): the seq is classed when it
;; arrives, session and sequence are judged at the type byte, type and payload at the first
;; checksum byte, and the second checksum byte only publishes (docs/protocol.md, "Timing budget").
_serial_isr::
        push    af
        push    bc
        ldh     a, (R_SB)
        ld      c, a                    ; c: the host's byte
        ldh     a, (H_STATUS)
        ldh     (R_SB), a
        ld      a, #0x80                ; external clock: the host is the master
        ldh     (R_SC), a
        xor     a
        ldh     (H_QUIET), a            ; a byte came: the host is clocking
        push    hl
        ldh     a, (H_STATE)
        or      a
        jr      nz, not_payload
payload:
        ldh     a, (H_PAGE)
        ld      h, a
        ldh     a, (H_PTR)
        ld      l, a
        ld      (hl), c
        inc     a
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

not_payload:                            ; the costlier states first
        dec     a
        jr      z, hunt
        dec     a
        jp      z, ptype
        dec     a
        jp      z, check_b
        dec     a
        jp      z, check_a
        dec     a
        jp      z, seq                  ; (jp: the joypad queries in hunt put seq out of jr's reach)
        dec     a
        jp      z, length
        ;; S_SOUND: register bytes sit at odd slot offsets (payload offset 0, 2, ...): 0x10..0x3F
        ;; or the frame end
        ldh     a, (H_PTR)
        bit     0, a
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
        jr      z, 1$
        cp      #Q_BUTTONS
        jp      z, q_buttons
        cp      #Q_DPAD
        jp      z, q_dpad
        cp      #Q_CLEAR
        jp      z, q_clear
        ;; between packets: bring an ACK or busy status up to date with the slots the main loop
        ;; has applied since (the main loop never writes the status itself); a query's answer
        ;; (0x50..0x7F) gives way to it at the first byte that is no query
        ldh     a, (H_STATUS)
        bit     7, a
        jr      nz, 2$
        cp      #ST_BUSY_APPLY
        jr      z, 2$
        cp      #Q_BUTTONS
        jr      c, out
        ldh     a, (H_SESSION)
        or      a
        jr      nz, 2$
        ld      a, #ST_READY            ; no session yet: no ACK to go back to
        ldh     (H_STATUS), a
        jr      out
2$:
        call    _ack_status
        jr      out
1$:
        ldh     a, (H_WR)
        add     #SLOT_PAGE
        ldh     (H_PAGE), a
        xor     a
        ldh     (H_BAD), a
        ld      a, #S_SEQ
        ldh     (H_STATE), a
        ld      a, #ST_BUSY_RX
        ldh     (H_STATUS), a
        jr      out

;; seq: stored, starts the sums, and classed against the expected one: 0 the next, 1 a repeat of
;; the last (its ACK was lost), 2 neither, or the error status for a seq no host sends
seq:
        ldh     a, (H_PAGE)
        ld      h, a
        ld      l, #0
        ld      (hl), c
        ld      a, c
        ldh     (H_SUMA), a
        ldh     (H_SUMB), a
        ld      a, #S_LEN
        ldh     (H_STATE), a
        ld      a, c
        cp      #SEQ_MOD
        ld      b, #ST_ERR | E_SEQ
        jr      nc, 9$
        ldh     a, (H_EXPECT)
        cp      c
        ld      b, #0
        jr      z, 9$
        ld      a, c
        inc     a
        cp      #SEQ_MOD
        jr      nz, 1$
        xor     a
1$:
        ld      l, a
        ldh     a, (H_EXPECT)
        cp      l
        ld      b, #1
        jr      z, 9$
        inc     b
9$:
        ld      a, b
        ldh     (H_VSEQ), a
        jp      out

length:
        ld      a, c
        cp      #MAX_LEN + 1
        jr      nc, too_long
        add     #3
        ldh     (H_END), a
        ldh     a, (H_PAGE)
        ld      h, a
        ld      l, #1
        ld      (hl), c
        ld      a, #S_TYPE
        ldh     (H_STATE), a
        jp      sums
too_long:
        ld      a, #ST_ERR | E_LENGTH
        jp      fail

;; type: stored, the payload state chosen, and the verdict on session and sequence (HELLO opens a
;; session whatever its seq); type and payload are judged at the first checksum byte
ptype:
        ldh     a, (H_PAGE)
        ld      h, a
        ld      l, #2
        ld      (hl), c
        ld      a, #3
        ldh     (H_PTR), a
        ldh     a, (H_END)
        cp      #3
        ld      a, #S_CKA               ; no payload
        jr      z, 1$
        ld      a, c
        cp      #T_SOUND
        ld      a, #S_SOUND
        jr      z, 1$
        xor     a                       ; S_PAYLOAD
1$:
        ldh     (H_STATE), a
        ldh     a, (H_VSEQ)
        ld      b, a
        ld      a, c
        cp      #T_HELLO
        jr      nz, 2$
        ld      a, b
        cp      #ST_ERR | E_SEQ
        jr      z, 8$
        xor     a
        jr      8$
2$:
        ldh     a, (H_SESSION)
        or      a
        ld      a, #ST_ERR | E_SESSION
        jr      z, 8$
        ld      a, b
        cp      #2
        jr      c, 8$                   ; 0 the next (accept) or 1 a repeat (acknowledge again)
        ld      a, #ST_ERR | E_SEQ
8$:
        ldh     (H_VERDICT), a
        jp      sums

;; first checksum byte: the sum, then (for the next packet in order) its type and payload
check_a:
        ldh     a, (H_SUMA)
        cp      c
        jr      nz, bad_sum
        ld      a, #S_CKB
        ldh     (H_STATE), a
        ldh     a, (H_VERDICT)
        or      a
        jp      nz, out
        ldh     a, (H_PAGE)
        ld      h, a
        ld      l, #2
        ld      a, (hl)                 ; type
        dec     l                       ; hl: len
        cp      #T_VRAM
        jr      z, check_vram
        cp      #T_FLIP
        jr      z, check_flip
        cp      #T_SOUND
        jr      z, check_sound
        cp      #T_HELLO
        jp      z, out
        cp      #T_PALETTE
        jp      z, check_palette
        cp      #T_ATTR
        jp      z, check_attr
        ld      a, #ST_ERR | E_TYPE
        jr      set_verdict
bad_sum:
        ld      a, #ST_ERR | E_CHECKSUM
        jp      fail
check_sound:                            ; whole (register, value) pairs, every register valid
        ld      a, (hl)
        bit     0, a
        jr      nz, bad_payload
        ldh     a, (H_BAD)
        or      a
        jp      z, out
bad_payload:
        ld      a, #ST_ERR | E_PAYLOAD
set_verdict:
        ldh     (H_VERDICT), a
        jp      out
check_flip:                             ; map 0 or 1, and a palette
        ld      a, (hl)
        cp      #2
        jr      nz, bad_payload
        ld      l, #3
        ld      a, (hl)
        cp      #2
        jr      nc, bad_payload
        jp      out
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
        jp      c, out                  ; ends below 0xA000
        ld      a, b
        or      a
        jr      nz, bad_payload         ; ends past 0xA000 (at 0xA000 exactly is fine)
        jp      out

;; Game Boy Color packets (colour.c), checked on any model (a DMG acknowledges and ignores them)
check_palette:                          ; the first palette, then 1..8 whole palettes of 8 bytes, none past 7
        ld      a, (hl)
        dec     a
        jp      z, bad_payload
        ld      b, a                    ; b: palette bytes
        and     #7
        jp      nz, bad_payload
        ld      l, #3
        ld      a, (hl)                 ; the first palette
        cp      #8
        jp      nc, bad_payload
        add     a
        add     a
        add     a
        add     b
        cp      #65
        jp      nc, bad_payload
        jp      out
check_attr:                             ; as VRAM, inside the maps: 0x9800 <= address, end <= 0xA000
        ld      l, #4
        ld      a, (hl)
        cp      #0x98
        jp      c, bad_payload
        ld      l, #1                   ; hl: len, as check_vram takes it
        jp      check_vram

;; second checksum byte: the packet is whole; publish it (the slot joins the queue), acknowledge
;; a repeat again, or say why not
check_b:
        ldh     a, (H_SUMB)
        cp      c
        jr      nz, bad_sum
        ld      a, #S_HUNT
        ldh     (H_STATE), a
        ldh     a, (H_VERDICT)
        or      a
        jr      z, accept
        dec     a
        jr      nz, 1$
        call    _ack_status             ; a repeat: it was queued, say so once more
        jp      out
1$:
        inc     a
        jr      status_out
accept:
        ldh     a, (H_RD)
        ld      b, a
        ldh     a, (H_WR)
        inc     a
        and     #SLOT_MASK
        cp      b
        ld      c, a
        ld      a, #ST_ERR | E_OVERRUN
        jr      z, status_out           ; every slot holds a packet not yet applied
        ld      a, c
        ldh     (H_WR), a
        ld      a, #1
        ldh     (H_SESSION), a
        ldh     a, (H_PAGE)
        ld      h, a
        ld      l, #0
        ld      a, (hl)                 ; seq
        ldh     (H_LAST), a
        ld      l, a
        inc     a
        cp      #SEQ_MOD
        jr      nz, 2$
        xor     a
2$:
        ldh     (H_EXPECT), a
        ld      a, c                    ; room for the next packet? (b: the slot being applied)
        inc     a
        and     #SLOT_MASK
        cp      b
        ld      a, #ST_BUSY_APPLY
        jr      z, status_out
        ld      a, l
        or      #ST_ACK
status_out:
        ldh     (H_STATUS), a
        jp      out
fail:                                   ; a: the error status; the parser hunts for the next packet
        ldh     (H_STATUS), a
        ld      a, #S_HUNT
        ldh     (H_STATE), a
        jp      out

;; Joypad and model queries (docs/protocol.md, "Joypad and model"): the answer, with the query's
;; high nibble, is the status from the next byte on; pad.c latches the presses (buttons gone down).
q_buttons:
        ldh     a, (H_PAD_LATCH)
        and     #0x0F
        or      #Q_BUTTONS
        jr      q_out
q_dpad:
        ldh     a, (H_PAD_LATCH)
        swap    a
        and     #0x0F
        or      #Q_DPAD
        jr      q_out
q_clear:                                ; forget the latched presses; bit 0: a Game Boy Color
        xor     a
        ldh     (H_PAD_LATCH), a
        ldh     a, (H_BOOT_A)
        cp      #0x11
        ld      a, #Q_CLEAR
        jr      nz, q_out
        inc     a
q_out:
        ldh     (H_STATUS), a
        jp      out

;; The status for a session in step: 0x33 while every slot is taken, 0xC0 | last seq once every
;; packet received is applied, 0x80 | last seq otherwise. Called by the serial interrupt only (at a
;; verdict, and on every byte between packets). Changes a and b.
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
        ei                              ; the serial interrupt may nest: its re-arm never waits for this
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
        ldh     a, (H_QUIET)            ; frames without a byte, up to 255
        inc     a
        jr      z, 2$
        ldh     (H_QUIET), a
2$:
        pop     af
        reti

;; LYC (line 68, inside tile row 8): rows 9..17 read tile data with 0x8800 addressing, so the
;; screen can show 360 different tiles with 8-bit map entries. Row 8 uses only tiles 128..255,
;; which both addressings agree on, so the exact cycle of this write does not matter.
_stat_isr::
        push    af
        ei                              ; as above; a late write still lands inside row 8
        ldh     a, (H_LCDC_TOP)
        and     #0xEF
        ldh     (R_LCDC), a
        pop     af
        reti

;; Copy H_LEN bytes from H_SRC to H_DST (VRAM) at any point of the frame. VRAM is locked only
;; while the LCD draws a line (mode 3, at least 43 M-cycles); each pair of writes is bracketed by
;; two reads of STAT 20 M-cycles apart with interrupts off, and if either says mode 3 the pair is
;; written again (a write in mode 3 is dropped, so nothing half-written stays). Neither read saying
;; mode 3 means no write fell in mode 3, as mode 3 cannot begin and end between them. Interrupts
;; are off for 26 M-cycles at most: the serial port is re-armed that much later at worst.
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
        ldh     (H_LEN), a              ; bytes left before this pair: where to go back to
2$:
        ldh     a, (R_STAT)             ; wait out mode 3 with interrupts on
        and     #3
        cp      #3
        jr      z, 2$
        di
        ldh     a, (R_STAT)
        ld      b, a
        ld      a, (hl+)
        ld      (de), a
        inc     de
        dec     c
        jr      z, 4$                   ; that was the last byte
        ld      a, (hl+)
        ld      (de), a
        inc     de
        dec     c
4$:
        ldh     a, (R_STAT)
        ei
        or      #0xFC
        inc     a
        jr      z, 3$
        ld      a, b
        or      #0xFC
        inc     a
        jr      nz, 1$
3$:                                     ; a read said mode 3: write the pair again
        dec     hl
        dec     de
        inc     c
        ldh     a, (H_LEN)
        cp      c
        jr      nz, 3$
        jr      2$

;; A transfer that completes sets IF bit 3 in the same step as it clears SC bit 7, and the serial
;; interrupt re-arms the port before anything else; so with interrupts off, SC idle and no serial
;; request pending means the port was left unarmed (a lost request) and the host's bytes fall on
;; the floor: re-arm it. And a port armed in the middle of one of the host's bytes (at power-on,
;; or by the line above) counts its 8 edges across two of them from then on; at a slow clock the
;; serial interrupt re-arms it within the same bit time, so it never falls back into step by
;; itself. The host stops clocking for a while when its packets get no answer (packets.py,
;; RESYNC_PAUSE_S): after QUIET_FRAMES frames without a byte (longer than any byte period the
;; host may use), writing SC again starts the count afresh, in step with the host's next byte.
;; Both counted in H_REARMS. Interrupts are off for 22 M-cycles when all is well.
_watchdog::
        di
        ldh     a, (R_SC)
        bit     7, a
        jr      nz, 2$
        ldh     a, (R_IF)
        bit     3, a
        jr      nz, 1$
3$:
        ldh     a, (H_STATUS)
        ldh     (R_SB), a
        ld      a, #0x80
        ldh     (R_SC), a
        xor     a
        ldh     (H_QUIET), a
        ldh     a, (H_REARMS)
        inc     a
        ldh     (H_REARMS), a
1$:
        ei
        ret
2$:
        ldh     a, (H_QUIET)
        cp      #QUIET_FRAMES
        jr      c, 1$
        jr      3$

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
