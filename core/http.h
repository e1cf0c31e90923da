/*
 * HTTP/1.1 message heads (RFC 9112) and chunked framing, parsed strictly.
 *
 * Our own parser: Debian has no well-kept, maintained HTTP/1 parser library
 * (http-parser is deprecated upstream, llhttp is not packaged for C), and a
 * proxy must reject exactly what enables request smuggling, which generic
 * parsers tolerate. The parser never allocates: a parsed head holds views
 * into the caller's buffer, valid while that buffer is unchanged.
 */
#ifndef CATENA_CORE_HTTP_H
#define CATENA_CORE_HTTP_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 128 /* hard ceiling; cfg limits.max_headers may be lower */

enum http_method {
    HTTP_M_OTHER = 0, /* a valid token we do not know: forwarded as is */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_CONNECT,
    HTTP_M_OPTIONS,
    HTTP_M_TRACE,
    HTTP_M_PATCH,
};

/* How a message body is delimited (RFC 9112 section 6.3). */
enum http_framing {
    HTTP_BODY_NONE = 0, /* no body (GET without length, HEAD response, 204, 304, 1xx) */
    HTTP_BODY_LENGTH,   /* Content-Length bytes */
    HTTP_BODY_CHUNKED,  /* Transfer-Encoding: chunked */
    HTTP_BODY_CLOSE,    /* responses only: until the server closes */
};

/* A view into the parsed buffer. */
struct http_str {
    const char *p;
    size_t len;
};

struct http_hdr {
    struct http_str name;
    struct http_str value; /* leading and trailing whitespace removed */
};

/* Tokens of the Connection header that matter to a proxy. */
#define HTTP_CONN_CLOSE 0x1u
#define HTTP_CONN_KEEPALIVE 0x2u
#define HTTP_CONN_UPGRADE 0x4u

struct http_head {
    /* request line */
    enum http_method method;
    struct http_str method_str;
    struct http_str target;
    /* status line */
    int status;
    struct http_str reason;
    /* both */
    int version; /* 10 or 11 */
    struct http_hdr hdrs[HTTP_MAX_HEADERS];
    size_t n_hdrs;
    size_t head_len; /* bytes of the head including the empty line */
    /* derived */
    enum http_framing framing;
    uint64_t content_length;  /* valid when framing == HTTP_BODY_LENGTH */
    unsigned conn_tokens;     /* HTTP_CONN_* seen in Connection (and Proxy-Connection) */
    bool keep_alive;          /* version default adjusted by Connection tokens */
    bool expect_continue;     /* request has Expect: 100-continue */
    int err_status;           /* on CAT_ERR: the status to answer (400, 414, 431, 501, 502, 505) */
    const char *err;          /* on CAT_ERR: static text saying what was wrong */
};

struct http_limits {
    size_t max_head;      /* whole head; beyond it a request is 431, a response 502 */
    unsigned max_headers; /* <= HTTP_MAX_HEADERS */
};

/**
 * Parses a request head at the start of buf.
 * CAT_OK: complete, h filled. CAT_AGAIN: incomplete and still under the
 * limits; call again with more bytes. CAT_ERR: malformed or over a limit,
 * h->err_status and h->err say how to answer.
 * Rejected (smuggling and strictness): bare CR or LF line ends, obs-fold,
 * whitespace before a colon, control characters, both Content-Length and
 * Transfer-Encoding, differing or malformed Content-Length, a
 * Transfer-Encoding whose last coding is not chunked, HTTP versions other
 * than 1.0 and 1.1, a missing Host in 1.1 (except CONNECT and absolute-form),
 * more than one Host, a body on CONNECT (Content-Length: 0 is tolerated).
 * Up to two empty lines before the request line are skipped (RFC 9112 2.2);
 * head_len counts them. Pipelined bytes after the head are not looked at.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_head *h) CAT_WUR CAT_NONNULL(1, 3, 4);

/**
 * Parses a response head; req_method decides whether a body follows
 * (HEAD and 2xx to CONNECT have none). Same results as http_parse_request,
 * err_status 502 for a malformed response. Chunked with Content-Length too
 * is framed chunked with keep_alive false: drop Content-Length when
 * forwarding (RFC 9112 6.3). Close-delimited responses have keep_alive false.
 */
int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                        enum http_method req_method, struct http_head *h) CAT_WUR
    CAT_NONNULL(1, 3, 5);

/** First header with this name (case-insensitive), or NULL. */
const struct http_hdr *http_find(const struct http_head *h, const char *name) CAT_NONNULL(1, 2);

/**
 * True for the headers a proxy must not forward (RFC 9110 7.6.1), plus those named in Connection
 * (and Proxy-Connection in a request), except Content-Length and Host, which stay end-to-end.
 * Transfer-Encoding is hop-by-hop: a relay forwarding chunked bytes writes its own.
 */
bool http_is_hop_by_hop(const struct http_head *h, const struct http_hdr *hdr) CAT_NONNULL(1, 2);

/** Case-insensitive comparison of a view with a C string. */
bool http_str_eq(struct http_str s, const char *lit) CAT_NONNULL(2);

/* A request target split into parts; views into the head's buffer, except
 * empty parts ("" static) and a path absent in absolute-form ("/" static).
 * Case is kept as received: lowercasing scheme and host is the caller's. */
struct http_url {
    struct http_str scheme; /* "http", "https", or empty for origin/authority form */
    struct http_str host;   /* IPv6 without brackets; empty in origin-form (use Host) */
    unsigned port;          /* explicit or the scheme's default; 0 if none */
    struct http_str path;   /* "/..." without the query; "/" if absent in absolute form */
    struct http_str query;  /* "?..." or empty */
    bool host_is_ipv6;
};

/**
 * Splits h->target: authority-form for CONNECT ("host:port", port required),
 * absolute-form ("http://host[:port]/path?query"), or origin-form ("/path").
 * CAT_ERR on anything else (h->err_status/err set; 400): other schemes,
 * userinfo, fragments, asterisk-form, empty or zero ports, bad host names.
 * Hosts: letters, digits, '-', '_', '.', labels 1..63, total <= 253, no
 * trailing dot; a numeric last label requires a dotted-quad IPv4 (no
 * "127.1" or octal); IPv6 per RFC 4291 without zone.
 */
int http_parse_target(struct http_head *h, struct http_url *u) CAT_WUR CAT_NONNULL(1, 2);

/**
 * Splits a Host header value "host[:port]" (IPv6 in brackets, host without them); *port is 0
 * when absent. Same host rules as http_parse_target; CAT_ERR if malformed or empty.
 */
int http_parse_authority(struct http_str s, struct http_str *host, unsigned *port) CAT_WUR
    CAT_NONNULL(2, 3);

/** Method token to enum (HTTP_M_OTHER for unknown tokens). */
enum http_method http_method_from(struct http_str s);
/** Static name of a method ("GET"); "OTHER" for HTTP_M_OTHER: print method_str instead. */
const char *http_method_name(enum http_method m);
/** The standard reason phrase of a status ("Bad Gateway"), or "Unknown". */
const char *http_reason(int status);

/*
 * Chunked body scanner: tells how many bytes of a buffer belong to the
 * message, validating chunk sizes, extensions, CRLFs and trailers, without
 * changing the bytes (a proxy forwards them as received).
 */
enum http_chunk_state {
    HTTP_CH_SIZE = 0,
    HTTP_CH_EXT,
    HTTP_CH_SIZE_LF,
    HTTP_CH_DATA,
    HTTP_CH_DATA_CR,
    HTTP_CH_DATA_LF,
    HTTP_CH_TRAILER_START,
    HTTP_CH_TRAILER,
    HTTP_CH_TRAILER_LF,
    HTTP_CH_FINAL_LF,
    HTTP_CH_DONE,
};

struct http_chunked {
    enum http_chunk_state st;
    uint64_t remaining;  /* data bytes left in the current chunk */
    unsigned digits;     /* hex digits of the size (bounded); trailers: 1 after the colon */
    size_t line_len;     /* length of the current extension or trailer line (bounded) */
    size_t trailer_total;/* all trailer bytes (bounded) */
    const char *err;     /* static text after CAT_ERR */
};

void http_chunked_init(struct http_chunked *ch) CAT_NONNULL(1);

/**
 * Scans up to len bytes. Returns the number of bytes that belong to the
 * message (all of len, or fewer when the message ends inside the buffer,
 * then ch->st == HTTP_CH_DONE), or CAT_ERR (ch->err set) on bad framing;
 * after an error every call returns CAT_ERR, once done every call 0.
 * Bounds: sizes of 1..16 hex digits up to 2^62, size line with extensions
 * 4 KiB, each trailer line 4 KiB, all trailers 16 KiB. Any split of the
 * input gives the same result.
 */
long http_chunked_scan(struct http_chunked *ch, const uint8_t *p, size_t len) CAT_WUR
    CAT_NONNULL(1);

static inline bool
http_chunked_done(const struct http_chunked *ch)
{
    return ch->st == HTTP_CH_DONE;
}

#endif
