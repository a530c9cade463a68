/*
 * fuzz_path.c -- libFuzzer entry for the HTTP path check of phone
 * downloads: the request path split into segments (http_path_segment) and
 * the file name mapped to a vendor's file (vendor_match_file).
 *
 * Invariants: a segment that decodes is NUL-terminated, of the length
 * returned, and never contains '/', '\\', NUL or a control character, nor
 * is "." or ".."; a name vendor_match_file accepts passes
 * vendor_file_name_ok, and a per-device match carries 12 hex digits.
 */
#include "fuzz.h"

#include <ctype.h>

#include "http.h"
#include "vendor.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = fuzz_cstr(data, size), seg[256];
	int n, len;

	if (path == NULL)
		return 0;
	n = http_path_nsegments(path, "/provision/");
	for (int i = 0; i < n && i < 8; i++) {
		struct vendor_file_match m;

		len = http_path_segment(path, "/provision/", i, seg, sizeof(seg));
		if (len < 0)
			continue;
		FUZZ_CHECK((size_t)len == strlen(seg) && len > 0);
		FUZZ_CHECK(strcmp(seg, ".") != 0 && strcmp(seg, "..") != 0);
		for (int k = 0; k < len; k++)
			FUZZ_CHECK(seg[k] != '/' && seg[k] != '\\' && !iscntrl((unsigned char)seg[k]));
		if (vendor_match_file(seg, &m) == 1) {
			FUZZ_CHECK(vendor_file_name_ok(seg));
			if (m.kind == VENDOR_DEVICE)
				FUZZ_CHECK(strlen(m.mac) == 12 && strspn(m.mac, "0123456789abcdef") == 12);
		}
	}
	free(path);
	return 0;
}
