/* Unit tests of the firmware core, run by `make test`. Each check prints what failed and where. */
#include <stdio.h>
#include <string.h>

#include "hw_host.h"

static int failures = 0, checks = 0;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

static pxby_host host;
static pxby_device dev;
static pxby_decoder reader; /* decodes what the device sent back */

/* Builds and feeds one host frame with the session tag `tag`. */
static void feed(uint8_t type, uint8_t flags, uint16_t seq, uint16_t tag, const uint8_t *payload, size_t len) {
    static uint8_t body[PXBY_MAX_FRAME], wire[PXBY_MAX_ENCODED + 1];
    body[0] = PXBY_PROTOCOL_VERSION; body[1] = type; body[2] = flags; body[3] = 0;
    body[4] = (uint8_t)seq; body[5] = (uint8_t)(seq >> 8); body[6] = (uint8_t)tag; body[7] = (uint8_t)(tag >> 8);
    memcpy(body + PXBY_HEADER_SIZE, payload, len);
    uint32_t crc = pxby_crc32c(body, PXBY_HEADER_SIZE + len, 0);
    for (int k = 0; k < 4; k++) body[PXBY_HEADER_SIZE + len + k] = (uint8_t)(crc >> (8 * k));
    size_t n = pxby_cobs_encode(body, PXBY_HEADER_SIZE + len + PXBY_CRC_SIZE, wire);
    wire[n++] = 0;
    pxby_device_feed(&dev, wire, n);
}

/* The last message of type `type` the device sent since the previous call; 0 if none. */
static int reply(uint8_t type, pxby_msg *out, uint8_t *payload_copy) {
    int found = 0;
    pxby_msg m;
    for (size_t i = 0; i < host.out_len; i++)
        if (pxby_decoder_byte(&reader, host.out[i], &m) == PXBY_FRAME && m.type == type) {
            *out = m;
            memcpy(payload_copy, m.payload, m.len);
            out->payload = payload_copy;
            found = 1;
        }
    host.out_len = 0;
    return found;
}

static void test_crc_and_cobs(void) {
    CHECK(pxby_crc32c((const uint8_t *)"123456789", 9, 0) == 0xE3069283u);
    static uint8_t in[700], enc[720], dec[720];
    for (size_t n = 0; n < sizeof in; n += 37) {
        for (size_t i = 0; i < n; i++) in[i] = (uint8_t)((i * 7) % 5 ? i * 13 : 0);
        size_t e = pxby_cobs_encode(in, n, enc);
        CHECK(memchr(enc, 0, e) == NULL);
        CHECK(pxby_cobs_decode(enc, e, dec, sizeof dec) == (long)n && memcmp(in, dec, n) == 0);
    }
    uint8_t bad[] = {5, 1, 2};
    CHECK(pxby_cobs_decode(bad, sizeof bad, dec, sizeof dec) == -1);
}

static void test_decoder(void) {
    pxby_decoder d;
    pxby_msg m;
    uint8_t wire[64];
    const uint8_t payload[] = {0, 1, 2, 0};
    size_t n = pxby_frame_encode(PXBY_MSG_PING, 0, 0, 9, 3, payload, 4, wire, sizeof wire);
    pxby_decoder_init(&d, PXBY_MAX_ENCODED, 1, 1);
    const char *garbage = "\x13\x37garbage";
    for (size_t i = 0; i < strlen(garbage); i++) CHECK(pxby_decoder_byte(&d, (uint8_t)garbage[i], &m) == PXBY_NONE);
    CHECK(pxby_decoder_byte(&d, 0, &m) < 0); /* resynchronised at the zero */
    int got = 0;
    for (size_t i = 0; i < n; i++) got += pxby_decoder_byte(&d, wire[i], &m) == PXBY_FRAME;
    CHECK(got == 1 && m.type == PXBY_MSG_PING && m.seq == 9 && m.ack == 3 && m.len == 4 && !memcmp(m.payload, payload, 4));
    wire[3] ^= 0x40;
    int r = 0;
    for (size_t i = 0; i < n; i++) r = pxby_decoder_byte(&d, wire[i], &m);
    CHECK(r == PXBY_BAD_CRC || r == PXBY_BAD_COBS);
    for (int i = 0; i < 5000; i++) pxby_decoder_byte(&d, 0x55, &m); /* no delimiter for a long time */
    CHECK(d.len <= PXBY_MAX_ENCODED);
    CHECK(pxby_decoder_byte(&d, 0, &m) == PXBY_BAD_TOO_LONG);
}

static void test_device(void) {
    pxby_hw hw = pxby_host_hw(&host);
    pxby_msg m;
    uint8_t p[PXBY_MAX_PAYLOAD];
    memset(&host, 0, sizeof host);
    pxby_device_init(&dev, &hw, 42);
    pxby_decoder_init(&reader, PXBY_MAX_ENCODED, 1, 1);

    /* before HELLO everything is refused with "no session" */
    feed(PXBY_MSG_COMMIT, PXBY_F_RELIABLE, 0, 7, (const uint8_t *)"\0\0\0\0", 4);
    CHECK(reply(PXBY_MSG_NAK, &m, p) && p[2] == PXBY_NAK_NO_SESSION);

    /* a HELLO with no common version gets version 0 and no session */
    const uint8_t future[] = {5, 6, 7, 0, 0, 0, 0, 2};
    feed(PXBY_MSG_HELLO, 0, 0, 0, future, sizeof future);
    CHECK(reply(PXBY_MSG_HELLO_ACK, &m, p) && p[0] == 0 && !dev.has_session);

    const uint8_t hello[] = {1, 1, 7, 0, 0, 0, 0, 2}; /* nonce 7: session tag 7 */
    feed(PXBY_MSG_HELLO, 0, 0, 0, hello, sizeof hello);
    CHECK(reply(PXBY_MSG_HELLO_ACK, &m, p));
    CHECK(m.len == PXBY_HELLO_ACK_FIXED && p[0] == 1 && p[6] == 7 && p[10] == 42);
    CHECK((p[14] | p[15] << 8) == PXBY_SCREEN_W && (p[16] | p[17] << 8) == PXBY_SCREEN_H && p[18] == 2);

    /* tile 0 all shade 3, map untouched (identity), commit: the top-left 8x8 goes dark */
    uint8_t tiles[2 + 16];
    tiles[0] = 0; tiles[1] = 0;
    memset(tiles + 2, 0xFF, 16);
    feed(PXBY_MSG_TILES, PXBY_F_RELIABLE, 0, 7, tiles, sizeof tiles);
    CHECK(reply(PXBY_MSG_ACK, &m, p) && m.ack == 1);
    const uint8_t frame[] = {1, 0, 0, 0};
    feed(PXBY_MSG_COMMIT, PXBY_F_RELIABLE, 1, 7, frame, 4);
    CHECK(reply(PXBY_MSG_ACK, &m, p) && m.ack == 2);
    CHECK(host.blits == 1 && host.screen[0] == 3 && host.screen[7 * PXBY_SCREEN_W + 7] == 3 && host.screen[8] == 0);

    /* a low plane only tile: shade 1; bit 7 is the leftmost pixel */
    memset(tiles + 2, 0, 16);
    tiles[2] = 0x80;
    tiles[0] = 1;
    feed(PXBY_MSG_TILES, PXBY_F_RELIABLE, 2, 7, tiles, sizeof tiles);
    feed(PXBY_MSG_COMMIT, PXBY_F_RELIABLE, 3, 7, frame, 4);
    CHECK(host.screen[8] == 1 && host.screen[9] == 0);

    /* a duplicate is acknowledged again and not applied twice; a gap gets one NAK */
    host.out_len = 0;
    feed(PXBY_MSG_COMMIT, PXBY_F_RELIABLE, 3, 7, frame, 4);
    CHECK(reply(PXBY_MSG_ACK, &m, p) && m.ack == 4 && dev.counters[PXBY_C_DUP_FRAMES] == 1);
    /* an early frame is held and reported in the SACK bitmap; the hole's frames release it */
    feed(PXBY_MSG_COMMIT, PXBY_F_RELIABLE, 6, 7, frame, 4);
    CHECK(reply(PXBY_MSG_NAK, &m, p) && p[2] == PXBY_NAK_OUT_OF_ORDER && (p[3] | p[4] << 8) == 4);
    CHECK(p[5] == 0x02 && dev.held_count == 1); /* bit 1: seq 4 + 1 + 1 */
    host.now_ms += PXBY_NAK_REPEAT_MS;
    pxby_device_tick(&dev); /* the hole is still open: the NAK is repeated */
    CHECK(reply(PXBY_MSG_NAK, &m, p) && (p[3] | p[4] << 8) == 4);
    uint32_t commits = dev.counters[PXBY_C_COMMITS];
    feed(PXBY_MSG_COMMIT, PXBY_F_RELIABLE, 4, 7, frame, 4);
    feed(PXBY_MSG_COMMIT, PXBY_F_RELIABLE, 5, 7, frame, 4);
    CHECK(reply(PXBY_MSG_ACK, &m, p) && m.ack == 7 && dev.held_count == 0);
    CHECK(dev.counters[PXBY_C_COMMITS] == commits + 3);

    /* out-of-range tiles are refused and leave the store alone */
    tiles[0] = (uint8_t)(PXBY_DEV_TILE_SLOTS & 0xFF);
    tiles[1] = (uint8_t)(PXBY_DEV_TILE_SLOTS >> 8);
    feed(PXBY_MSG_TILES, PXBY_F_RELIABLE, 7, 7, tiles, sizeof tiles);
    CHECK(reply(PXBY_MSG_NAK, &m, p) && p[2] == PXBY_NAK_BAD_PAYLOAD && dev.expected == 8);
    uint8_t rect[4 + 2] = {19, 17, 2, 1, 0, 0}; /* runs off the right edge */
    feed(PXBY_MSG_MAP_RECT, PXBY_F_RELIABLE, 8, 7, rect, sizeof rect);
    CHECK(reply(PXBY_MSG_NAK, &m, p) && p[2] == PXBY_NAK_BAD_PAYLOAD);

    /* audio: configure 8-bit at sample 100, prebuffer 4; a chunk, a gap, playback by the clock */
    uint8_t cfg[13] = {0};
    cfg[0] = (uint8_t)(PXBY_DEV_AUDIO_RATE & 0xFF); cfg[1] = (uint8_t)(PXBY_DEV_AUDIO_RATE >> 8);
    cfg[4] = PXBY_AUDIO_U8;
    cfg[5] = 100;
    cfg[9] = 4;
    feed(PXBY_MSG_AUDIO_CFG, PXBY_F_RELIABLE, 9, 7, cfg, sizeof cfg);
    CHECK(reply(PXBY_MSG_ACK, &m, p) && dev.audio_format == PXBY_AUDIO_U8);
    uint8_t chunk[4 + 8] = {100, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    feed(PXBY_MSG_AUDIO_CHUNK, 0, 0, 7, chunk, sizeof chunk);
    CHECK(reply(PXBY_MSG_ACK, &m, p));
    CHECK((uint32_t)(p[2] | p[3] << 8 | p[4] << 16 | (uint32_t)p[5] << 24) == 108);
    chunk[0] = 110; /* samples 108 and 109 never came */
    feed(PXBY_MSG_AUDIO_CHUNK, PXBY_F_END, 0, 7, chunk, sizeof chunk);
    CHECK(dev.counters[PXBY_C_GAPS] == 2 && dev.fill == 16);
    host.now_ms += 1000; /* a second: more than enough to play everything */
    pxby_device_tick(&dev);
    pxby_device_tick(&dev);
    CHECK(host.audio_len == 16 && host.audio[0] == 1 && host.audio[8] == 1 && dev.fill == 0);
    CHECK(dev.counters[PXBY_C_UNDERRUNS] == 0);

    /* 4-bit audio: two samples a byte, high nibble first */
    cfg[4] = PXBY_AUDIO_U4;
    cfg[5] = 0;
    cfg[9] = 0;
    feed(PXBY_MSG_AUDIO_CFG, PXBY_F_RELIABLE, 10, 7, cfg, sizeof cfg);
    uint8_t chunk4[5] = {0, 0, 0, 0, 0x9A};
    host.audio_len = 0;
    feed(PXBY_MSG_AUDIO_CHUNK, PXBY_F_END, 0, 7, chunk4, sizeof chunk4);
    host.now_ms += 1000;
    pxby_device_tick(&dev);
    pxby_device_tick(&dev);
    CHECK(host.audio_len == 2 && host.audio[0] == 9 && host.audio[1] == 10);

    /* PING: PONG with the token, then STATUS and ACK */
    const uint8_t token[] = {1, 2, 3, 4};
    feed(PXBY_MSG_PING, 0, 0, 7, token, 4);
    size_t saved = host.out_len;
    CHECK(reply(PXBY_MSG_PONG, &m, p) && !memcmp(p, token, 4));
    host.out_len = saved;
    CHECK(reply(PXBY_MSG_STATUS, &m, p) && m.len == PXBY_STATUS_FIXED);

    /* an oversize frame is dropped while it streams in */
    static uint8_t big[PXBY_MAX_PAYLOAD];
    memset(big, 1, sizeof big);
    uint32_t bad_before = dev.counters[PXBY_C_FRAMES_BAD];
    feed(PXBY_MSG_TILES, PXBY_F_RELIABLE, 11, 7, big, sizeof big);
    CHECK(dev.counters[PXBY_C_FRAMES_BAD] == bad_before + 1 && dev.expected == 11);
}

int main(void) {
    test_crc_and_cobs();
    test_decoder();
    test_device();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
