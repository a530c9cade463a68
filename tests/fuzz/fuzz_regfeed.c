/*
 * fuzz_regfeed.c -- libFuzzer entry for the registration feed as far as
 * it becomes a NOTIFY target: the form body, the contact URI split by
 * resync_parse_uri, and the target rules (resync_target_refused).
 *
 * Invariants: a contact that parses gives a NUL-terminated user and host
 * and a port in 0..65535; a target that is allowed is a numeric unicast
 * address on a port >= 1024.
 */
#include "fuzz.h"

#include <arpa/inet.h>

#include "form.h"
#include "resync.h"

static void
check_contact(const char *contact)
{
	char user[128], host[256];
	int port = -1;
	unsigned char a[16];

	if (resync_parse_uri(contact, user, sizeof(user), host, sizeof(host), &port) != 0)
		return;
	FUZZ_CHECK(strlen(user) < sizeof(user) && strlen(host) < sizeof(host));
	FUZZ_CHECK(port >= 0 && port <= 65535);
	if (resync_target_refused(host, port ? port : 5060, NULL) == NULL)
		FUZZ_CHECK((port == 0 || port >= 1024) &&
		           (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128];
	struct form *f = form_parse((const char *)data, size, err, sizeof(err));
	const char *c;

	if (f == NULL) {
		char *s = fuzz_cstr(data, size);

		if (s != NULL)
			check_contact(s); /* the URI alone, as the JSON form gives it */
		free(s);
		return 0;
	}
	if ((c = form_get(f, "contact")) != NULL)
		check_contact(c);
	form_free(f);
	return 0;
}
