/* Replays a recorded host byte stream into the device core and prints everything it did, so that
 * tests/test_bridge_c.py can compare it with the Python DeviceCore line by line.
 *
 *   ./build/device_check < trace.txt
 *
 * Input: one "at MS HEX" line per event (bytes arriving at MS; no HEX means only time passed).
 * Output: "out HEX" per input line (what the device wrote back), then "screen CRC", "played N CRC",
 * "counters ..." at the end. */
#include <stdio.h>
#include <string.h>

#include "hw_host.h"

static pxby_host host;
static pxby_device dev;
static char line[1 << 20];
static uint8_t data[1 << 19];
static uint32_t played_crc = 0, played_n = 0;

static void on_play(void *ctx, uint32_t offset, const uint8_t *samples, size_t n) {
    (void)ctx;
    (void)offset;
    played_crc = pxby_crc32c(samples, n, played_crc);
    played_n += (uint32_t)n;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int main(void) {
    pxby_hw hw = pxby_host_hw(&host);
    hw.audio_play = on_play;
    pxby_device_init(&dev, &hw, 1);
    while (fgets(line, sizeof line, stdin)) {
        unsigned long ms;
        int used = 0;
        if (sscanf(line, "at %lu %n", &ms, &used) < 1) continue;
        size_t n = 0;
        for (const char *p = line + used; hexval(p[0]) >= 0 && hexval(p[1]) >= 0 && n < sizeof data; p += 2)
            data[n++] = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
        host.now_ms = (uint32_t)ms;
        host.out_len = 0;
        if (n) pxby_device_feed(&dev, data, n);
        else pxby_device_tick(&dev);
        printf("out ");
        for (size_t i = 0; i < host.out_len; i++) printf("%02x", host.out[i]);
        printf("\n");
    }
    printf("screen %08x\n", (unsigned)pxby_crc32c(dev.screen, sizeof dev.screen, 0));
    printf("played %u %08x\n", (unsigned)played_n, (unsigned)played_crc);
    printf("counters");
    for (int i = 0; i < PXBY_C_COUNT; i++) printf(" %u", (unsigned)dev.counters[i]);
    printf("\n");
    return 0;
}
