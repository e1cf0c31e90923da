/*
 * catenactl policy: `check` compiles a CPL policy (with its categories file)
 * exactly as a node would and prints the verdict; `trace` runs a would-be
 * transaction through every layer kind in pipeline order and prints each
 * layer, the rule that matched there (with its source text) and the final
 * decisions: the admin's debugger. All policy work is core/cpl; this file
 * reads files, parses arguments and prints. Exit: 0 ok, 1 failure, 2 usage.
 */
#include "contrib/catenactl/ctl.h"
#include "core/cpl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POL_OK 0
#define POL_FAIL 1
#define POL_USAGE 2
#define POL_MAX_HEADERS 16


static const char pol_usage[] =
    "usage: catenactl policy check FILE [--categories FILE]\n"
    "       catenactl policy trace FILE [--categories FILE] [--client ADDR] [--host NAME]\n"
    "           [--port N] [--url URL] [--cert-hostname NAME] [--address ADDR]\n"
    "           [--server-host NAME] [--method M] [--scheme S] [--user NAME]\n"
    "           [--proxy-port N] [--protocol http|https|ssl|tcp|socks]\n"
    "           [--header 'Name: value']... [--exception ID]\n"
    "  check: compile the policy as a node would; print a summary or the error.\n"
    "  trace: evaluate the layers (proxy, ssl-intercept, ssl, forward; exception with\n"
    "  --exception) for a would-be transaction and print each layer's matching rule\n"
    "  and the final decisions. What is not given is unknown, and a condition on\n"
    "  unknown data does not match. --url fills scheme, host, port and path;\n"
    "  --cert-hostname and --server-host default to the host, --address to the host\n"
    "  when it is an IP address.\n";

static int
pol_usage_err(const char *msg, const char *arg)
{
    fprintf(stderr, "catenactl policy: %s%s%s\nRun 'catenactl policy help' for usage.\n", msg,
            arg ? " " : "", arg ? arg : "");
    return POL_USAGE;
}

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
static char *
pol_read(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "catenactl policy: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    while (b != NULL) {
        if (n == cap) {
            if (cap > max) {
                fprintf(stderr, "catenactl policy: %s: larger than %zu bytes\n", path, max);
                free(b);
                b = NULL;
                break;
            }
            char *nb = realloc(b, cap * 2 + 1);
            if (nb == NULL) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (b != NULL && ferror(f)) {
        fprintf(stderr, "catenactl policy: %s: read error\n", path);
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b != NULL) {
        b[n] = '\0';
        *len = n;
    }
    return b;
}

/* The loaded policy and its files. */
struct pol_files {
    char *text, *cats_text; /* owned */
    size_t len, cats_len;
    struct cpl_cats *cats; /* owned */
    struct cpl *p;         /* owned */
};

static void
pol_files_free(struct pol_files *f)
{
    cpl_free(f->p);
    cpl_cats_free(f->cats);
    free(f->text);
    free(f->cats_text);
}

static int
pol_load(const char *path, const char *cats_path, struct pol_files *f)
{
    char err[512];
    memset(f, 0, sizeof(*f));
    if (cats_path != NULL) {
        f->cats_text = pol_read(cats_path, CPL_MAX_CATS_TEXT, &f->cats_len);
        if (f->cats_text == NULL)
            return POL_FAIL;
        f->cats = cpl_cats_parse(f->cats_text, f->cats_len, cats_path, err, sizeof(err));
        if (f->cats == NULL) {
            fprintf(stderr, "%s\n", err);
            return POL_FAIL;
        }
    }
    f->text = pol_read(path, CPL_MAX_TEXT, &f->len);
    if (f->text == NULL)
        return POL_FAIL;
    f->p = cpl_compile(f->text, f->len, path, f->cats, err, sizeof(err));
    if (f->p == NULL) {
        fprintf(stderr, "%s\n", err);
        return POL_FAIL;
    }
    return POL_OK;
}

int
ctl_policy_compiles(const char *policy_path, const char *cats_path)
{
    struct pol_files f;
    int rc = pol_load(policy_path, cats_path, &f);
    pol_files_free(&f);
    return rc == POL_OK ? 0 : 1;
}

/* Options of check and trace; NULL when not given. */
struct pol_opts {
    const char *file, *cats, *client, *host, *port, *url, *cert, *address, *server_host, *method,
        *scheme, *user, *proxy_port, *protocol, *exception;
    const char *headers[POL_MAX_HEADERS];
    size_t n_headers;
};

static int
pol_parse(int argc, char **argv, bool trace, struct pol_opts *o)
{
    static const struct {
        const char *name;
        size_t off;
        bool trace_only;
    } opts[] = {
        {"categories", offsetof(struct pol_opts, cats), false},
        {"client", offsetof(struct pol_opts, client), true},
        {"host", offsetof(struct pol_opts, host), true},
        {"port", offsetof(struct pol_opts, port), true},
        {"url", offsetof(struct pol_opts, url), true},
        {"cert-hostname", offsetof(struct pol_opts, cert), true},
        {"address", offsetof(struct pol_opts, address), true},
        {"server-host", offsetof(struct pol_opts, server_host), true},
        {"method", offsetof(struct pol_opts, method), true},
        {"scheme", offsetof(struct pol_opts, scheme), true},
        {"user", offsetof(struct pol_opts, user), true},
        {"proxy-port", offsetof(struct pol_opts, proxy_port), true},
        {"protocol", offsetof(struct pol_opts, protocol), true},
        {"exception", offsetof(struct pol_opts, exception), true},
    };
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (o->file != NULL)
                return pol_usage_err("more than one policy file:", a);
            o->file = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        if (val == NULL)
            return pol_usage_err("missing value for", a);
        if (!eq)
            i++;
        if (trace && nlen == 6 && strncmp(name, "header", 6) == 0) {
            if (o->n_headers == POL_MAX_HEADERS || strchr(val, ':') == NULL)
                return pol_usage_err("bad or too many --header (at most 16, 'Name: value'):", val);
            o->headers[o->n_headers++] = val;
            continue;
        }
        size_t k = 0;
        while (k < sizeof(opts) / sizeof(opts[0]) &&
               !(strlen(opts[k].name) == nlen && strncmp(opts[k].name, name, nlen) == 0 &&
                 (trace || !opts[k].trace_only)))
            k++;
        if (k == sizeof(opts) / sizeof(opts[0]))
            return pol_usage_err("unknown option", a);
        *(const char **)(void *)((char *)o + opts[k].off) = val;
    }
    if (o->file == NULL)
        return pol_usage_err("no policy file given", NULL);
    return POL_OK;
}

static int
pol_check(int argc, char **argv)
{
    struct pol_opts o;
    int rc = pol_parse(argc, argv, false, &o);
    if (rc != POL_OK)
        return rc;
    struct pol_files f;
    rc = pol_load(o.file, o.cats, &f);
    if (rc == POL_OK) {
        size_t nl, nr;
        cpl_stats(f.p, &nl, &nr);
        printf("%s: policy OK (%zu layer%s, %zu rule%s)", o.file, nl, nl == 1 ? "" : "s", nr,
               nr == 1 ? "" : "s");
        if (f.cats != NULL) {
            size_t nc, ne;
            cpl_cats_stats(f.cats, &nc, &ne);
            printf("; %s: %zu categories, %zu names", o.cats, nc, ne);
        }
        printf("\n");
    }
    pol_files_free(&f);
    return rc;
}

static bool
pol_port(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < 1 || v > 65535)
        return false;
    *out = (unsigned)v;
    return true;
}

static bool
pol_addr(const char *s, struct sockaddr_storage *ss)
{
    char buf[64];
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, s + 1, n - 2);
        buf[n - 2] = '\0';
        s = buf;
    }
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* scheme://host[:port][/path], copied apart; the port defaults from http/https. */
struct pol_url {
    char scheme[16], host[256], path[4096];
    unsigned port;
};

static bool
pol_url_parse(const char *u, struct pol_url *out)
{
    memset(out, 0, sizeof(*out));
    const char *sep = strstr(u, "://");
    if (sep == NULL || sep == u || (size_t)(sep - u) >= sizeof(out->scheme))
        return false;
    memcpy(out->scheme, u, (size_t)(sep - u));
    const char *h = sep + 3, *hend = h + strcspn(h, "/?#");
    const char *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(hend - h));
        if (rb == NULL)
            return false;
        colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(hend - h));
    }
    const char *hostend = colon ? colon : hend;
    if (hostend == h || (size_t)(hostend - h) >= sizeof(out->host))
        return false;
    memcpy(out->host, h, (size_t)(hostend - h));
    if (colon != NULL) {
        char pb[8];
        size_t pl = (size_t)(hend - colon - 1);
        if (pl == 0 || pl >= sizeof(pb))
            return false;
        memcpy(pb, colon + 1, pl);
        pb[pl] = '\0';
        if (!pol_port(pb, &out->port))
            return false;
    } else if (strcasecmp(out->scheme, "https") == 0) {
        out->port = 443;
    } else if (strcasecmp(out->scheme, "http") == 0) {
        out->port = 80;
    }
    snprintf(out->path, sizeof(out->path), "%s", *hend == '\0' ? "/" : hend);
    return true;
}

/* The trace's header callback: looks through the --header list. */
static const char *
pol_header(void *arg, const char *name, size_t *len)
{
    const struct pol_opts *o = arg;
    size_t nlen = strlen(name);
    for (size_t i = 0; i < o->n_headers; i++) {
        const char *h = o->headers[i], *colon = strchr(h, ':');
        if ((size_t)(colon - h) != nlen || strncasecmp(h, name, nlen) != 0)
            continue;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        *len = vl;
        return v;
    }
    return NULL;
}

/* Prints source line `line` of the text, continuation lines joined. */
static void
pol_print_source(const struct pol_files *f, unsigned line)
{
    const char *p = f->text, *end = f->text + f->len;
    for (unsigned l = 1; l < line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    bool space = false, any = false;
    size_t shown = 0;
    for (; p < end && shown < 400; p++) {
        char c = *p;
        if (c == '\\') {
            const char *q = p + 1;
            while (q < end && (*q == ' ' || *q == '\t' || *q == '\r'))
                q++;
            if (q < end && *q == '\n') {
                p = q;
                space = true;
                continue;
            }
        }
        if (c == '\n')
            break;
        if (c == ';' && (space || !any))
            break; /* a comment: not part of the rule */
        if (c == ' ' || c == '\t' || c == '\r') {
            space = true;
            continue;
        }
        if (space && any)
            putchar(' ');
        putchar((unsigned char)c < 0x20 ? '?' : c);
        space = false;
        any = true;
        shown++;
    }
    putchar('\n');
}

static const char *
pol_str(const char *s, const char *none)
{
    return s != NULL ? s : none;
}

static void
pol_print_decision(const struct cpl_decision *d)
{
    static const char *const ign[] = {"untrusted_issuer", "expiration", "hostname_mismatch",
                                      "revocation"};
    printf("\ndecisions:\n");
    printf("  allow                %s%s%s%s\n",
           d->allow == CPL_NO ? "no (deny)" : cpl_tri_name(d->allow), d->deny_reason ? ": " : "",
           d->deny_reason ? d->deny_reason : "",
           d->deny_unauthorized ? " (unauthorized: challenge)" : "");
    printf("  authenticate         %s\n", pol_str(d->auth_realm, "-"));
    printf("  force ssl            %s\n", cpl_tri_name(d->force_ssl));
    printf("  intercept            %s\n", d->intercept == CPL_YES ? "yes (ssl.forward_proxy(https))"
                                          : d->intercept == CPL_NO ? "no (tunnel)"
                                                                   : "unset");
    printf("  issuer keyring       %s\n", pol_str(d->issuer_keyring, "-"));
    printf("  emulated hostname    %s\n", pol_str(d->emu_hostname, "-"));
    printf("  splash text          %s\n", pol_str(d->splash_text, "-"));
    printf("  splash url           %s\n", pol_str(d->splash_url, "-"));
    printf("  validate             %s\n", cpl_tri_name(d->validate));
    printf("  ignore               ");
    if (!d->ignore_set)
        printf("unset");
    else if (d->ignore == 0)
        printf("none");
    for (unsigned k = 0, first = 1; k < 4; k++)
        if (d->ignore & (1u << k)) {
            printf("%s%s", first ? "" : ", ", ign[k]);
            first = 0;
        }
    printf("\n");
    static const char *const insp[] = {"unset (node config)", "both", "edge", "core"};
    printf("  tier inspect         %s\n", insp[d->inspect]);
    printf("  forward              %s\n", d->forward == NULL      ? "unset"
                                          : d->forward[0] == '\0' ? "no (direct)"
                                                                  : d->forward);
}

static int
pol_trace(int argc, char **argv)
{
    struct pol_opts o;
    int rc = pol_parse(argc, argv, true, &o);
    if (rc != POL_OK)
        return rc;
    struct cpl_txn t = {0};
    struct sockaddr_storage cli, srv;
    struct pol_url u;
    if (o.client != NULL) {
        if (!pol_addr(o.client, &cli))
            return pol_usage_err("bad --client address:", o.client);
        t.client = (struct sockaddr *)&cli;
    }
    if (o.url != NULL) {
        if (!pol_url_parse(o.url, &u))
            return pol_usage_err("bad --url (expected scheme://host[:port][/path]):", o.url);
        t.url = o.url;
        t.url_scheme = u.scheme;
        t.url_host = u.host;
        t.url_port = u.port;
        t.url_path = u.path;
    }
    if (o.host != NULL)
        t.url_host = o.host;
    if (o.port != NULL && !pol_port(o.port, &t.url_port))
        return pol_usage_err("bad --port:", o.port);
    if (o.proxy_port != NULL && !pol_port(o.proxy_port, &t.proxy_port))
        return pol_usage_err("bad --proxy-port:", o.proxy_port);
    if (o.scheme != NULL)
        t.url_scheme = o.scheme;
    t.server_url_host = o.server_host ? o.server_host : t.url_host;
    t.cert_hostname = o.cert ? o.cert : t.url_host;
    if (o.address != NULL) {
        if (!pol_addr(o.address, &srv))
            return pol_usage_err("bad --address:", o.address);
        t.url_address = (struct sockaddr *)&srv;
    } else if (t.url_host != NULL && pol_addr(t.url_host, &srv)) {
        t.url_address = (struct sockaddr *)&srv;
    }
    t.method = o.method;
    t.user = o.user;
    t.client_protocol = o.protocol;
    t.exception_id = o.exception;
    t.header = pol_header;
    t.header_arg = &o;

    struct pol_files f;
    if ((rc = pol_load(o.file, o.cats, &f)) != POL_OK) {
        pol_files_free(&f);
        return rc;
    }
    char a1[INET6_ADDRSTRLEN] = "(unknown)", a2[INET6_ADDRSTRLEN] = "(unknown)";
    if (t.client)
        snprintf(a1, sizeof(a1), "%s", o.client);
    if (t.url_address)
        inet_ntop(srv.ss_family,
                  srv.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&srv)->sin_addr
                                           : (void *)&((struct sockaddr_in6 *)&srv)->sin6_addr,
                  a2, sizeof(a2));
    printf("transaction (unknown data never matches a condition):\n");
    printf("  client.address       %s\n", a1);
    printf("  proxy.port           ");
    t.proxy_port ? printf("%u\n", t.proxy_port) : printf("(unknown)\n");
    printf("  client.protocol      %s\n", pol_str(t.client_protocol, "(unknown)"));
    printf("  http.method          %s\n", pol_str(t.method, "(unknown)"));
    printf("  url                  %s\n", pol_str(t.url, "(unknown)"));
    printf("  url.host             %s\n", pol_str(t.url_host, "(unknown)"));
    printf("  url.port             ");
    t.url_port ? printf("%u\n", t.url_port) : printf("(unknown)\n");
    printf("  url.address          %s\n", a2);
    printf("  server_url.host      %s\n", pol_str(t.server_url_host, "(unknown)"));
    printf("  certificate hostname %s (category %s)\n", pol_str(t.cert_hostname, "(unknown)"),
           t.cert_hostname ? cpl_category(f.cats, t.cert_hostname) : "-");
    printf("  user                 %s\n", pol_str(t.user, "(unknown)"));
    for (size_t i = 0; i < o.n_headers; i++)
        printf("  header               %s\n", o.headers[i]);

    static const enum cpl_layer order[] = {CPL_L_PROXY, CPL_L_SSL_INTERCEPT, CPL_L_SSL,
                                           CPL_L_EXCEPTION, CPL_L_FORWARD};
    struct cpl_decision d;
    cpl_decision_init(&d);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (order[i] == CPL_L_EXCEPTION && o.exception == NULL)
            continue;
        size_t before = d.n_layers_run;
        cpl_eval(f.p, order[i], &t, &d);
        printf("\n<%s> layers:\n", cpl_layer_name(order[i]));
        if (d.n_layers_run == before)
            printf("  (none in this policy)\n");
        for (size_t k = before; k < d.n_layers_run && k < CPL_MAX_LAYERS; k++) {
            const struct cpl_trace *tr = &d.trace[k];
            printf("  line %-5u ", tr->layer_line);
            pol_print_source(&f, tr->layer_line);
            if (tr->guard_failed)
                printf("             guard does not hold: layer skipped\n");
            else if (tr->rule_line == 0)
                printf("             no match\n");
            else {
                printf("             matched line %u: ", tr->rule_line);
                pol_print_source(&f, tr->rule_line);
            }
        }
        if (d.n_layers_run > CPL_MAX_LAYERS && d.n_layers_run - before > 0)
            printf("  (layer runs past the first %d are not traced)\n", CPL_MAX_LAYERS);
    }
    pol_print_decision(&d);
    pol_files_free(&f);
    return POL_OK;
}

int
ctl_policy(int argc, char **argv)
{
    if (argc < 1)
        return pol_usage_err("needs a subcommand: check, trace", NULL);
    if (strcmp(argv[0], "check") == 0)
        return pol_check(argc - 1, argv + 1);
    if (strcmp(argv[0], "trace") == 0)
        return pol_trace(argc - 1, argv + 1);
    if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0) {
        fputs(pol_usage, stdout);
        return POL_OK;
    }
    return pol_usage_err("unknown subcommand", argv[0]);
}
