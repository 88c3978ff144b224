/* Replays recorded host byte streams into the device core and prints everything it did, so that
 * the Python DeviceCore can be compared with it byte for byte (tests/test_bridge_c.py,
 * tests/test_device_diff.py, `make fuzz-device`).
 *
 *   ./build/device_check < trace.txt
 *
 * Input: one "at MS HEX" line per event (bytes arriving at MS; no HEX means only time passed);
 * "end" closes a sequence: the device's state is printed and a fresh device boots for the next.
 * Output: "out HEX" per event (what the device wrote back); per sequence "screen CRC" (CRC-32),
 * "played N CRC", "counters ..." and "state ..." (session, sequence, audio, text, palette, tiles,
 * map). Many sequences per process keep a differential run of 100,000 sequences fast. */
#include <stdio.h>
#include <string.h>

#include "hw_host.h"

static pxby_host host;
static pxby_device dev;
static char line[1 << 20];
static uint8_t data[1 << 19];
static uint32_t played_crc, played_n, played_next;
static int played_any;

/* CRC-32 (IEEE, zlib's): the state checksums. Not the wire's CRC-32C, so that the Python side
   can use zlib.crc32 and check 100,000 final states without a pure-Python CRC over 30 KB each */
static uint32_t crc32_ieee(const uint8_t *p, size_t n, uint32_t crc) {
    uint32_t c = crc ^ 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void on_play(void *ctx, uint32_t offset, const uint8_t *samples, size_t n) {
    uint8_t at[4] = {(uint8_t)offset, (uint8_t)(offset >> 8), (uint8_t)(offset >> 16), (uint8_t)(offset >> 24)};
    (void)ctx;
    /* the samples, and each offset that does not follow on from the last call's end: how the two
       devices split their calls (ring wrap, chunk ends) does not count, the offsets do */
    if (!played_any || offset != played_next) played_crc = crc32_ieee(at, 4, played_crc);
    played_crc = crc32_ieee(samples, n, played_crc);
    played_next = offset + (uint32_t)n;
    played_any = 1;
    played_n += (uint32_t)n;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static void boot(void) {
    pxby_hw hw = pxby_host_hw(&host);
    hw.audio_play = on_play;
    played_crc = played_n = played_next = 0;
    played_any = 0;
    pxby_device_init(&dev, &hw, 1);
}

static void print_hex(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

static void print_state(void) {
    uint8_t map[sizeof dev.map];
    for (size_t i = 0; i < PXBY_MAP_W * PXBY_MAP_H; i++) { /* little-endian, whatever this host is */
        uint16_t v = dev.map[i / PXBY_MAP_W][i % PXBY_MAP_W];
        map[2 * i] = (uint8_t)v;
        map[2 * i + 1] = (uint8_t)(v >> 8);
    }
    printf("screen %08x\n", (unsigned)crc32_ieee(dev.screen, sizeof dev.screen, 0));
    printf("played %u %08x\n", (unsigned)played_n, (unsigned)played_crc);
    printf("counters");
    for (int i = 0; i < PXBY_C_COUNT; i++) printf(" %u", (unsigned)dev.counters[i]);
    printf("\nstate session=%u expected=%u held=%u audio_next=%u fill=%u playing=%u ended=%u format=%u frame=%u",
           dev.has_session ? (unsigned)dev.session : 0u, (unsigned)dev.expected, (unsigned)dev.held_count,
           (unsigned)dev.audio_next, (unsigned)dev.fill, (unsigned)dev.playing, (unsigned)dev.ended,
           (unsigned)dev.audio_format, (unsigned)dev.frame_no);
    printf(" tiles=%08x map=%08x palette=", (unsigned)crc32_ieee(&dev.tiles[0][0], sizeof dev.tiles, 0),
           (unsigned)crc32_ieee(map, sizeof map, 0));
    print_hex(dev.palette, sizeof dev.palette);
    printf(" text=");
    print_hex(dev.text, dev.text_len);
    printf("\n");
}

int main(void) {
    int events = 0;
    boot();
    while (fgets(line, sizeof line, stdin)) {
        unsigned long ms;
        int used = 0;
        if (strncmp(line, "end", 3) == 0) {
            print_state();
            boot();
            events = 0;
            continue;
        }
        if (sscanf(line, "at %lu %n", &ms, &used) < 1) continue;
        size_t n = 0;
        for (const char *p = line + used; hexval(p[0]) >= 0 && hexval(p[1]) >= 0 && n < sizeof data; p += 2)
            data[n++] = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
        host.now_ms = (uint32_t)ms;
        host.out_len = 0;
        if (n) pxby_device_feed(&dev, data, n);
        else pxby_device_tick(&dev);
        printf("out ");
        print_hex(host.out, host.out_len);
        printf("\n");
        events++;
    }
    if (events) print_state();
    return 0;
}
