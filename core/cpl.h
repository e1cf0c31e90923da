/*
 * The policy engine: a compiler and evaluator for a subset of CPL, the
 * Content Policy Language of the classic enterprise proxy appliance.
 *
 * A policy text is compiled once (cpl_compile) into immutable tables that
 * every worker reads without locks; cpl_eval() runs the layers of one kind
 * against what a transaction knows so far and merges their properties into
 * a decision. Evaluation allocates nothing.
 *
 * Syntax (case-insensitive except inside quoted strings and header values):
 *
 *   ; a comment: ';' outside a value or quoted string, to the end of the line
 *   define condition trusted_servers      ; a named condition: ANY line holds
 *       url.address=10.1.0.0/16
 *       url.address=192.0.2.10 url.port=443   ; a line holds if ALL its conditions do
 *   end                                   ; or "end condition"
 *   <proxy> client.address=10.0.0.0/8     ; layer header; optional guard conditions
 *       url.domain=(bank.example, .pay.example) deny("no banking")
 *       http.method=!(GET, HEAD) \
 *           request.header.X-Test=yes allow   ; '\' at the end of a line continues it
 *
 * Layers: <proxy>, <ssl-intercept>, <ssl>, <exception>, <forward>, with an
 * optional label (<proxy "name">). A rule is conditions and properties in any
 * order on one logical line; a rule without conditions always matches, a
 * rule without properties matches and sets nothing (an exemption). Rules
 * before the first layer header are an error; define blocks may appear
 * anywhere (not inside another define) and may be used before they appear.
 * Values: cond=value, cond="quoted value", cond=(a, b) or cond=a,b (any of
 * them), cond=!value and cond=!(a, b) (none of them). Quotes are " or ',
 * without escapes; a bare value ends at a blank, ',', '(' or ')'. ';' starts
 * a comment except inside a value.
 *
 * Conditions (names, hosts, categories, methods, schemes, users, paths and
 * substrings compare case-insensitively; header values exactly):
 *   client.address= url.address=   address or CIDR, v4 or v6
 *   proxy.port= url.port=          N or N..M
 *   client.protocol=               http https ssl tcp socks
 *   http.method= url.scheme= user= exception.id=   equality
 *   url.host= server_url.host= server.certificate.hostname=   the exact name
 *   url.domain=                    the name and every name below it
 *   url.path=                      prefix of the path;  url.substring=  in the URL
 *   server.certificate.hostname.category=   a category of the categories file, or none
 *   request.header.NAME=           the header's value
 *   condition=NAME                 a define condition
 * server.certificate.* only in <ssl-intercept>, <ssl>, <exception> (the
 * certificate is not known before); exception.id= only in <exception>.
 *
 * Properties, and the layers that take them (anything else is an error):
 *   allow, deny, deny("text")             <proxy> <ssl> <exception>
 *   deny.unauthorized, authenticate(realm)           <proxy> <exception>
 *   force_protocol(ssl|no)                <proxy> <ssl-intercept>
 *   ssl.forward_proxy(https|no), ssl.forward_proxy.issuer_keyring(name),
 *   .hostname(name), .splash_text("text"), .splash_url("url")   <ssl-intercept>
 *   server.certificate.validate(yes|no), ...validate.ignore(all|none|LIST),
 *   ...validate.ignore.untrusted_issuer|expiration|hostname_mismatch|revocation(yes|no)  <ssl>
 *   forward(name|no), tier.inspect(both|edge|core)                   <forward>
 *
 * Data not known yet: a condition whose datum is NULL/0/AF_UNSPEC in the
 * cpl_txn is "unknown", and so is its negation; a rule or guard holds only if
 * each of its conditions is known and true (a define condition holds if one
 * of its lines does, and is unknown if none holds and one is unknown). The
 * caller evaluates each layer kind at the point where its data exists, and
 * may evaluate a kind again once more is known.
 */
#ifndef CATENA_CORE_CPL_H
#define CATENA_CORE_CPL_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct cpl;      /* a compiled policy: immutable, shared read-only by all workers */
struct cpl_cats; /* hostname categories: immutable once parsed */

/* Layer kinds, in the order a transaction meets them. */
enum cpl_layer {
    CPL_L_PROXY = 0,     /* request: allow/deny, authenticate, force_protocol */
    CPL_L_SSL_INTERCEPT, /* TLS seen: tunnel or intercept, emulation parameters */
    CPL_L_SSL,           /* origin certificate known: validation */
    CPL_L_EXCEPTION,     /* an exception page is about to be served */
    CPL_L_FORWARD,       /* upstream: forward(name) */
    CPL_L_COUNT
};

/* Limits; input beyond them is refused with an error naming the limit. */
#define CPL_MAX_TEXT (16u << 20)      /* bytes of policy text */
#define CPL_MAX_LINE (64u << 10)      /* bytes of one logical line (continuations included) */
#define CPL_MAX_RULES 200000u         /* rules (and define lines) in a policy */
#define CPL_MAX_LAYER_COUNT 4096u     /* layers in a policy */
#define CPL_MAX_CONDS 64u             /* conditions in one rule, guard or define line */
#define CPL_MAX_VALUES 10000u         /* values of one condition */
#define CPL_MAX_DEFINES 20000u        /* define condition blocks */
#define CPL_MAX_DEPTH 8u              /* condition=NAME references nested in defines */
#define CPL_MAX_CATS_TEXT (64u << 20) /* bytes of a categories file */
#define CPL_MAX_CATS 1000u            /* categories (besides "none") */
#define CPL_MAX_CAT_ENTRIES 4000000u  /* names and domains in a categories file */

/*
 * What a transaction knows so far. NULL / 0 / family AF_UNSPEC = not known
 * yet (see "Data not known yet" above). Strings are borrowed for the call.
 */
struct cpl_txn {
    const struct sockaddr *client;      /* client.address= (CIDR; IPv4-mapped v6 matches v4) */
    unsigned proxy_port;                /* proxy.port= (the listener's port) */
    const char *client_protocol;        /* client.protocol= : http, https, ssl, tcp, socks */
    const char *method;                 /* http.method= */
    const char *url_scheme;             /* url.scheme= */
    const char *url_host;               /* url.host=, url.domain= (label-boundary suffix) */
    unsigned url_port;                  /* url.port= */
    const char *url_path;               /* url.path= (prefix), path with query */
    const char *url;                    /* url.substring= : the whole URL as text */
    const struct sockaddr *url_address; /* url.address= (the server's address; CIDR) */
    const char *server_url_host;        /* server_url.host= (the host catena connects to) */
    const char *cert_hostname;          /* server.certificate.hostname= and .category= */
    const char *user;                   /* user= */
    const char *exception_id;           /* exception.id= */
    /* request.header.NAME= : returns the value of header `name` (given in
     * lowercase; match it case-insensitively) and sets *len, or NULL if the
     * request has no such header. header == NULL: headers not known yet. */
    const char *(*header)(void *arg, const char *name, size_t *len);
    void *header_arg;
};

enum cpl_tri { CPL_UNSET = 0, CPL_YES, CPL_NO };

#define CPL_IGN_UNTRUSTED 0x1u  /* untrusted issuer */
#define CPL_IGN_EXPIRATION 0x2u /* expired or not yet valid */
#define CPL_IGN_HOSTNAME 0x4u   /* hostname mismatch */
#define CPL_IGN_REVOCATION 0x8u /* revoked */
#define CPL_IGN_ALL 0xfu

#define CPL_MAX_LAYERS 32 /* layer runs recorded per decision for tracing */

/* One layer run, for tracing. */
struct cpl_trace {
    enum cpl_layer kind;
    unsigned layer_line; /* line of the layer header */
    unsigned rule_line;  /* line of the rule that matched, 0 = none */
    bool guard_failed;   /* the header's conditions did not hold: layer skipped */
};

/* tier.inspect(): which tier of a chain decrypts (the node config's tier.inspect
 * when the policy says nothing). */
enum cpl_inspect { CPL_INSPECT_UNSET = 0, CPL_INSPECT_BOTH, CPL_INSPECT_EDGE, CPL_INSPECT_CORE };

/*
 * Properties. UNSET/NULL = the policy said nothing. Strings point into the
 * compiled policy and live as long as it does.
 */
struct cpl_decision {
    enum cpl_tri allow;         /* allow -> YES; deny, deny(...), deny.unauthorized -> NO */
    const char *deny_reason;    /* deny("text"), if given */
    bool deny_unauthorized;     /* deny.unauthorized: challenge for credentials */
    const char *auth_realm;     /* authenticate(realm) */
    enum cpl_tri intercept;     /* ssl.forward_proxy(https) -> YES, (no) -> NO */
    const char *issuer_keyring; /* ssl.forward_proxy.issuer_keyring(name) */
    const char *emu_hostname;   /* ssl.forward_proxy.hostname(name) */
    const char *splash_text;    /* ssl.forward_proxy.splash_text("text") */
    const char *splash_url;     /* ssl.forward_proxy.splash_url("url") */
    enum cpl_tri validate;      /* server.certificate.validate(yes|no) */
    unsigned ignore;            /* CPL_IGN_* set by validate.ignore.*(yes) / ignore(all) */
    bool ignore_set;            /* some ignore property was given */
    enum cpl_tri force_ssl;     /* force_protocol(ssl) -> YES, (no) -> NO */
    const char *forward;        /* forward(name); "" for forward(no): go direct */
    enum cpl_inspect inspect;   /* tier.inspect(...): where a chain decrypts */
    /* Which rule matched in each layer run, across calls, in order; n_layers_run
     * counts every run, trace[] keeps the first CPL_MAX_LAYERS. */
    struct cpl_trace trace[CPL_MAX_LAYERS];
    size_t n_layers_run;
};

/**
 * Compiles a policy text (len bytes, NUL not needed). name is used in errors.
 * cats (may be NULL: only category "none" exists) is borrowed and must outlive
 * the policy. On error returns NULL and err holds "name:line:column: message".
 */
struct cpl *cpl_compile(const char *text, size_t len, const char *name, const struct cpl_cats *cats,
                        char *err, size_t errlen) CAT_NONNULL(3, 5) CAT_WUR;
/** Frees a compiled policy (NULL is fine). */
void cpl_free(struct cpl *p);
/** Counts of a compiled policy, for `catenactl policy check` and logs. */
void cpl_stats(const struct cpl *p, size_t *n_layers, size_t *n_rules) CAT_NONNULL(1, 2, 3);

/**
 * Parses a categories file: "[name]" starts a category; each further line is
 * a host name ("bank.example": that name only) or ".bank.example" (the domain
 * and every name below it); ';' starts a comment. Errors as cpl_compile().
 */
struct cpl_cats *cpl_cats_parse(const char *text, size_t len, const char *name, char *err,
                                size_t errlen) CAT_NONNULL(3, 4) CAT_WUR;
/** Frees a categories set (NULL is fine). */
void cpl_cats_free(struct cpl_cats *c);
/** Number of categories and of names/domains. */
void cpl_cats_stats(const struct cpl_cats *c, size_t *n_cats, size_t *n_entries)
    CAT_NONNULL(1, 2, 3);
/**
 * The first category of host (case-insensitive, trailing dot ignored): the
 * exact name wins over domains, a longer domain over a shorter one. "none" if
 * unrated or c is NULL. The result is static or lives as long as c.
 */
const char *cpl_category(const struct cpl_cats *c, const char *host) CAT_NONNULL(2);

/** Resets a decision to "nothing said" before a transaction's first cpl_eval(). */
void cpl_decision_init(struct cpl_decision *d) CAT_NONNULL(1);

/**
 * Evaluates every layer of kind `which`, in policy order, merging into d:
 * within a layer the first rule whose conditions all hold applies; a later
 * layer overrides an earlier one property by property. Allocates nothing.
 */
void cpl_eval(const struct cpl *p, enum cpl_layer which, const struct cpl_txn *t,
              struct cpl_decision *d) CAT_NONNULL(1, 3, 4);

/** "proxy", "ssl-intercept", "ssl", "exception", "forward". */
const char *cpl_layer_name(enum cpl_layer l);
/** "yes", "no" or "unset". */
const char *cpl_tri_name(enum cpl_tri t);

#endif
