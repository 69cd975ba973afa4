/*
 * core/login_delay.h - slowing down password guessing: failed logins are
 * counted per client address and per user name, and each failure is
 * answered only after a delay that doubles with the recent failures of
 * either (LOGIN_DELAY_FIRST_MS, ..., capped at LOGIN_DELAY_MAX_MS). A
 * success clears the pair; counts fade after LOGIN_DELAY_FORGET_S without
 * failures. Any protocol's listener uses it (IMAP now, SMTP AUTH and
 * ManageSieve later).
 *
 * A fixed table (LOGIN_DELAY_SLOTS entries, the oldest reused): memory is
 * bounded whatever an attacker sends. Any thread; one short mutex.
 */
#ifndef TOASTER_CORE_LOGIN_DELAY_H
#define TOASTER_CORE_LOGIN_DELAY_H

#include <stdint.h>

#define LOGIN_DELAY_FIRST_MS 500u
#define LOGIN_DELAY_MAX_MS 15000u
#define LOGIN_DELAY_FORGET_S 900u
#define LOGIN_DELAY_SLOTS 4096u

/* Record a failure of user from address; returns how long to wait before
 * answering it (ms). now_s: a monotonic clock in seconds. */
uint32_t login_delay_failed(const char *address, const char *user, uint64_t now_s);

/* A successful login: forget the failures of this user and address. */
void login_delay_succeeded(const char *address, const char *user);

#endif
