/* Host (PC) implementation of pxby_hw: UART output into a buffer, a settable clock, captured screen
 * and audio. Used by the unit tests, the vector checker and the fuzzer. */
#ifndef PXBY_HW_HOST_H
#define PXBY_HW_HOST_H

#include "pxby_core.h"

typedef struct {
    uint8_t out[1 << 16];
    size_t out_len;
    uint32_t now_ms;
    uint32_t blits;
    uint8_t screen[PXBY_SCREEN_H * PXBY_SCREEN_W];
    uint8_t audio[1 << 16];
    size_t audio_len;
} pxby_host;

pxby_hw pxby_host_hw(pxby_host *h);

#endif
