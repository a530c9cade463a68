/*
 * fuzz_csv.c -- libFuzzer entry for the CSV import: the RFC 4180 reader
 * (csv_parse), its writer (csv_put, csv_endl) and the mapping of records
 * to the import's typed rows (import_rows_from_csv).
 *
 * Invariants: a refused document names a line; an accepted one has records
 * of 1..CSV_MAX_FIELDS fields, each at most CSV_MAX_FIELD bytes without a
 * NUL, on ascending lines; writing its records and reading them back gives
 * the same fields; every row the import maps has a normalised MAC (empty or
 * 12 lowercase hex digits), allow_virtualization -1, 0 or 1, and a line of
 * the document.
 */
#include "fuzz.h"

#include <stdio.h>

#include "csv.h"
#include "import.h"

/* A record written as one empty field is an empty line, which the reader
 * skips: it cannot come back. */
static int
comes_back(const struct csv_record *r)
{
	return !(r->n == 1 && r->fields[0][0] == '\0');
}

static void
check_round_trip(const struct csv *c)
{
	struct csv_out o = { 0 };
	struct csv again;
	char err[160];
	size_t j = 0;

	for (size_t i = 0; i < c->n; i++) {
		if (!comes_back(&c->rec[i]))
			continue;
		for (int f = 0; f < c->rec[i].n; f++)
			csv_put(&o, c->rec[i].fields[f]);
		csv_endl(&o);
	}
	if (o.failed) {
		csv_out_free(&o);
		return;
	}
	FUZZ_CHECK(csv_parse(o.buf ? o.buf : "", o.len, &again, err, sizeof(err)) == 0);
	for (size_t i = 0; i < c->n; i++) {
		if (!comes_back(&c->rec[i]))
			continue;
		FUZZ_CHECK(j < again.n && again.rec[j].n == c->rec[i].n);
		for (int f = 0; f < c->rec[i].n; f++)
			FUZZ_CHECK(strcmp(again.rec[j].fields[f], c->rec[i].fields[f]) == 0);
		j++;
	}
	FUZZ_CHECK(j == again.n);
	csv_free(&again);
	csv_out_free(&o);
}

static void
check_rows(const struct csv *c)
{
	struct import_rows rows = { 0 };
	char err[200];
	int last = c->n ? c->rec[c->n - 1].line : 0;

	if (import_rows_from_csv(c, 1000, &rows, err, sizeof(err)) != 0) {
		FUZZ_CHECK(strncmp(err, "line ", 5) == 0 || c->n == 0);
		import_rows_free(&rows);
		return;
	}
	for (size_t i = 0; i < rows.n; i++) {
		const struct import_row *r = &rows.v[i];
		size_t m = strlen(r->mac);

		FUZZ_CHECK(r->line >= 1 && r->line <= last);
		FUZZ_CHECK(r->allow_virt >= -1 && r->allow_virt <= 1);
		FUZZ_CHECK(m == 0 || m == 12);
		for (size_t k = 0; k < m; k++)
			FUZZ_CHECK((r->mac[k] >= '0' && r->mac[k] <= '9') ||
			           (r->mac[k] >= 'a' && r->mac[k] <= 'f'));
	}
	import_rows_free(&rows);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csv c;
	char err[160];
	int line = 0;

	if (csv_parse((const char *)data, size, &c, err, sizeof(err)) != 0) {
		FUZZ_CHECK(strncmp(err, "line ", 5) == 0);
		csv_free(&c);
		return 0;
	}
	for (size_t i = 0; i < c.n; i++) {
		const struct csv_record *r = &c.rec[i];

		FUZZ_CHECK(r->n >= 1 && r->n <= CSV_MAX_FIELDS && r->line > line);
		line = r->line;
		for (int f = 0; f < r->n; f++)
			FUZZ_CHECK(strlen(r->fields[f]) <= CSV_MAX_FIELD);
	}
	check_round_trip(&c);
	check_rows(&c);
	csv_free(&c);
	return 0;
}
