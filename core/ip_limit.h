/*
 * core/ip_limit.h - connections per client IP, counted across all reactors.
 *
 * The kernel spreads one client's connections over every reactor, so the
 * count is shared: a fixed-size open-addressing table under a spinlock,
 * touched once at accept and once at close.
 */
#ifndef TOASTER_CORE_IP_LIMIT_H
#define TOASTER_CORE_IP_LIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Size the table for at most max_tracked distinct addresses at once (every
 * connection the daemon may hold). Returns 0 or -ENOMEM. */
int ip_limit_init(uint32_t max_tracked, uint32_t per_ip_max);
void ip_limit_destroy(void);

/* Count one more connection from addr. Returns false (nothing counted) when
 * that address already has per_ip_max connections. */
bool ip_limit_acquire(const struct sockaddr_storage *addr);

/* Forget one connection from addr; must pair with a successful acquire. */
void ip_limit_release(const struct sockaddr_storage *addr);

#endif
