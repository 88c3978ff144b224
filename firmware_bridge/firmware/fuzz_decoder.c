/* libFuzzer target: arbitrary bytes into the frame decoder and the whole device state machine.
 *
 *   make -C firmware_bridge/firmware fuzz FUZZ_RUNS=1000000
 *
 * The first input byte picks how the rest is split into feed() calls; the clock advances between
 * them so audio playback and NAK timing run too. ASan and UBSan catch any out-of-bounds access. */
#include <stddef.h>
#include <stdint.h>

#include "hw_host.h"

static pxby_host host;
static pxby_device dev;
static pxby_decoder dec;

/* Structured mode: valid frames (right CRC, session tag 1) built from the input, so the fuzzer
   reaches the message handlers instead of stopping at the CRC. */
static void feed_frame(uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *payload, size_t len) {
    static uint8_t body[PXBY_MAX_FRAME], wire[PXBY_MAX_ENCODED + 1];
    if (len > PXBY_MAX_PAYLOAD) len = PXBY_MAX_PAYLOAD;
    body[0] = PXBY_PROTOCOL_VERSION;
    body[1] = type;
    body[2] = flags;
    body[3] = 0;
    body[4] = (uint8_t)seq;
    body[5] = (uint8_t)(seq >> 8);
    body[6] = 1;
    body[7] = 0;
    for (size_t i = 0; i < len; i++) body[PXBY_HEADER_SIZE + i] = payload[i];
    uint32_t crc = pxby_crc32c(body, PXBY_HEADER_SIZE + len, 0);
    for (int k = 0; k < 4; k++) body[PXBY_HEADER_SIZE + len + k] = (uint8_t)(crc >> (8 * k));
    size_t n = pxby_cobs_encode(body, PXBY_HEADER_SIZE + len + PXBY_CRC_SIZE, wire);
    wire[n++] = 0;
    pxby_device_feed(&dev, wire, n);
}

static void structured(const uint8_t *data, size_t size) {
    static const uint8_t hello[] = {1, 1, 1, 0, 1, 0, 0, 2}; /* v1..v1, nonce 0x00010001: session 1 */
    feed_frame(PXBY_MSG_HELLO, 0, 0, hello, sizeof hello);
    size_t i = 0;
    while (i + 4 <= size) {
        uint8_t type = data[i], flags = data[i + 1];
        uint16_t seq = data[i + 2];
        size_t len = data[i + 3];
        if (len & 0x80) len = (len & 0x7F) * 8; /* reach long TILES and AUDIO_CHUNK payloads too */
        i += 4;
        if (len > size - i) len = size - i;
        feed_frame(type, flags, seq, data + i, len);
        i += len;
        host.now_ms += 3;
        host.out_len = 0;
        host.audio_len = 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pxby_hw hw = pxby_host_hw(&host);
    host.out_len = 0;
    host.audio_len = 0;
    host.now_ms = 0;
    pxby_device_init(&dev, &hw, 1);
    pxby_decoder_init(&dec, PXBY_MAX_ENCODED, PXBY_PROTOCOL_MIN, PXBY_PROTOCOL_MAX);
    if (size == 0) return 0;
    if (data[0] & 0x80) {
        structured(data + 1, size - 1);
        return 0;
    }
    size_t step = (size_t)(data[0] % 64) + 1;
    for (size_t i = 1; i < size; i += step) {
        size_t n = size - i < step ? size - i : step;
        pxby_device_feed(&dev, data + i, n);
        pxby_msg m;
        for (size_t k = 0; k < n; k++) (void)pxby_decoder_byte(&dec, data[i + k], &m);
        host.now_ms += 7;
        host.out_len = 0;
        host.audio_len = 0;
    }
    return 0;
}
