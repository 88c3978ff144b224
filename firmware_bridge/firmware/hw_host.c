/* See hw_host.h. On a board these four callbacks become the UART TX, the LCD driver, the PWM or
 * DAC feeding the speaker, and the millisecond timer. */
#include "hw_host.h"

#include <string.h>

static void uart_write(void *ctx, const uint8_t *data, size_t len) {
    pxby_host *h = ctx;
    size_t room = sizeof h->out - h->out_len;
    if (len > room) len = room; /* a host test reads often; dropping mirrors a full UART FIFO */
    memcpy(h->out + h->out_len, data, len);
    h->out_len += len;
}

static void lcd_blit(void *ctx, const uint8_t *shades, uint16_t w, uint16_t hgt, const uint8_t palette[12]) {
    pxby_host *h = ctx;
    (void)palette;
    if ((size_t)w * hgt == sizeof h->screen) memcpy(h->screen, shades, sizeof h->screen);
    h->blits++;
}

static void audio_play(void *ctx, uint32_t offset, const uint8_t *samples, size_t n) {
    pxby_host *h = ctx;
    (void)offset;
    for (size_t i = 0; i < n && h->audio_len < sizeof h->audio; i++) h->audio[h->audio_len++] = samples[i];
}

static uint32_t millis(void *ctx) { return ((pxby_host *)ctx)->now_ms; }

pxby_hw pxby_host_hw(pxby_host *h) {
    pxby_hw hw = {h, uart_write, lcd_blit, audio_play, millis};
    return hw;
}
