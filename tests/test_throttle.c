/*
 * test_throttle.c -- the miss throttle of configuration downloads: a
 * source is blocked at the threshold within a window, for the block time;
 * a window that expired starts over; blocked sources survive a full table;
 * IPv6 sources count per /64.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "testutil.h"
#include "throttle.h"

static struct sockaddr_in
v4(const char *ip)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6
v6(const char *ip)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

	cr_assert_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
	return a;
}

#define SA(x) ((const struct sockaddr *)&(x))

static const struct throttle_policy pol = { 3, 60, 300 };

Test(throttle, blocks_at_the_threshold_for_the_block_time)
{
	struct throttle *t = throttle_new(16);
	struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");

	throttle_set_policy(t, &pol);
	cr_assert(!throttle_miss(t, SA(a), 1000));
	cr_assert(!throttle_miss(t, SA(a), 1001));
	cr_assert(!throttle_blocked(t, SA(a), 1001));
	cr_assert(throttle_miss(t, SA(a), 1002), "the third miss starts a block");
	cr_assert(throttle_blocked(t, SA(a), 1002));
	cr_assert(throttle_blocked(t, SA(a), 1301));
	cr_assert(!throttle_blocked(t, SA(a), 1302), "the block ends");
	cr_assert(!throttle_blocked(t, SA(b), 1002), "other sources are not affected");
	throttle_free(t);
}

Test(throttle, an_expired_window_starts_over)
{
	struct throttle *t = throttle_new(16);
	struct sockaddr_in a = v4("192.0.2.1");

	throttle_set_policy(t, &pol);
	cr_assert(!throttle_miss(t, SA(a), 1000));
	cr_assert(!throttle_miss(t, SA(a), 1001));
	cr_assert(!throttle_miss(t, SA(a), 1061), "a new window: count 1");
	cr_assert(!throttle_miss(t, SA(a), 1062));
	cr_assert(!throttle_blocked(t, SA(a), 1062));
	throttle_free(t);
}

Test(throttle, blocked_sources_survive_a_full_table)
{
	struct throttle *t = throttle_new(4);
	struct sockaddr_in bad = v4("198.51.100.7");
	char ip[32];

	throttle_set_policy(t, &pol);
	for (int i = 0; i < 3; i++)
		throttle_miss(t, SA(bad), 1000);
	cr_assert(throttle_blocked(t, SA(bad), 1000));
	/* the scanner rotates through many more addresses than the table holds */
	for (int i = 0; i < 50; i++) {
		struct sockaddr_in x;

		snprintf(ip, sizeof(ip), "203.0.113.%d", i + 1);
		x = v4(ip);
		throttle_miss(t, SA(x), 1001 + i);
	}
	cr_assert(throttle_blocked(t, SA(bad), 1100), "the block was not evicted");
	throttle_free(t);
}

Test(throttle, ipv6_counts_per_64)
{
	struct throttle *t = throttle_new(16);
	struct sockaddr_in6 a = v6("2001:db8:1:2::1"), b = v6("2001:db8:1:2::ffff"),
	                    c = v6("2001:db8:1:3::1");

	throttle_set_policy(t, &pol);
	throttle_miss(t, SA(a), 1000);
	throttle_miss(t, SA(b), 1000);
	cr_assert(throttle_miss(t, SA(a), 1000), "three misses from one /64");
	cr_assert(throttle_blocked(t, SA(b), 1000));
	cr_assert(!throttle_blocked(t, SA(c), 1000), "another /64 is another source");
	throttle_free(t);
}
