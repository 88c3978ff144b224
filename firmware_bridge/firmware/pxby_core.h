/* pxby firmware core: frame decoder, protocol state machine, tiles, audio ring. C99, no allocation.
 *
 *   make -C firmware_bridge/firmware test
 *
 * The caller owns every context (put it in static storage on a microcontroller) and feeds the
 * UART bytes through pxby_device_feed(); the core reaches the hardware only through the
 * callbacks in pxby_hw. Nothing in a frame is read before its CRC-32C passes, and every length
 * taken from a frame is checked against a compile-time bound before it is used.
 */
#ifndef PXBY_CORE_H
#define PXBY_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "pxby_protocol.h"

/* Device limits (what HELLO_ACK advertises). Override with -D for a smaller board. */
#ifndef PXBY_DEV_TILE_SLOTS
#define PXBY_DEV_TILE_SLOTS 384
#endif
#ifndef PXBY_DEV_MAX_PAYLOAD
#define PXBY_DEV_MAX_PAYLOAD 512
#endif
#ifndef PXBY_DEV_AUDIO_BUFFER
#define PXBY_DEV_AUDIO_BUFFER 4096
#endif
#ifndef PXBY_DEV_TEXT_BUFFER
#define PXBY_DEV_TEXT_BUFFER 256
#endif
#ifndef PXBY_DEV_RX_WINDOW
#define PXBY_DEV_RX_WINDOW 8
#endif
#ifndef PXBY_DEV_AUDIO_RATE
#define PXBY_DEV_AUDIO_RATE 8192
#endif
#define PXBY_NAK_REPEAT_MS 5 /* while a hole is open, remind the host this often */
#if PXBY_DEV_RX_WINDOW > 32 || PXBY_DEV_RX_WINDOW < 1
#error "PXBY_DEV_RX_WINDOW must be 1..32 (the SACK bitmap is 32 bits)"
#endif

/* -- CRC and COBS -------------------------------------------------------------------------- */
uint32_t pxby_crc32c(const uint8_t *data, size_t len, uint32_t crc);
/* Encodes len bytes into out (room for len + len/254 + 1); returns the encoded length. */
size_t pxby_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);
/* Decodes in place semantics-free: returns decoded length, or -1 when not valid COBS. */
long pxby_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);

/* -- frame decoder ------------------------------------------------------------------------- */
enum pxby_result {
    PXBY_NONE = 0,
    PXBY_FRAME = 1,
    PXBY_BAD_COBS = -1,
    PXBY_BAD_SHORT = -2,
    PXBY_BAD_CRC = -3,
    PXBY_BAD_TOO_LONG = -4,
    PXBY_BAD_VERSION = -5
};

typedef struct {
    uint8_t version, type, flags, channel;
    uint16_t seq, ack;
    const uint8_t *payload; /* points into the decoder: valid until the next byte is fed */
    uint16_t len;
} pxby_msg;

typedef struct {
    uint8_t buf[PXBY_MAX_ENCODED];
    uint8_t body[PXBY_MAX_ENCODED];
    size_t len;
    size_t max_encoded;
    uint32_t overflow;
    uint8_t version_min, version_max;
} pxby_decoder;

void pxby_decoder_init(pxby_decoder *d, size_t max_encoded, uint8_t version_min, uint8_t version_max);
/* One byte in; PXBY_FRAME fills *out, a negative value names a bad frame, PXBY_NONE otherwise. */
int pxby_decoder_byte(pxby_decoder *d, uint8_t byte, pxby_msg *out);
const char *pxby_result_name(int result);

/* Encodes a frame (header, payload, CRC, COBS, delimiter) into out; returns its length or 0. */
size_t pxby_frame_encode(uint8_t type, uint8_t flags, uint8_t channel, uint16_t seq, uint16_t ack,
                         const uint8_t *payload, size_t len, uint8_t *out, size_t out_cap);

/* -- hardware interface -------------------------------------------------------------------- */
typedef struct {
    void *ctx;
    void (*uart_write)(void *ctx, const uint8_t *data, size_t len);
    /* the committed screen: w*h shades 0..3, and the 4 shades as RGB */
    void (*lcd_blit)(void *ctx, const uint8_t *shades, uint16_t w, uint16_t h, const uint8_t palette[12]);
    /* samples due to the speaker now (u8, or u4 in the low nibble), and the stream offset of the
       first (exact while at most PXBY_AUDIO_MARKS gaps wait in the buffer, then running on) */
    void (*audio_play)(void *ctx, uint32_t offset, const uint8_t *samples, size_t n);
    uint32_t (*millis)(void *ctx);
} pxby_hw;

enum pxby_counter {
    PXBY_C_UNDERRUNS, PXBY_C_GAPS, PXBY_C_FRAMES_OK, PXBY_C_CRC_ERRORS, PXBY_C_FRAMES_BAD,
    PXBY_C_DUP_FRAMES, PXBY_C_OUT_OF_ORDER, PXBY_C_COMMITS, PXBY_C_SAMPLES_PLAYED, PXBY_C_BAD_PAYLOAD,
    PXBY_C_AUDIO_OVERFLOW, PXBY_C_HELLOS, PXBY_C_COUNT
};

/* A reliable frame that arrived ahead of a hole, kept until the hole is filled (selective repeat). */
typedef struct {
    uint8_t used, type, flags, channel;
    uint16_t seq, len;
    uint8_t payload[PXBY_DEV_MAX_PAYLOAD];
} pxby_held;

typedef struct {
    pxby_hw hw;
    pxby_decoder dec;
    uint32_t boot_id;
    uint8_t has_session;
    uint16_t session, expected;
    pxby_held held[PXBY_DEV_RX_WINDOW];
    uint8_t held_count;
    uint32_t nak_at;
    uint8_t tiles[PXBY_DEV_TILE_SLOTS][PXBY_TILE_BYTES];
    uint16_t map[PXBY_MAP_H][PXBY_MAP_W];
    uint8_t screen[PXBY_SCREEN_H * PXBY_SCREEN_W];
    uint8_t palette[12];
    uint8_t text[PXBY_DEV_TEXT_BUFFER];
    uint16_t text_len;
    uint32_t frame_no;
    /* audio: a ring of samples; head is the next to play */
    uint8_t ring[PXBY_DEV_AUDIO_BUFFER];
    uint32_t head, fill;
    uint32_t audio_next, audio_rate, prebuffer, play_offset;
    /* where the offsets jump inside the ring (a gap came while samples were buffered): at = the
       ring_in count of the first sample after the jump; tail_offset = the offset the speaker will
       be told after the last buffered sample */
    struct { uint32_t at, offset; } marks[PXBY_AUDIO_MARKS];
    uint8_t mark_head, mark_count;
    uint32_t ring_in, tail_offset;
    uint8_t audio_format, playing, ended;
    uint32_t due_milli, last_ms, played_since_ack;
    uint32_t counters[PXBY_C_COUNT];
    uint8_t tx[PXBY_HEADER_SIZE + 64 + PXBY_CRC_SIZE + 4]; /* replies are small */
} pxby_device;

void pxby_device_init(pxby_device *dev, const pxby_hw *hw, uint32_t boot_id);
void pxby_device_feed(pxby_device *dev, const uint8_t *data, size_t len);
void pxby_device_tick(pxby_device *dev);

#endif
