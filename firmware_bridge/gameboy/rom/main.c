/* pxby link ROM: a Game Boy as the pxby handheld, fed over the link port (docs/protocol.md,
 * "Game Boy link layer"). Build: make -C firmware_bridge/gameboy
 *
 * The host does the thinking (which tile goes in which slot, which map is shown); the ROM is a
 * reliable VRAM writer with an atomic flip and an APU register player:
 *   packet = 0xA5, seq, len, type, payload[len], fletcher a, fletcher b
 * Every byte received is answered (in the next exchange) by a status byte: ready, busy
 * receiving, busy applying, ack of a sequence number or an error code. A packet is
 * acknowledged only once applied, so the host never has more than one packet in flight and
 * the Game Boy is never overrun. */
#include <stdint.h>

#include "colour.h"
#include "hram.h"
#include "packets.h"

static uint8_t pkt[LINK_MAX_LEN];
static uint8_t pkt_seq, pkt_len, pkt_type;
static uint8_t expect_seq;
static uint8_t session_open;

/* APU register pairs waiting to be played, one "frame" (ended by LINK_SND_END) per VBlank */
#define SND_SIZE 1024u
static uint8_t snd[SND_SIZE];
static uint16_t snd_head, snd_tail;
static uint8_t snd_frames_played;

static uint16_t snd_free(void)
{
    return (uint16_t)(SND_SIZE - 1u - ((snd_head - snd_tail) & (SND_SIZE - 1u)));
}

/* One sound frame per VBlank seen; a frame late after a long VRAM copy is played at once. */
static void play_sound(void)
{
    uint8_t reg, val;
    while (snd_frames_played != HR(VBLANKS)) {
        snd_frames_played++;
        pad_poll();
        while (snd_tail != snd_head) {
            reg = snd[snd_tail];
            val = snd[(snd_tail + 1u) & (SND_SIZE - 1u)];
            snd_tail = (snd_tail + 2u) & (SND_SIZE - 1u);
            if (reg == LINK_SND_END)
                break;
            HR(0xFF00u | reg) = val;
        }
    }
}

/* While the ROM waits for VBlank or sound room the host only polls: its bytes are dropped so
 * the ring cannot fill. The host sends nothing new while the status says "applying". */
static void wait_idle(void)
{
    HR(RING_TAIL) = HR(RING_HEAD);
    play_sound();
}

static uint8_t take(void)
{
    uint8_t t, b;
    t = HR(RING_TAIL);
    while (HR(RING_HEAD) == t)
        play_sound();
    b = RING[t];
    HR(RING_TAIL) = t + 1u;
    return b;
}

/* Only in VBlank (switching the LCD off mid-frame can damage a DMG screen), with two lines to
 * spare in case the serial interrupt lands between the check and the write. */
static void lcd_off(void)
{
    uint8_t ly;
    while (HR(R_LCDC) & 0x80u) { /* the VBlank handler may get there first (LCDC_TOP is 0) */
        ly = HR(R_LY);
        if (ly >= 144u && ly <= 151u)
            HR(R_LCDC) = 0;
    }
}

/* Fresh screen and sound, as at boot: all tiles blank, both maps showing tile 0. Interrupts stay
 * on, so the link keeps being re-armed while VRAM is cleared (3 frames with the LCD off); with
 * LCDC_TOP at 0 the VBlank handler keeps the LCD off too. */
static void reset_device(void)
{
    HR(FLIP_PENDING) = 0;
    HR(LCDC_TOP) = 0;
    lcd_off();
    vram_clear();
    colour_reset();
    HR(LCDC_TOP) = LINK_LCDC_BASE;
    HR(R_BGP) = LINK_BGP_DEFAULT;
    HR(R_LYC) = LINK_LYC_LINE;
    HR(R_STAT) = 0x40u; /* LYC interrupt */
    HR(R_NR52) = 0x80u;
    HR(R_NR50) = 0x77u;
    HR(R_NR51) = 0xFFu;
    snd_head = snd_tail = 0;
    snd_frames_played = HR(VBLANKS);
    HR(R_LCDC) = LINK_LCDC_BASE;
    HR(R_IF) &= 0xFCu; /* a byte that arrived meanwhile (IF bit 3) still gets its interrupt */
    HR(R_IE) = 0x0Bu; /* VBlank, STAT, serial */
    __asm__("ei");
}

static uint8_t apply_vram(void)
{
    uint16_t dst = pkt[0] | ((uint16_t)pkt[1] << 8);
    uint8_t n = pkt_len - 2u;
    if (pkt_len < 3u || dst < 0x8000u || dst > 0xA000u - n)
        return LINK_ERR_PAYLOAD;
    HR(COPY_SRC) = (uint8_t)(uint16_t)(pkt + 2);
    HR(COPY_SRC + 1) = (uint8_t)((uint16_t)(pkt + 2) >> 8);
    HR(COPY_DST) = (uint8_t)dst;
    HR(COPY_DST + 1) = (uint8_t)(dst >> 8);
    HR(COPY_LEN) = n;
    vram_copy();
    return 0;
}

/* The VBlank ISR switches map and palette at once; acknowledged only after it has, so the
 * host's next writes to the (now hidden) other map can never show. */
static uint8_t apply_flip(void)
{
    if (pkt_len != 2u || pkt[0] > 1u)
        return LINK_ERR_PAYLOAD;
    HR(FLIP_LCDC) = LINK_LCDC_BASE | (uint8_t)(pkt[0] << 3);
    HR(FLIP_BGP) = pkt[1];
    if (colour_staged) {
        while (!colour_flip())
            wait_idle();
        return 0;
    }
    HR(FLIP_PENDING) = 1;
    while (HR(FLIP_PENDING))
        wait_idle();
    return 0;
}

static uint8_t apply_sound(void)
{
    uint8_t i, reg;
    for (i = 0; i < pkt_len; i += 2u) {
        reg = pkt[i];
        if (reg != LINK_SND_END && (reg < 0x10u || reg > 0x3Fu))
            return LINK_ERR_PAYLOAD;
    }
    if (pkt_len & 1u)
        return LINK_ERR_PAYLOAD;
    while (snd_free() < pkt_len)
        wait_idle();
    for (i = 0; i < pkt_len; i++) {
        snd[snd_head] = pkt[i];
        snd_head = (snd_head + 1u) & (SND_SIZE - 1u);
    }
    return 0;
}

static uint8_t apply(void)
{
    switch (pkt_type) {
    case LINK_T_HELLO:
        reset_device();
        return 0;
    case LINK_T_VRAM:
        return apply_vram();
    case LINK_T_FLIP:
        return apply_flip();
    case LINK_T_SOUND:
        return apply_sound();
    case LINK_T_PALETTE:
        return colour_palette(pkt, pkt_len);
    case LINK_T_ATTR:
        return colour_attr(pkt, pkt_len);
    }
    return LINK_ERR_TYPE;
}

/* Hunt for the sync byte, then read one packet; 0 when it is whole and its checksum holds. */
static uint8_t receive(void)
{
    uint8_t a, b, i, x;
    while ((x = take()) != LINK_SYNC)
        pad_query(x);
    HR(STATUS) = LINK_ST_BUSY_RX;
    pkt_seq = take();
    a = pkt_seq;
    b = a;
    pkt_len = take();
    if (pkt_len > LINK_MAX_LEN)
        return LINK_ERR_LENGTH;
    a += pkt_len;
    b += a;
    pkt_type = take();
    a += pkt_type;
    b += a;
    for (i = 0; i < pkt_len; i++) {
        x = take();
        pkt[i] = x;
        a += x;
        b += a;
    }
    if (take() != a)
        return LINK_ERR_CHECKSUM;
    if (take() != b)
        return LINK_ERR_CHECKSUM;
    return 0;
}

static uint8_t handle(void)
{
    uint8_t err;
    if (pkt_type == LINK_T_HELLO) {
        expect_seq = pkt_seq;
        session_open = 1;
    } else if (!session_open) {
        return LINK_ERR_SESSION;
    } else if (pkt_seq != expect_seq) {
        /* the host missed our ack and sent it again: it was applied, say so once more */
        return (uint8_t)(pkt_seq + 1u) == expect_seq || (pkt_seq == LINK_SEQ_MOD - 1u && expect_seq == 0)
                   ? 0xFFu
                   : LINK_ERR_SEQ;
    }
    HR(STATUS) = LINK_ST_BUSY_APPLY;
    err = apply();
    if (!err)
        expect_seq = expect_seq + 1u == LINK_SEQ_MOD ? 0 : expect_seq + 1u;
    return err;
}

void main(void)
{
    uint8_t err;
    HR(STATUS) = LINK_ST_READY;
    HR(RING_HEAD) = HR(RING_TAIL) = HR(OVERRUN) = 0;
    HR(VBLANKS) = 0;
    reset_device();
    HR(R_SB) = LINK_ST_READY;
    HR(R_SC) = 0x80u;
    for (;;) {
        err = receive();
        if (!err)
            err = handle();
        if (HR(OVERRUN)) {
            HR(OVERRUN) = 0;
            err = LINK_ERR_OVERRUN;
        }
        if (err == 0xFFu || !err)
            HR(STATUS) = LINK_ST_ACK | pkt_seq;
        else
            HR(STATUS) = LINK_ST_ERR | err;
    }
}
