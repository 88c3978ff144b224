/* Decodes the shared test vectors and prints what it got, for tests/test_bridge_c.py to compare.
 *
 *   ./build/vector_check < vectors/frames.txt
 *
 * Input lines: "vector NAME", "stream HEX" (bytes fed to one decoder), "expect ..." (ignored here),
 * "end". Output: "vector NAME", then one line per decoded item ("msg type=.. flags=.. channel=..
 * seq=.. ack=.. version=.. payload=HEX" or "bad REASON"), then "end". */
#include <stdio.h>
#include <string.h>

#include "pxby_core.h"

static pxby_decoder dec; /* static: 2 KB of buffers stay off the stack */
static char line[1 << 20];

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(void) {
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strncmp(line, "vector ", 7)) {
            pxby_decoder_init(&dec, PXBY_MAX_ENCODED, PXBY_PROTOCOL_MIN, PXBY_PROTOCOL_MAX);
            printf("%s\n", line);
        } else if (!strcmp(line, "end")) {
            printf("end\n");
        } else if (!strncmp(line, "stream ", 7)) {
            for (const char *p = line + 7; p[0] && p[1]; p += 2) {
                int hi = hexval(p[0]), lo = hexval(p[1]);
                if (hi < 0 || lo < 0) { fprintf(stderr, "bad hex\n"); return 2; }
                pxby_msg m;
                int r = pxby_decoder_byte(&dec, (uint8_t)(hi << 4 | lo), &m);
                if (r == PXBY_FRAME) {
                    printf("msg type=%u flags=%u channel=%u seq=%u ack=%u version=%u payload=", m.type, m.flags,
                           m.channel, m.seq, m.ack, m.version);
                    for (unsigned i = 0; i < m.len; i++) printf("%02x", m.payload[i]);
                    printf("\n");
                } else if (r < 0) {
                    printf("bad %s\n", pxby_result_name(r));
                }
            }
        }
    }
    return 0;
}
