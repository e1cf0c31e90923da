/*
 * Fuzz target: a chain of DER certificates from the network is untrusted
 * input to the validation engine. The input is split into 1-4
 * "certificates", each a 2-byte big-endian length then that many bytes
 * (a length past the end takes the rest); what is left after the fourth is
 * a host name. Each input runs val_check against a small fixed store (the
 * unit tests' EC and RSA roots, a 4-entry cache) at a fixed instant,
 * val_check_hostname on the first certificate, and the PEM splitter and the
 * caIssuers response decoder over the whole input. Never crash, never leak.
 */
#include "core/aia.h"
#include "core/val_int.h"
#include "core/validate.h"
#include "test/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* test/unit/data/validate/root.pem and rsaroot.pem */
static const char fuzz_roots[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlzCCAT6gAwIBAgICEAAwCgYIKoZIzj0EAwIwMjEZMBcGA1UEAwwQQ2F0ZW5h\n"
    "IFRlc3QgUm9vdDEVMBMGA1UECgwMQ2F0ZW5hIFRlc3RzMCAXDTIwMDEwMTAwMDAw\n"
    "MFoYDzIxMjAwMTAxMDAwMDAwWjAyMRkwFwYDVQQDDBBDYXRlbmEgVGVzdCBSb290\n"
    "MRUwEwYDVQQKDAxDYXRlbmEgVGVzdHMwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
    "AAQo5mbwsVNNOpWG1QhxlXqbdFg6IDEkf8fO3afUxRCebN9YdiO6sR+xerZaw4/1\n"
    "rLWWvB4loT2nE7R9rjwG8BIqo0IwQDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB\n"
    "/wQEAwIBBjAdBgNVHQ4EFgQUO7b+a5NIMEQ+WRFBLEl6nmzbFu4wCgYIKoZIzj0E\n"
    "AwIDRwAwRAIgF5hp5ZSW3RTB5CUFCIHjYPssdIZxIbAEPOtjsjG33MgCIBSECylN\n"
    "aHKgshJwbsktxmdb21mZfgetL1xiY2HjwGFz\n"
    "-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDIjCCAgqgAwIBAgICEAMwDQYJKoZIhvcNAQELBQAwMTEYMBYGA1UEAwwPQ2F0\n"
    "ZW5hIFJTQSBSb290MRUwEwYDVQQKDAxDYXRlbmEgVGVzdHMwIBcNMjAwMTAxMDAw\n"
    "MDAwWhgPMjEyMDAxMDEwMDAwMDBaMDExGDAWBgNVBAMMD0NhdGVuYSBSU0EgUm9v\n"
    "dDEVMBMGA1UECgwMQ2F0ZW5hIFRlc3RzMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n"
    "MIIBCgKCAQEAgMs8FNZvHswOj5xYbnkxZPeLplMNYz6CgydtuWYzt2uCDBiIZyfV\n"
    "Y9Fz0LLB6CXtqpHcnRkYYo89uOazUaxfAr+h3jRLjkFMbo/ClzypBzuh3OV+oJw1\n"
    "EiSq2a2Xm/8Jmv/3brNJXgfxAm87/CaxromFx3RgllXBhoEbDMGCxK95aYDlNtii\n"
    "HLx9WqraE9MA/I2XDdFoaLkfuMoZbvB1IGQh7iOjaJorHGlFFtne9FYRipsUtfTf\n"
    "kPrg4FQNzCc8A9eoPdnV6F2ft2UQF+2ZacQuuC3zJXcqJaDG1I62Ju3O6BxZAJcR\n"
    "R3iYo4vQa5qmpAY4tYvR/GHXVKyDwvatLQIDAQABo0IwQDAPBgNVHRMBAf8EBTAD\n"
    "AQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQU1jfRFhNOOKpDJxdyG7Mr1p2E\n"
    "CGowDQYJKoZIhvcNAQELBQADggEBAHetfrnlOzCH710D3PVUwlXA8enShmhzHMiN\n"
    "7q44lcMkgI4JfL8g/QIunnYzVF0leJzDPLyRjCBdnMtfReqP5bPcx7axcM+Z+dLg\n"
    "PHS6xg+G3T7G/RS+1RPCJXqY84hbPfEwPiw9w9n9SUviqlVSqRBsQCUl0j6BnE5N\n"
    "My+flye30t/wN8TgShnxtO1RWjUxnJ1AtdSOzKEUQR0vcz//Bctd6i2hCOfhXpIn\n"
    "clGXxGRci2VWLInDk0mJfSnl5WJMq4kAi7PmQMHdHaMvZdqDLu8lGKJnxqQsgXzm\n"
    "IR+RpZ61GLrC5i3TGkpL7+rHNEvEQvYl9MVb1n7ZPf48lPnFsUQ=\n"
    "-----END CERTIFICATE-----\n";

static struct val_store *fuzz_store;

static void
fuzz_cleanup(void)
{
    val_store_free(fuzz_store);
}

static void
fuzz_setup(void)
{
    const char *pems[] = {fuzz_roots};
    size_t lens[] = {sizeof(fuzz_roots) - 1};
    struct val_store_opts o = {.pems = pems, .pem_lens = lens, .n_pems = 1, .cache_entries = 4};
    char err[256];
    fuzz_store = val_store_new(&o, err, sizeof(err));
    if (fuzz_store == NULL) {
        fprintf(stderr, "fuzz_chain: %s\n", err);
        abort();
    }
    atexit(fuzz_cleanup);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_store == NULL)
        fuzz_setup();
    if (size > 65536)
        return 0;
    const uint8_t *ders[4];
    size_t lens[4], n = 0, pos = 0;
    while (n < 4 && size - pos >= 2) {
        size_t l = (size_t)data[pos] << 8 | data[pos + 1];
        pos += 2;
        if (l > size - pos)
            l = size - pos;
        ders[n] = data + pos;
        lens[n] = l;
        n++;
        pos += l;
    }
    char host[300];
    size_t hl = CAT_MIN(size - pos, sizeof(host) - 1);
    memcpy(host, data + pos, hl);
    host[hl] = '\0';

    if (n > 0 && lens[0] > 0) {
        struct val_result r;
        /* 2030-01-01, as in the unit tests. */
        if (val_check(fuzz_store, ders, lens, n, 1893456000, &r) != CAT_OK)
            abort();
        if (r.path_len == 0 || r.path_len > VAL_MAX_PATH || (r.errors & ~VAL_E_ALL) != 0 ||
            (r.errors & (VAL_E_HOSTNAME | VAL_E_REVOKED)) != 0 ||
            (r.anchored && r.path[r.path_len - 1].len == 0) ||
            strlen(r.subject_cn) >= sizeof(r.subject_cn) || r.path[0].der != ders[0])
            abort();
        if ((r.errors & VAL_E_MISSING_INTERMEDIATE) &&
            (!(r.errors & VAL_E_UNTRUSTED) || strncasecmp(r.aia_url, "http://", 7) != 0))
            abort();
        char names[256];
        val_errors_str(r.errors, names, sizeof(names));
        int h = val_check_hostname(ders[0], lens[0], hl > 0 ? host : "www.example.test");
        if (h != CAT_OK && h != CAT_DECLINED && h != CAT_ERR)
            abort();
    }

    /* The same bytes as PEM text (CA files are parsed by the same code). */
    size_t ppos = 0;
    uint8_t *out = malloc(size + 1);
    if (out == NULL)
        return 0;
    for (int i = 0; i < 64; i++) {
        long l = val_pem_next((const char *)data, size, &ppos, out, size + 1);
        if (l == 0)
            break;
        if (l > 0 && (size_t)l > size)
            abort();
    }
    free(out);

    /* The same bytes as a caIssuers response (AIA fetching). */
    uint8_t *der = NULL;
    size_t der_len = 0;
    const char *why = NULL;
    if (aia_decode(data, size, &der, &der_len, &why) == CAT_OK) {
        if (der == NULL || der_len == 0 || der_len > size)
            abort();
    } else if (why == NULL || der != NULL) {
        abort();
    }
    free(der);
    return 0;
}
