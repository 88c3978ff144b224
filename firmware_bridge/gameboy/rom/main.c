/* pxby link ROM: a Game Boy as the pxby handheld, fed over the link port (docs/protocol.md,
 * "Game Boy link layer"). Build: make -C firmware_bridge/gameboy
 *
 * The host does the thinking (which tile goes in which slot, which map is shown); the ROM is a
 * reliable VRAM writer with an atomic flip and an APU register player:
 *   packet = 0xA5, seq, len, type, payload[len], fletcher a, fletcher b
 * Every byte received is answered (in the next exchange) by a status byte. The serial interrupt
 * (isr.s) receives whole packets on its own, checks them and queues them in 8 slots; a packet is
 * acknowledged once queued while a slot is still free for the next one, so the host sends the
 * next packet at once and never more than the queue holds. This loop applies the queue in order,
 * and may take as long as an operation needs: nothing it does can make the link lose a byte.
 * When every queued packet is applied the status says so (ST_APPLIED), which is how the host
 * knows the screen is final. */
#include <stdint.h>

#include "colour.h"
#include "hram.h"
#include "packets.h"

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

/* Only in VBlank (switching the LCD off mid-frame can damage a DMG screen), with two lines to
 * spare in case an interrupt lands between the check and the write. */
static void lcd_off(void)
{
    uint8_t ly;
    while (HR(R_LCDC) & 0x80u) { /* the VBlank handler may get there first (LCDC_TOP is 0) */
        ly = HR(R_LY);
        if (ly >= 144u && ly <= 151u)
            HR(R_LCDC) = 0;
    }
}

/* Fresh screen and sound, as at boot: all tiles blank, both maps showing tile 0. The LCD is off
 * for 2-3 frames; the serial interrupt keeps receiving meanwhile (with LCDC_TOP at 0 the
 * VBlank handler keeps the LCD off too). IF and IE are left alone. */
static void reset_device(void)
{
    HR(FLIP_PENDING) = 0;
    HR(LCDC_TOP) = 0;
    lcd_off();
    vram_clear();
    colour_reset();
    HR(LCDC_TOP) = LINK_LCDC_BASE;
    HR(R_BGP) = LINK_BGP_DEFAULT;
    HR(R_NR52) = 0x80u;
    HR(R_NR50) = 0x77u;
    HR(R_NR51) = 0xFFu;
    snd_head = snd_tail = 0;
    snd_frames_played = HR(VBLANKS);
    HR(R_LCDC) = LINK_LCDC_BASE;
}

/* The serial interrupt checked the payload (address range, map number, sound registers): apply. */
static void apply_vram(const uint8_t *p, uint8_t len)
{
    HR(COPY_SRC) = (uint8_t)(uint16_t)(p + 2);
    HR(COPY_SRC + 1) = (uint8_t)((uint16_t)(p + 2) >> 8);
    HR(COPY_DST) = p[0];
    HR(COPY_DST + 1) = p[1];
    HR(COPY_LEN) = len - 2u;
    vram_copy();
}

/* The VBlank ISR switches map and palette at once; the packets after this one are applied only
 * once it has, so the host's next writes to the (now hidden) other map can never show. */
static void apply_flip(const uint8_t *p)
{
    HR(FLIP_LCDC) = LINK_LCDC_BASE | (uint8_t)(p[0] << 3);
    HR(FLIP_BGP) = p[1];
    if (colour_staged) { /* new palettes: written with the map switch, in the next VBlank */
        uint8_t since = HR(VBLANKS);
        while (!colour_flip(since)) {
            watchdog();
            /* the sound (and the joypad) only well before VBlank: at line 144 this loop must be
             * spinning, or the 3 lines the palettes can start in pass while it plays a frame */
            if (HR(R_LY) < 136u)
                play_sound();
        }
        return;
    }
    HR(FLIP_PENDING) = 1;
    while (HR(FLIP_PENDING)) {
        watchdog();
        play_sound();
    }
}

static void apply_sound(const uint8_t *p, uint8_t len)
{
    uint8_t i;
    while (snd_free() < len) {
        watchdog();
        play_sound();
    }
    for (i = 0; i < len; i++) {
        snd[snd_head] = p[i];
        snd_head = (snd_head + 1u) & (SND_SIZE - 1u);
    }
}

/* Apply the oldest queued packet, then free its slot. */
static void apply_next(void)
{
    const uint8_t *slot = (const uint8_t *)SLOTS + ((uint16_t)HR(Q_RD) << 8);
    switch (slot[2]) {
    case LINK_T_HELLO:
        reset_device();
        break;
    case LINK_T_VRAM:
        apply_vram(slot + 3, slot[1]);
        break;
    case LINK_T_FLIP:
        apply_flip(slot + 3);
        break;
    case LINK_T_SOUND:
        apply_sound(slot + 3, slot[1]);
        break;
    case LINK_T_PALETTE:
        colour_palette(slot + 3, slot[1]);
        break;
    case LINK_T_ATTR:
        colour_attr(slot + 3, slot[1]);
        break;
    }
    /* one store: the serial interrupt sees the slot free from its next byte on (and updates the
     * status then; this loop never writes it) */
    HR(Q_RD) = (HR(Q_RD) + 1u) & SLOT_MASK;
}

void main(void)
{
    /* the port first: a host that is already clocking loses as few bytes as possible */
    HR(STATUS) = LINK_ST_READY;
    HR(PARSE_STATE) = 1; /* hunting for the sync byte */
    HR(Q_WR) = HR(Q_RD) = 0;
    HR(SESSION) = HR(REARMS) = HR(FLIPS) = 0;
    HR(VBLANKS) = HR(FLIP_PENDING) = HR(QUIET) = 0;
    HR(LCDC_TOP) = 0;
    HR(R_SB) = LINK_ST_READY;
    HR(R_SC) = 0x80u;
    HR(R_LYC) = LINK_LYC_LINE;
    HR(R_STAT) = 0x40u; /* LYC interrupt */
    HR(R_IF) = 0; /* before the first ei, one store: nothing is pending that matters */
    HR(R_IE) = 0x0Bu; /* VBlank, STAT, serial */
    __asm__("ei");
    reset_device();
    for (;;) {
        watchdog();
        play_sound();
        if (HR(Q_RD) != HR(Q_WR))
            apply_next();
    }
}
