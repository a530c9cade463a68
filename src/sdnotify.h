/*
 * sdnotify.h -- the systemd service notification protocol (sd_notify(3)),
 * without libsystemd: one datagram to the AF_UNIX socket named by
 * $NOTIFY_SOCKET ("/path" or "@abstract").
 *
 * hotdeskd runs as Type=notify: READY=1 once it listens (and after a
 * reload), RELOADING=1 when a SIGHUP starts, STOPPING=1 on SIGTERM, and
 * WATCHDOG=1 pings while its main loop and resync thread run, when the
 * unit sets WatchdogSec=.  Without $NOTIFY_SOCKET every call does nothing.
 */
#ifndef HD_SDNOTIFY_H
#define HD_SDNOTIFY_H

#include <stdbool.h>

/* Sends state ("READY=1", ...) if $NOTIFY_SOCKET is set.  0 sent or not
 * asked for, -1 when the socket cannot be reached (errno set). */
int sdnotify_send(const char *state);

/* The watchdog interval systemd asks for, in microseconds ($WATCHDOG_USEC,
 * when $WATCHDOG_PID is unset or this process), 0 when none. */
unsigned long long sdnotify_watchdog_usec(void);

#endif
