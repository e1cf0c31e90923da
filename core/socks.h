/*
 * SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): the
 * three client messages parsed, the three server replies built.
 *
 * Pure and allocation-free: each parser re-reads its message from the first
 * byte of the caller's buffer (messages are at most 513 bytes), never reads
 * past len, and fills a caller-owned struct. Results are monotone in len: a
 * prefix of a message gives CAT_AGAIN or the answer the whole message gives,
 * so the caller may parse after every read and stop at the first answer.
 *
 * Design note for the connection state machine (the caller):
 *
 *   client                                   catena
 *   greeting  05 NMETHODS METHODS...  ->     socks_parse_greeting()
 *                                            m = socks_choose_method(g, realm != NULL)
 *             <- 05 m                        socks_method_reply(); m == 0xff: write, close
 *   (m == 02) 01 ULEN UNAME PLEN PASSWD ->   socks_parse_auth(); verify against the realm
 *             <- 01 00 | 01 01               socks_auth_reply(); failure: write, close
 *   request   05 CMD 00 ATYP ADDR PORT ->    socks_parse_request()
 *   ... access rules, port allow-list, policy, resolve, connect (as for CONNECT) ...
 *             <- 05 REP 00 ATYP BND PORT     socks_reply(); REP != 0: write, close
 *   then the client's first bytes (a ClientHello or not) go to detect_hello().
 *
 * - Each parse reports `used`: bytes behind it (a pipelined next message, or
 *   payload behind the request) belong to the next step and must be kept.
 * - On CAT_ERR, `err` is a static line for the event log. Greeting errors are
 *   answered with 05 FF (socks_method_reply(SOCKS_M_NONE)), auth errors with
 *   01 01, request errors with socks_reply(req.rep, NULL); then close. (A
 *   SOCKS4 client, buf[0] == 4, reads 00 5B 00 00 00 00 00 00 as "rejected".)
 * - socks_parse_request() accepts BIND and UDP ASSOCIATE (well framed); the
 *   caller answers SOCKS_REP_CMD_UNSUPPORTED for anything but CONNECT.
 * - Send the request reply only when the outcome is known: 00 once the origin
 *   (or first hop) is connected, with its getsockname() as BND (or NULL:
 *   clients ignore it); policy denial, port not allowed or client access
 *   rule: 02; resolver failure: 04; connect() errors: socks_rep_from_errno().
 * - The target for policy and logs is req.host and req.port; for IP literals
 *   req.addr is ready to connect to (no resolution), v4-mapped IPv6 already
 *   turned into IPv4 so address rules see one form. Address policy (loopback,
 *   0.0.0.0, the proxy's own ports) is the caller's, as for CONNECT.
 * - The user name is in auth.user for the logs; wipe the password with
 *   socks_auth_wipe() after checking it (the client's buffer too).
 */
#ifndef CATENA_CORE_SOCKS_H
#define CATENA_CORE_SOCKS_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SOCKS_VERSION 5      /* VER of greeting, request and replies */
#define SOCKS_AUTH_VERSION 1 /* VER of the RFC 1929 sub-negotiation */
#define SOCKS_FIELD_MAX 255  /* one length byte: UNAME, PASSWD, a DST.ADDR name */
#define SOCKS_HOST_MAX 253   /* a host name we accept (RFC 1035 text form) */
#define SOCKS_METHOD_REPLY_LEN 2
#define SOCKS_AUTH_REPLY_LEN 2
#define SOCKS_REPLY_MAX 22 /* 4 + 16 (IPv6) + 2 */

enum socks_method {
    SOCKS_M_NOAUTH = 0x00,
    SOCKS_M_GSSAPI = 0x01, /* offered by curl; never chosen */
    SOCKS_M_USERPASS = 0x02,
    SOCKS_M_NONE = 0xff, /* NO ACCEPTABLE METHODS: the client must close */
};

enum socks_cmd {
    SOCKS_CMD_CONNECT = 1,
    SOCKS_CMD_BIND = 2,          /* parsed, answered SOCKS_REP_CMD_UNSUPPORTED */
    SOCKS_CMD_UDP_ASSOCIATE = 3, /* parsed, answered SOCKS_REP_CMD_UNSUPPORTED */
};

enum socks_atyp {
    SOCKS_ATYP_IPV4 = 1,
    SOCKS_ATYP_DOMAIN = 3,
    SOCKS_ATYP_IPV6 = 4,
};

/* REP of the request reply (RFC 1928 section 6). */
enum socks_rep {
    SOCKS_REP_SUCCEEDED = 0x00,
    SOCKS_REP_GENERAL_FAILURE = 0x01,
    SOCKS_REP_NOT_ALLOWED = 0x02, /* connection not allowed by ruleset */
    SOCKS_REP_NET_UNREACHABLE = 0x03,
    SOCKS_REP_HOST_UNREACHABLE = 0x04,
    SOCKS_REP_CONN_REFUSED = 0x05,
    SOCKS_REP_TTL_EXPIRED = 0x06,
    SOCKS_REP_CMD_UNSUPPORTED = 0x07,
    SOCKS_REP_ATYP_UNSUPPORTED = 0x08,
};

struct socks_greeting {
    uint8_t n_methods;   /* 1..255 */
    uint8_t offered[32]; /* bitmap: method m offered iff offered[m / 8] & (1 << m % 8) */
    size_t used;         /* 2 + n_methods */
    const char *err;     /* on CAT_ERR: static text for the event log */
};

struct socks_auth {
    char user[SOCKS_FIELD_MAX + 1]; /* UNAME, NUL-terminated; 1..255 bytes, no NUL inside */
    size_t user_len;
    char pass[SOCKS_FIELD_MAX + 1]; /* PASSWD, NUL-terminated; 0..255 bytes, no NUL inside */
    size_t pass_len;
    size_t used;     /* 3 + user_len + pass_len */
    const char *err; /* on CAT_ERR: static text for the event log */
};

struct socks_req {
    uint8_t cmd;  /* enum socks_cmd */
    uint8_t atyp; /* enum socks_atyp, as the client sent it */
    /*
     * NUL-terminated. ATYP 3: the name as sent, minus one trailing root dot;
     * an IP literal, whatever the ATYP: the canonical text of addr.
     */
    char host[SOCKS_FIELD_MAX + 1];
    size_t host_len;
    bool name_is_ip;              /* ATYP 3 carrying an IPv4/IPv6 literal */
    bool has_addr;                /* addr is set: ATYP 1, ATYP 4, or name_is_ip */
    struct sockaddr_storage addr; /* AF_INET/AF_INET6 with the port; AF_UNSPEC for a name */
    uint16_t port;                /* DST.PORT, host order */
    size_t used;                  /* bytes of the request */
    uint8_t rep;                  /* on CAT_ERR: the REP to answer */
    const char *err;              /* on CAT_ERR: static text for the event log */
};

/**
 * Parses the method-selection greeting at the start of buf.
 * CAT_OK: g filled, g->used bytes consumed. CAT_AGAIN: need more bytes.
 * CAT_ERR: VER not 5 (a SOCKS4 client, TLS or HTTP get their own text) or NMETHODS 0.
 */
int socks_parse_greeting(const uint8_t *buf, size_t len, struct socks_greeting *g) CAT_WUR
    CAT_NONNULL(3);

/** True if the greeting offered method m. */
bool socks_offers(const struct socks_greeting *g, uint8_t m) CAT_NONNULL(1);

/**
 * The method to select: with require_auth, 02 if offered else FF; without,
 * 00 if offered, else 02 if offered (check or just log the credentials), else FF.
 */
uint8_t socks_choose_method(const struct socks_greeting *g, bool require_auth) CAT_NONNULL(1);

/** Writes the method reply (05 method); returns SOCKS_METHOD_REPLY_LEN. */
size_t socks_method_reply(uint8_t out[SOCKS_METHOD_REPLY_LEN], uint8_t method) CAT_NONNULL(1);

/**
 * Parses the RFC 1929 request (01 ULEN UNAME PLEN PASSWD). CAT_ERR: VER not 1,
 * ULEN 0, or a NUL byte in the name or password (C strings downstream would
 * truncate them). PLEN 0 is accepted as an empty password: curl sends it for "user:@".
 */
int socks_parse_auth(const uint8_t *buf, size_t len, struct socks_auth *a) CAT_WUR CAT_NONNULL(3);

/** Zeroes a's password (explicit_bzero, not optimised away). */
void socks_auth_wipe(struct socks_auth *a) CAT_NONNULL(1);

/** Writes the RFC 1929 status reply (01 00 success, 01 01 failure); returns its length. */
size_t socks_auth_reply(uint8_t out[SOCKS_AUTH_REPLY_LEN], bool ok) CAT_NONNULL(1);

/**
 * Parses the request. CAT_OK: r filled (cmd may be BIND or UDP ASSOCIATE).
 * CAT_ERR, with r->rep: 01 for VER not 5, RSV not 0, an empty name or port 0
 * on CONNECT; 07 unknown CMD; 08 unknown ATYP; 04 for a name that is not a
 * valid host name (bad characters, labels, length, numeric non-dotted-quad):
 * well framed but no host can have it, so the client hears what an NXDOMAIN gives.
 */
int socks_parse_request(const uint8_t *buf, size_t len, struct socks_req *r) CAT_WUR CAT_NONNULL(3);

/**
 * Writes the request reply: 05 rep 00 then BND.ADDR/BND.PORT from bound
 * (AF_INET or AF_INET6), or 0.0.0.0:0 when bound is NULL or another family.
 * Returns the length: 10 (IPv4, none) or 22 (IPv6).
 */
size_t socks_reply(uint8_t out[SOCKS_REPLY_MAX], uint8_t rep, const struct sockaddr *bound)
    CAT_NONNULL(1);

/** REP for a failed connect(): ECONNREFUSED 05, ENETUNREACH 03, EHOSTUNREACH 04, ETIMEDOUT 06. */
uint8_t socks_rep_from_errno(int err);

/** Static name of a REP for logs ("connection refused"); "unassigned" beyond 0x08. */
const char *socks_rep_str(uint8_t rep);

/** Static name of a CMD ("CONNECT", "BIND", "UDP ASSOCIATE", "unknown"). */
const char *socks_cmd_str(uint8_t cmd);

/* ---- the connection glue (socks_conn.c) ---------------------------------- */

struct conn;

/** The CONN_ST_SOCKS handler: greeting and request, then the CONNECT path. */
int socks_st_request(struct conn *c, unsigned ev) CAT_NONNULL(1);
/** Answers a refused request with rep and closes (state RESPOND, then LINGER). */
int socks_answer_failure(struct conn *c, uint8_t rep) CAT_NONNULL(1);
/** Queues the success reply (our bound address towards the target) on cli.out. */
int socks_answer_success(struct conn *c) CAT_NONNULL(1);
/** The reply code for one of catena's exception ids (and the connect errno). */
uint8_t socks_rep_for(const char *exception_id, int connect_errno);

#endif
