/* pxby firmware core: see pxby_core.h and docs/protocol.md. */
#include "pxby_core.h"

#include <string.h>

/* -- little-endian helpers (the wire is little-endian whatever the MCU is) ------------------ */
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* -- CRC-32C, bitwise: 1 KB of table is a lot on a small MCU, and frames are short ---------- */
uint32_t pxby_crc32c(const uint8_t *data, size_t len, uint32_t crc) {
    uint32_t c = crc ^ 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        c ^= data[i];
        for (int k = 0; k < 8; k++) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

/* -- COBS ----------------------------------------------------------------------------------- */
size_t pxby_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t o = 1, code_at = 0;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

long pxby_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap) {
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t code = in[i];
        if (code == 0 || i + code > len) return -1;
        for (size_t k = i + 1; k < i + code; k++) {
            if (in[k] == 0 || o >= out_cap) return -1;
            out[o++] = in[k];
        }
        i += code;
        if (code != 0xFF && i < len) {
            if (o >= out_cap) return -1;
            out[o++] = 0;
        }
    }
    return (long)o;
}

/* -- decoder -------------------------------------------------------------------------------- */
void pxby_decoder_init(pxby_decoder *d, size_t max_encoded, uint8_t version_min, uint8_t version_max) {
    d->len = 0;
    d->overflow = 0;
    d->max_encoded = max_encoded > PXBY_MAX_ENCODED ? PXBY_MAX_ENCODED : max_encoded;
    d->version_min = version_min;
    d->version_max = version_max;
}

static int parse(pxby_decoder *d, size_t n, pxby_msg *out) {
    const uint8_t *b = d->body;
    if (n < PXBY_HEADER_SIZE + PXBY_CRC_SIZE) return PXBY_BAD_SHORT;
    if (n > PXBY_MAX_FRAME) return PXBY_BAD_TOO_LONG;
    if (pxby_crc32c(b, n - PXBY_CRC_SIZE, 0) != rd32(b + n - PXBY_CRC_SIZE)) return PXBY_BAD_CRC;
    /* only now is the header trusted */
    out->version = b[0];
    out->type = b[1];
    out->flags = b[2];
    out->channel = b[3];
    out->seq = rd16(b + 4);
    out->ack = rd16(b + 6);
    out->payload = b + PXBY_HEADER_SIZE;
    out->len = (uint16_t)(n - PXBY_HEADER_SIZE - PXBY_CRC_SIZE);
    if ((out->version < d->version_min || out->version > d->version_max) && out->type != PXBY_MSG_HELLO &&
        out->type != PXBY_MSG_HELLO_ACK)
        return PXBY_BAD_VERSION;
    return PXBY_FRAME;
}

int pxby_decoder_byte(pxby_decoder *d, uint8_t byte, pxby_msg *out) {
    if (byte != 0) {
        if (d->len < d->max_encoded) d->buf[d->len++] = byte;
        else d->overflow++;
        return PXBY_NONE;
    }
    int r = PXBY_NONE;
    if (d->overflow) {
        r = PXBY_BAD_TOO_LONG;
    } else if (d->len) {
        long n = pxby_cobs_decode(d->buf, d->len, d->body, sizeof d->body);
        r = n < 0 ? PXBY_BAD_COBS : parse(d, (size_t)n, out);
    }
    d->len = 0;
    d->overflow = 0;
    return r;
}

const char *pxby_result_name(int r) {
    switch (r) {
    case PXBY_BAD_COBS: return "cobs";
    case PXBY_BAD_SHORT: return "short";
    case PXBY_BAD_CRC: return "crc";
    case PXBY_BAD_TOO_LONG: return "too_long";
    case PXBY_BAD_VERSION: return "version";
    case PXBY_FRAME: return "frame";
    default: return "none";
    }
}

size_t pxby_frame_encode(uint8_t type, uint8_t flags, uint8_t channel, uint16_t seq, uint16_t ack,
                         const uint8_t *payload, size_t len, uint8_t *out, size_t out_cap) {
    uint8_t body[PXBY_HEADER_SIZE + 64 + PXBY_CRC_SIZE];
    size_t n = PXBY_HEADER_SIZE + len + PXBY_CRC_SIZE;
    if (len > 64 || n + n / 254 + 2 > out_cap) return 0;
    body[0] = PXBY_PROTOCOL_VERSION;
    body[1] = type;
    body[2] = flags;
    body[3] = channel;
    wr16(body + 4, seq);
    wr16(body + 6, ack);
    if (len) memcpy(body + PXBY_HEADER_SIZE, payload, len);
    wr32(body + PXBY_HEADER_SIZE + len, pxby_crc32c(body, PXBY_HEADER_SIZE + len, 0));
    size_t m = pxby_cobs_encode(body, n, out);
    out[m++] = 0;
    return m;
}

/* -- device --------------------------------------------------------------------------------- */
#define MAP_CELLS (PXBY_MAP_W * PXBY_MAP_H)

static void identity_map(pxby_device *dev) {
    /* at boot and after RESET screen tile (x, y) shows slot y * 20 + x: a host draws with tiles alone */
    for (int i = 0; i < MAP_CELLS; i++) dev->map[i / PXBY_MAP_W][i % PXBY_MAP_W] = (uint16_t)(i % PXBY_DEV_TILE_SLOTS);
}

static void audio_reset(pxby_device *dev, uint32_t rate, uint8_t fmt, uint32_t start, uint32_t prebuffer) {
    dev->audio_rate = rate;
    dev->audio_format = fmt;
    dev->audio_next = start;
    dev->play_offset = start;
    dev->prebuffer = prebuffer;
    dev->head = dev->fill = 0;
    dev->mark_head = dev->mark_count = 0;
    dev->ring_in = 0;
    dev->tail_offset = start;
    dev->playing = dev->ended = 0;
    dev->due_milli = 0;
    dev->played_since_ack = 0;
}

static const uint8_t DMG[12] = {0x9B, 0xBC, 0x0F, 0x8B, 0xAC, 0x0F, 0x30, 0x62, 0x30, 0x0F, 0x38, 0x0F};

void pxby_device_init(pxby_device *dev, const pxby_hw *hw, uint32_t boot_id) {
    memset(dev, 0, sizeof *dev);
    dev->hw = *hw;
    dev->boot_id = boot_id;
    {
        /* the receive buffer is sized from what the device accepts: an oversize frame is dropped
           while it streams in, before any of it is interpreted */
        size_t frame = PXBY_HEADER_SIZE + PXBY_DEV_MAX_PAYLOAD + PXBY_CRC_SIZE;
        pxby_decoder_init(&dev->dec, frame + frame / 254 + 2, 1, 255);
    }
    memcpy(dev->palette, DMG, sizeof DMG);
    identity_map(dev);
    audio_reset(dev, 0, 0, 0, 0);
}

static void send(pxby_device *dev, uint8_t type, const uint8_t *payload, size_t len) {
    size_t n = pxby_frame_encode(type, 0, PXBY_CH_CONTROL, 0, dev->expected, payload, len, dev->tx, sizeof dev->tx);
    if (n && dev->hw.uart_write) dev->hw.uart_write(dev->hw.ctx, dev->tx, n);
}

static uint32_t audio_limit(const pxby_device *dev) {
    return dev->audio_next + (PXBY_DEV_AUDIO_BUFFER - dev->fill);
}

static uint32_t sack_bits(const pxby_device *dev) {
    uint32_t bits = 0;
    /* bit i: frame expected + 1 + i is held. A held frame equal to expected (its hole was just
       filled by a frame being refused) is delivered next, so it is no bit */
    for (int i = 0; i < PXBY_DEV_RX_WINDOW; i++) {
        uint16_t ahead = (uint16_t)(dev->held[i].seq - dev->expected);
        if (dev->held[i].used && ahead >= 1 && ahead <= 32) bits |= 1u << (ahead - 1);
    }
    return bits;
}

static void send_ack(pxby_device *dev) {
    uint8_t p[PXBY_ACK_FIXED];
    wr16(p, dev->has_session ? dev->session : 0);
    wr32(p + 2, dev->audio_next);
    wr32(p + 6, audio_limit(dev));
    wr32(p + 10, sack_bits(dev));
    dev->played_since_ack = 0;
    send(dev, PXBY_MSG_ACK, p, sizeof p);
}

static void send_nak(pxby_device *dev, uint8_t reason) {
    uint8_t p[PXBY_NAK_FIXED];
    wr16(p, dev->has_session ? dev->session : 0);
    p[2] = reason;
    wr16(p + 3, dev->expected);
    wr32(p + 5, sack_bits(dev));
    send(dev, PXBY_MSG_NAK, p, sizeof p);
}

static void send_status(pxby_device *dev) {
    uint8_t p[PXBY_STATUS_FIXED];
    const uint32_t *c = dev->counters;
    uint32_t v[11] = {dev->fill, PXBY_DEV_AUDIO_BUFFER, c[PXBY_C_UNDERRUNS], c[PXBY_C_GAPS], c[PXBY_C_FRAMES_OK],
                      c[PXBY_C_CRC_ERRORS], c[PXBY_C_FRAMES_BAD], c[PXBY_C_DUP_FRAMES], c[PXBY_C_OUT_OF_ORDER],
                      c[PXBY_C_COMMITS], c[PXBY_C_SAMPLES_PLAYED]};
    for (int i = 0; i < 11; i++) wr32(p + 4 * i, v[i]);
    send(dev, PXBY_MSG_STATUS, p, sizeof p);
}

static void on_hello(pxby_device *dev, const pxby_msg *m) {
    if (m->len < PXBY_HELLO_FIXED) { send_nak(dev, PXBY_NAK_BAD_PAYLOAD); return; }
    dev->counters[PXBY_C_HELLOS]++;
    uint8_t lo = m->payload[0] > PXBY_PROTOCOL_MIN ? m->payload[0] : PXBY_PROTOCOL_MIN;
    uint8_t hi = m->payload[1] < PXBY_PROTOCOL_MAX ? m->payload[1] : PXBY_PROTOCOL_MAX;
    uint8_t version = lo <= hi ? hi : 0;
    uint32_t nonce = rd32(m->payload + 2);
    if (version) {
        /* a new session: sequence from 0, audio stopped; the screen stays until redrawn */
        dev->has_session = 1;
        dev->session = (uint16_t)(nonce & 0xFFFF) ? (uint16_t)(nonce & 0xFFFF) : 1;
        dev->expected = 0;
        memset(dev->held, 0, sizeof dev->held);
        dev->held_count = 0;
        audio_reset(dev, 0, 0, 0, 0);
    }
    uint8_t p[PXBY_HELLO_ACK_FIXED], *q = p;
    *q++ = version; *q++ = PXBY_PROTOCOL_MIN; *q++ = PXBY_PROTOCOL_MAX;
    *q++ = PXBY_FW_MAJOR; *q++ = PXBY_FW_MINOR; *q++ = PXBY_FW_PATCH;
    wr32(q, nonce); q += 4;
    wr32(q, dev->boot_id); q += 4;
    wr16(q, PXBY_SCREEN_W); q += 2;
    wr16(q, PXBY_SCREEN_H); q += 2;
    *q++ = 2;
    wr16(q, PXBY_DEV_TILE_SLOTS); q += 2;
    wr32(q, PXBY_DEV_AUDIO_RATE); q += 4;
    *q++ = PXBY_AUDIO_U8 | PXBY_AUDIO_U4;
    *q++ = PXBY_DEV_RX_WINDOW;
    wr16(q, PXBY_DEV_MAX_PAYLOAD); q += 2;
    wr32(q, PXBY_DEV_AUDIO_BUFFER); q += 4;
    wr16(q, PXBY_DEV_TEXT_BUFFER); q += 2;
    send(dev, PXBY_MSG_HELLO_ACK, p, (size_t)(q - p));
}

static void render(pxby_device *dev) {
    for (int ty = 0; ty < PXBY_MAP_H; ty++)
        for (int tx = 0; tx < PXBY_MAP_W; tx++) {
            const uint8_t *t = dev->tiles[dev->map[ty][tx]];
            for (int r = 0; r < 8; r++) {
                uint8_t lo = t[2 * r], hi = t[2 * r + 1];
                uint8_t *px = dev->screen + (size_t)(ty * 8 + r) * PXBY_SCREEN_W + tx * 8;
                for (int b = 0; b < 8; b++) px[b] = (uint8_t)(((lo >> (7 - b)) & 1) | (((hi >> (7 - b)) & 1) << 1));
            }
        }
}

/* a - b for 32-bit sample offsets that wrap: the signed distance in [-2^31, 2^31) */
static int64_t offset_diff(uint32_t a, uint32_t b) {
    uint32_t d = a - b;
    return d < 0x80000000u ? (int64_t)d : (int64_t)d - 0x100000000LL;
}

/* The offset the speaker will be told for m samples starting at stream offset first (docs/protocol.md). */
static void mark_offset(pxby_device *dev, uint32_t first, uint32_t m) {
    uint32_t told = first;
    if (dev->fill == 0) {
        dev->play_offset = first;
    } else if (first != dev->tail_offset) {
        if (dev->mark_count < PXBY_AUDIO_MARKS) {
            uint8_t i = (uint8_t)((dev->mark_head + dev->mark_count++) % PXBY_AUDIO_MARKS);
            dev->marks[i].at = dev->ring_in;
            dev->marks[i].offset = first;
        } else {
            told = dev->tail_offset; /* no room to remember the jump: run on */
        }
    }
    dev->ring_in += m;
    dev->tail_offset = told + m;
}

/* Applies a message's effect; returns 0 when its payload is malformed or out of range. */
static int apply(pxby_device *dev, const pxby_msg *m) {
    const uint8_t *p = m->payload;
    uint16_t n = m->len;
    switch (m->type) {
    case PXBY_MSG_RESET:
        memset(dev->tiles, 0, sizeof dev->tiles);
        memset(dev->screen, 0, sizeof dev->screen);
        identity_map(dev);
        dev->text_len = 0;
        audio_reset(dev, 0, 0, 0, 0);
        return 1;
    case PXBY_MSG_PALETTE:
        if (n != PXBY_PALETTE_FIXED) return 0;
        memcpy(dev->palette, p, 12);
        return 1;
    case PXBY_MSG_TILES: {
        if (n < PXBY_TILES_FIXED) return 0;
        uint32_t first = rd16(p), bytes = (uint32_t)n - PXBY_TILES_FIXED, count = bytes / PXBY_TILE_BYTES;
        if (count == 0 || bytes % PXBY_TILE_BYTES || first + count > PXBY_DEV_TILE_SLOTS) return 0;
        memcpy(dev->tiles[first], p + PXBY_TILES_FIXED, bytes);
        return 1;
    }
    case PXBY_MSG_MAP_RECT: {
        if (n < PXBY_MAP_RECT_FIXED) return 0;
        uint32_t x = p[0], y = p[1], w = p[2], h = p[3];
        if (w == 0 || h == 0 || x + w > PXBY_MAP_W || y + h > PXBY_MAP_H || n != PXBY_MAP_RECT_FIXED + 2 * w * h)
            return 0;
        for (uint32_t i = 0; i < w * h; i++)
            if (rd16(p + PXBY_MAP_RECT_FIXED + 2 * i) >= PXBY_DEV_TILE_SLOTS) return 0;
        for (uint32_t i = 0; i < w * h; i++) dev->map[y + i / w][x + i % w] = rd16(p + PXBY_MAP_RECT_FIXED + 2 * i);
        return 1;
    }
    case PXBY_MSG_COMMIT:
        if (n < PXBY_COMMIT_FIXED) return 0;
        render(dev);
        dev->frame_no = rd32(p);
        dev->counters[PXBY_C_COMMITS]++;
        if (dev->hw.lcd_blit) dev->hw.lcd_blit(dev->hw.ctx, dev->screen, PXBY_SCREEN_W, PXBY_SCREEN_H, dev->palette);
        return 1;
    case PXBY_MSG_TEXT: {
        if (n < PXBY_TEXT_FIXED) return 0;
        if (!p[0]) dev->text_len = 0;
        for (uint32_t i = PXBY_TEXT_FIXED; i < n; i++) {
            if (dev->text_len == PXBY_DEV_TEXT_BUFFER) { /* keep the newest */
                memmove(dev->text, dev->text + 1, PXBY_DEV_TEXT_BUFFER - 1);
                dev->text_len--;
            }
            dev->text[dev->text_len++] = p[i];
        }
        return 1;
    }
    case PXBY_MSG_AUDIO_CFG: {
        if (n < PXBY_AUDIO_CFG_FIXED) return 0;
        uint32_t rate = rd32(p), start = rd32(p + 5), pre = rd32(p + 9);
        uint8_t fmt = p[4];
        if (rate != PXBY_DEV_AUDIO_RATE || (fmt != PXBY_AUDIO_U8 && fmt != PXBY_AUDIO_U4) || pre > PXBY_DEV_AUDIO_BUFFER)
            return 0;
        audio_reset(dev, rate, fmt, start, pre);
        return 1;
    }
    case PXBY_MSG_AUDIO_CHUNK: {
        if (n < PXBY_AUDIO_CHUNK_FIXED || !dev->audio_format) return 0;
        uint32_t offset = rd32(p), bytes = (uint32_t)n - PXBY_AUDIO_CHUNK_FIXED;
        uint32_t count = dev->audio_format == PXBY_AUDIO_U4 ? 2 * bytes : bytes, skip = 0;
        /* offsets wrap at 2^32 and are compared by their signed distance (docs/protocol.md) */
        int64_t ahead = offset_diff(offset, dev->audio_next);
        const uint8_t *s = p + PXBY_AUDIO_CHUNK_FIXED;
        if (count == 0) { /* the end mark (sent reliably): what never came before it is a gap */
            if (ahead > 0) {
                dev->counters[PXBY_C_GAPS] += (uint32_t)ahead;
                dev->audio_next = offset;
            }
            if (m->flags & PXBY_F_END) dev->ended = 1;
            return 1;
        }
        if (ahead + (int64_t)count <= 0) { dev->counters[PXBY_C_DUP_FRAMES]++; return 1; }
        if (ahead < 0) { skip = (uint32_t)-ahead; ahead = 0; }
        if (dev->fill + (count - skip) > PXBY_DEV_AUDIO_BUFFER) { dev->counters[PXBY_C_AUDIO_OVERFLOW]++; return 1; }
        if (ahead > 0) dev->counters[PXBY_C_GAPS] += (uint32_t)ahead;
        mark_offset(dev, offset + skip, count - skip);
        for (uint32_t i = skip; i < count; i++) {
            uint8_t v = dev->audio_format == PXBY_AUDIO_U4 ? (uint8_t)((i & 1) ? s[i / 2] & 0x0F : s[i / 2] >> 4) : s[i];
            dev->ring[(dev->head + dev->fill) % PXBY_DEV_AUDIO_BUFFER] = v;
            dev->fill++;
        }
        dev->audio_next = offset + count;
        if (m->flags & PXBY_F_END) dev->ended = 1;
        return 1;
    }
    default:
        return 0;
    }
}

static void deliver(pxby_device *dev, const pxby_msg *m) {
    dev->expected++;
    /* a malformed payload that passed its CRC is a host bug: skip it and say so, rather than
       stall the sequence forever */
    if (!apply(dev, m)) {
        dev->counters[PXBY_C_BAD_PAYLOAD]++;
        send_nak(dev, PXBY_NAK_BAD_PAYLOAD);
    }
}

static int seq_before(uint16_t a, uint16_t b) {
    uint16_t d = (uint16_t)(b - a);
    return d > 0 && d < 0x8000;
}

static void on_message(pxby_device *dev, const pxby_msg *m) {
    if (m->len > PXBY_DEV_MAX_PAYLOAD) { dev->counters[PXBY_C_BAD_PAYLOAD]++; send_nak(dev, PXBY_NAK_BAD_PAYLOAD); return; }
    if (m->type == PXBY_MSG_HELLO) { on_hello(dev, m); return; }
    switch (m->type) { /* device-to-host messages echoed back: ignore */
    case PXBY_MSG_HELLO_ACK: case PXBY_MSG_PONG: case PXBY_MSG_ACK: case PXBY_MSG_NAK: case PXBY_MSG_STATUS:
    case PXBY_MSG_LOG:
        return;
    default: break;
    }
    if (m->version != PXBY_PROTOCOL_VERSION || !dev->has_session || m->ack != dev->session) {
        send_nak(dev, PXBY_NAK_NO_SESSION);
        return;
    }
    if (m->type == PXBY_MSG_PING) {
        if (m->len < PXBY_PING_FIXED) { send_nak(dev, PXBY_NAK_BAD_PAYLOAD); return; }
        send(dev, PXBY_MSG_PONG, m->payload, PXBY_PING_FIXED);
        send_status(dev);
        send_ack(dev);
        return;
    }
    if (!(m->flags & PXBY_F_RELIABLE)) {
        if (m->type == PXBY_MSG_AUDIO_CHUNK) {
            if (apply(dev, m)) send_ack(dev);
            else { dev->counters[PXBY_C_BAD_PAYLOAD]++; send_nak(dev, PXBY_NAK_BAD_PAYLOAD); }
        } else {
            dev->counters[PXBY_C_BAD_PAYLOAD]++;
            send_nak(dev, PXBY_NAK_UNKNOWN_TYPE);
        }
        return;
    }
    if (m->seq == dev->expected) {
        deliver(dev, m);
        /* frames that came early, held in the window, follow in order */
        for (;;) {
            pxby_held *h = &dev->held[dev->expected % PXBY_DEV_RX_WINDOW];
            if (!h->used || h->seq != dev->expected) break;
            pxby_msg held = {PXBY_PROTOCOL_VERSION, h->type, h->flags, h->channel, h->seq, m->ack, h->payload, h->len};
            h->used = 0;
            dev->held_count--;
            deliver(dev, &held);
        }
        send_ack(dev);
    } else if (seq_before(m->seq, dev->expected)) {
        dev->counters[PXBY_C_DUP_FRAMES]++;
        send_ack(dev);
    } else {
        uint16_t ahead = (uint16_t)(m->seq - dev->expected);
        dev->counters[PXBY_C_OUT_OF_ORDER]++;
        if (ahead < PXBY_DEV_RX_WINDOW) { /* keep it: the host resends only the hole */
            pxby_held *h = &dev->held[m->seq % PXBY_DEV_RX_WINDOW];
            if (h->used) dev->counters[PXBY_C_DUP_FRAMES]++;
            else dev->held_count++;
            h->used = 1;
            h->type = m->type;
            h->flags = m->flags;
            h->channel = m->channel;
            h->seq = m->seq;
            h->len = m->len; /* <= PXBY_DEV_MAX_PAYLOAD: checked on entry */
            memcpy(h->payload, m->payload, m->len);
        }
        /* every early frame is answered with the hole and the SACK bitmap (and tick() repeats it
           while the hole stays open) */
        dev->nak_at = dev->hw.millis ? dev->hw.millis(dev->hw.ctx) : 0;
        send_nak(dev, PXBY_NAK_OUT_OF_ORDER);
    }
}

void pxby_device_feed(pxby_device *dev, const uint8_t *data, size_t len) {
    pxby_msg m;
    for (size_t i = 0; i < len; i++) {
        int r = pxby_decoder_byte(&dev->dec, data[i], &m);
        if (r == PXBY_FRAME) {
            dev->counters[PXBY_C_FRAMES_OK]++;
            on_message(dev, &m);
        } else if (r == PXBY_BAD_CRC) {
            dev->counters[PXBY_C_CRC_ERRORS]++;
        } else if (r < 0) {
            dev->counters[PXBY_C_FRAMES_BAD]++;
        }
    }
    pxby_device_tick(dev);
}

void pxby_device_tick(pxby_device *dev) {
    uint32_t now = dev->hw.millis ? dev->hw.millis(dev->hw.ctx) : 0;
    if (dev->held_count && dev->has_session && now - dev->nak_at >= PXBY_NAK_REPEAT_MS) {
        /* the NAK or the resent frame was lost, and with its window full the host sends
           nothing new that would make us say it again */
        dev->nak_at = now;
        send_nak(dev, PXBY_NAK_OUT_OF_ORDER);
    }
    if (!dev->audio_format) return;
    if (!dev->playing) {
        if (dev->fill && (dev->fill >= (dev->prebuffer ? dev->prebuffer : 1) || dev->ended)) {
            dev->playing = 1;
            dev->last_ms = now;
            dev->due_milli = 0;
        }
        return;
    }
    /* samples due = elapsed ms * rate / 1000, remainder carried so no sample drifts */
    dev->due_milli += (now - dev->last_ms) * dev->audio_rate;
    dev->last_ms = now;
    uint32_t want = dev->due_milli / 1000;
    dev->due_milli %= 1000;
    while (want && dev->fill) {
        uint32_t run = PXBY_DEV_AUDIO_BUFFER - dev->head; /* contiguous part of the ring */
        uint32_t take = want < dev->fill ? want : dev->fill;
        if (take > run) take = run;
        if (dev->mark_count) { /* stop at the next jump of the offsets, and take it when there */
            uint32_t before = dev->marks[dev->mark_head].at - (dev->ring_in - dev->fill);
            if (before == 0) {
                dev->play_offset = dev->marks[dev->mark_head].offset;
                dev->mark_head = (uint8_t)((dev->mark_head + 1) % PXBY_AUDIO_MARKS);
                dev->mark_count--;
                if (dev->mark_count) before = dev->marks[dev->mark_head].at - (dev->ring_in - dev->fill);
            }
            if (dev->mark_count && take > before) take = before;
        }
        if (dev->hw.audio_play) dev->hw.audio_play(dev->hw.ctx, dev->play_offset, dev->ring + dev->head, take);
        dev->head = (dev->head + take) % PXBY_DEV_AUDIO_BUFFER;
        dev->fill -= take;
        dev->play_offset += take;
        dev->counters[PXBY_C_SAMPLES_PLAYED] += take;
        dev->played_since_ack += take;
        want -= take;
    }
    if (want) {
        if (!dev->ended) dev->counters[PXBY_C_UNDERRUNS]++;
        dev->playing = 0;
    }
    if (dev->has_session && dev->played_since_ack >= PXBY_DEV_AUDIO_BUFFER / 4) send_ack(dev);
}
