/*
 * catenactl: the admin CLI. `ca` creates root and intermediate issuer
 * keyrings, imports an enterprise CA and shows a keyring; all of the work is
 * in emulation/ (emu_ca_create, emu_ca_import, emu_new), this file parses
 * arguments and prints. Exit codes: 0 ok, 1 failure, 2 usage error.
 * Never prints key material.
 */
#include "contrib/catenactl/ctl.h"
#include "core/log.h"
#include "emulation/emu.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/sha256.h>


#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2

static const char ctl_usage[] =
    "usage: catenactl <command> [options]\n"
    "\n"
    "  ca init --dir DIR [--cn NAME] [--org ORG] [--rsa] [--days N] [--pathlen N]\n"
    "      make a self-signed root CA keyring (ECDSA P-256, or RSA-2048 with --rsa;\n"
    "      3650 days, pathlen 1 by default)\n"
    "  ca intermediate --parent PARENTDIR --dir DIR [--cn NAME] [--org ORG] [--rsa] [--days N]\n"
    "      make an intermediate CA keyring signed by the keyring in PARENTDIR\n"
    "      (pathlen 0; validity clipped to the parent's)\n"
    "  ca import --dir DIR --cert CERT.pem --key KEY.pem [--chain CHAIN.pem]\n"
    "      make a keyring from an existing CA; CHAIN holds the CAs above it up to the root\n"
    "  ca show --dir DIR\n"
    "      check a keyring and print its certificates (never the key)\n"
    "  bundle keygen|build|sign|verify|push ...\n"
    "      the signed policy bundle (catenactl bundle help)\n"
    "  policy check|trace FILE ...\n"
    "      compile a CPL policy, or trace a would-be transaction through it\n"
    "      (catenactl policy help)\n"
    "  help\n"
    "\n"
    "A keyring directory holds cert.pem, key.pem (mode 0600) and chain.pem.\n"
    "Existing keyrings are never overwritten. Exit status: 0 ok, 1 failure, 2 usage.\n";

/* Options of the ca subcommands; NULL when not given. */
struct ctl_opts {
    const char *dir, *cn, *org, *days, *pathlen, *parent, *cert, *key, *chain;
    bool rsa;
};

static int ctl_usage_err(const char *fmt, ...) CAT_PRINTF(1, 2);

static int
ctl_usage_err(const char *fmt, ...)
{
    va_list ap;

    fputs("catenactl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nRun 'catenactl help' for usage.\n", stderr);
    return CTL_USAGE;
}

/* Parses --name VALUE / --name=VALUE; allowed lists the options this subcommand takes. */
static int
ctl_parse(int argc, char **argv, const char *allowed, struct ctl_opts *o)
{
    static const struct {
        const char *name;
        size_t off;
    } opts[] = {
        {"dir", offsetof(struct ctl_opts, dir)},
        {"cn", offsetof(struct ctl_opts, cn)},
        {"org", offsetof(struct ctl_opts, org)},
        {"days", offsetof(struct ctl_opts, days)},
        {"pathlen", offsetof(struct ctl_opts, pathlen)},
        {"parent", offsetof(struct ctl_opts, parent)},
        {"cert", offsetof(struct ctl_opts, cert)},
        {"key", offsetof(struct ctl_opts, key)},
        {"chain", offsetof(struct ctl_opts, chain)},
    };

    memset(o, 0, sizeof(*o));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq;
        char name[32];
        size_t n;
        bool found = false;

        if (strncmp(a, "--", 2) != 0)
            return ctl_usage_err("unexpected argument '%s'", a);
        a += 2;
        eq = strchr(a, '=');
        n = eq ? (size_t)(eq - a) : strlen(a);
        if (n == 0 || n >= sizeof(name))
            return ctl_usage_err("unknown option '%s'", argv[i]);
        memcpy(name, a, n);
        name[n] = '\0';
        {
            /* allowed is " name name ... ": a name matches with its spaces around it. */
            char probe[40];

            snprintf(probe, sizeof(probe), " %s ", name);
            if (!strstr(allowed, probe))
                return ctl_usage_err("option '--%s' is not valid here", name);
        }
        if (strcmp(name, "rsa") == 0) {
            if (eq)
                return ctl_usage_err("option '--rsa' takes no value");
            o->rsa = true;
            continue;
        }
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                return ctl_usage_err("option '--%s' needs a value", name);
            val = argv[++i];
        }
        for (size_t k = 0; k < CAT_ARRAY_LEN(opts); k++) {
            if (strcmp(opts[k].name, name) == 0) {
                const char **slot = (const char **)(void *)((char *)o + opts[k].off);

                if (*slot)
                    return ctl_usage_err("option '--%s' given twice", name);
                *slot = val;
                found = true;
            }
        }
        if (!found)
            return ctl_usage_err("unknown option '--%s'", name);
    }
    return CTL_OK;
}

static int
ctl_uint(const char *s, const char *what, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max || s[0] == '-') {
        fprintf(stderr, "catenactl: %s must be a number 0..%lu, not '%s'\n", what, max, s);
        return CTL_USAGE;
    }
    *out = v;
    return CTL_OK;
}

static int
ctl_ca_create(int argc, char **argv, bool intermediate)
{
    struct ctl_opts o;
    struct emu_ca_req r = {0};
    unsigned long days = 3650, pathlen = intermediate ? 0 : 1;
    char err[512];
    int rc = ctl_parse(
        argc, argv, intermediate ? " dir cn org rsa days parent " : " dir cn org rsa days pathlen ",
        &o);

    if (rc != CTL_OK)
        return rc;
    if (!o.dir)
        return ctl_usage_err("--dir is required");
    if (intermediate && !o.parent)
        return ctl_usage_err("--parent is required");
    if (o.days && ctl_uint(o.days, "--days", 36500, &days) != CTL_OK)
        return CTL_USAGE;
    if (days == 0)
        return ctl_usage_err("--days must be at least 1");
    if (o.pathlen && ctl_uint(o.pathlen, "--pathlen", 16, &pathlen) != CTL_OK)
        return CTL_USAGE;
    r.dir = o.dir;
    r.common_name = o.cn ? o.cn : intermediate ? "catena intermediate CA" : "catena root CA";
    r.organization = o.org;
    r.key_type = o.rsa ? EMU_KEY_RSA_2048 : EMU_KEY_EC_P256;
    r.days = (unsigned)days;
    r.parent_dir = intermediate ? o.parent : NULL;
    r.path_len = (int)pathlen;
    if (emu_ca_create(&r, err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "catenactl: %s\n", err);
        return CTL_FAIL;
    }
    printf("%s CA keyring written to %s (%s)\n", intermediate ? "intermediate" : "root", o.dir,
           o.rsa ? "RSA-2048" : "ECDSA P-256");
    return CTL_OK;
}

static int
ctl_ca_import(int argc, char **argv)
{
    struct ctl_opts o;
    char err[512];
    int rc = ctl_parse(argc, argv, " dir cert key chain ", &o);

    if (rc != CTL_OK)
        return rc;
    if (!o.dir || !o.cert || !o.key)
        return ctl_usage_err("--dir, --cert and --key are required");
    if (emu_ca_import(o.dir, o.cert, o.key, o.chain, err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "catenactl: %s\n", err);
        return CTL_FAIL;
    }
    printf("CA keyring imported to %s\n", o.dir);
    return CTL_OK;
}

/* Prints one certificate: names, validity, fingerprint, key type. */
static int
ctl_show_cert(const char *label, const uint8_t *der, size_t len)
{
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(der, (int)len, WOLFSSL_FILETYPE_ASN1);
    WOLFSSL_EVP_PKEY *pk;
    char buf[512], t1[64], t2[64];
    uint8_t fp[WC_SHA256_DIGEST_SIZE];
    const char *kt = "unknown";
    int bits = 0;

    if (!x) {
        printf("%s: unreadable certificate\n", label);
        return CTL_FAIL;
    }
    printf("%s:\n", label);
    printf("  subject:     %s\n",
           wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(x), buf, sizeof(buf)) ? buf
                                                                                         : "?");
    printf("  issuer:      %s\n",
           wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_issuer_name(x), buf, sizeof(buf)) ? buf
                                                                                        : "?");
    if (!wolfSSL_ASN1_TIME_to_string(wolfSSL_X509_get_notBefore(x), t1, sizeof(t1)))
        snprintf(t1, sizeof(t1), "?");
    if (!wolfSSL_ASN1_TIME_to_string(wolfSSL_X509_get_notAfter(x), t2, sizeof(t2)))
        snprintf(t2, sizeof(t2), "?");
    printf("  not before:  %s\n  not after:   %s\n", t1, t2);
    if (wc_Sha256Hash(der, (word32)len, fp) == 0) {
        printf("  SHA-256:     ");
        for (size_t i = 0; i < sizeof(fp); i++)
            printf("%02X%s", fp[i], i + 1 < sizeof(fp) ? ":" : "\n");
    }
    pk = wolfSSL_X509_get_pubkey(x);
    if (pk) {
        bits = wolfSSL_EVP_PKEY_bits(pk);
        switch (wolfSSL_EVP_PKEY_base_id(pk)) {
        case EVP_PKEY_EC:
            kt = "ECDSA";
            break;
        case EVP_PKEY_RSA:
            kt = "RSA";
            break;
        default:
            break;
        }
        wolfSSL_EVP_PKEY_free(pk);
    }
    printf("  key:         %s %d bits\n", kt, bits);
    wolfSSL_X509_free(x);
    return CTL_OK;
}

static int
ctl_ca_show(int argc, char **argv)
{
    struct ctl_opts o;
    struct emu_opts eo = {0};
    struct emu *e;
    char err[512], label[48];
    const uint8_t *der;
    size_t len;
    int rc = ctl_parse(argc, argv, " dir ", &o);

    if (rc != CTL_OK)
        return rc;
    if (!o.dir)
        return ctl_usage_err("--dir is required");
    if (emu_init(err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "catenactl: %s\n", err);
        return CTL_FAIL;
    }
    eo.dir = o.dir;
    eo.name = o.dir;
    eo.cache_entries = 1;
    e = emu_new(&eo, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "catenactl: keyring %s: %s\n", o.dir, err);
        emu_fini();
        return CTL_FAIL;
    }
    printf("keyring %s: OK\n", o.dir);
    rc = CTL_OK;
    for (size_t i = 0; (der = emu_chain_der(e, i, &len)) != NULL; i++) {
        if (i == 0)
            snprintf(label, sizeof(label), "issuer (cert.pem)");
        else
            snprintf(label, sizeof(label), "chain.pem [%zu]", i);
        if (ctl_show_cert(label, der, len) != CTL_OK)
            rc = CTL_FAIL;
    }
    emu_free(e);
    emu_fini();
    return rc;
}

static int
ctl_ca(int argc, char **argv)
{
    if (argc < 1)
        return ctl_usage_err("'ca' needs a subcommand: init, intermediate, import, show");
    if (strcmp(argv[0], "init") == 0)
        return ctl_ca_create(argc - 1, argv + 1, false);
    if (strcmp(argv[0], "intermediate") == 0)
        return ctl_ca_create(argc - 1, argv + 1, true);
    if (strcmp(argv[0], "import") == 0)
        return ctl_ca_import(argc - 1, argv + 1);
    if (strcmp(argv[0], "show") == 0)
        return ctl_ca_show(argc - 1, argv + 1);
    return ctl_usage_err("unknown 'ca' subcommand '%s'", argv[0]);
}

int
main(int argc, char **argv)
{
    /* Keyring loading logs at info; the CLI prints its own results. */
    log_set_level(LOG_FAC_SSL, LOG_WARNING);
    if (argc < 2)
        return ctl_usage_err("no command given");
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        fputs(ctl_usage, stdout);
        return CTL_OK;
    }
    if (strcmp(argv[1], "ca") == 0)
        return ctl_ca(argc - 2, argv + 2);
    if (strcmp(argv[1], "policy") == 0)
        return ctl_policy(argc - 2, argv + 2); /* contrib/catenactl/policy.c */
    if (strcmp(argv[1], "bundle") == 0)
        return ctl_bundle(argc - 2, argv + 2);
    return ctl_usage_err("unknown command '%s'", argv[1]);
}
