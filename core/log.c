/*
 * Event log and access log. Each line is formatted into a stack buffer and
 * written with a single write(2) to an O_APPEND descriptor: lines from
 * several workers never interleave and nothing is buffered in user space, so
 * a crash loses no line already logged. Rotation (SIGUSR1) dup2()s a freshly
 * opened file over the same descriptor number, so writers need no lock.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_levels[LOG_FAC_COUNT] = {LOG_INFO, LOG_INFO};

static int log_event_fd = STDERR_FILENO;
static char *log_event_path;  /* owned; NULL = stderr */
static int log_access_fd = -1;
static char *log_access_path; /* owned; NULL = none */
static log_ctx_fn *log_ctx;
static int log_tls_fd = -1;
static char *log_tls_path;   /* owned; NULL = none */

/* W3C extended log fields we know how to write. */
enum log_field {
    LF_DATE, LF_TIME, LF_TIME_TAKEN, LF_C_IP, LF_C_PORT, LF_CS_USERNAME, LF_S_ACTION,
    LF_SC_STATUS, LF_CS_METHOD, LF_CS_URI_SCHEME, LF_CS_HOST, LF_CS_URI_PORT, LF_CS_URI_PATH,
    LF_CS_URI_QUERY, LF_SC_BYTES, LF_CS_BYTES, LF_S_IP, LF_S_SUPPLIER_IP, LF_CS_USER_AGENT,
    LF_CS_REFERER, LF_RS_CONTENT_TYPE, LF_X_EXCEPTION_ID, LF_X_CERT_ERRORS, LF_X_CERT_STATUS,
    LF_X_UPSTREAM, LF_X_DETAIL, LF_COUNT
};

static const char *const log_field_names[LF_COUNT] = {
    [LF_DATE] = "date",
    [LF_TIME] = "time",
    [LF_TIME_TAKEN] = "time-taken",
    [LF_C_IP] = "c-ip",
    [LF_C_PORT] = "c-port",
    [LF_CS_USERNAME] = "cs-username",
    [LF_S_ACTION] = "s-action",
    [LF_SC_STATUS] = "sc-status",
    [LF_CS_METHOD] = "cs-method",
    [LF_CS_URI_SCHEME] = "cs-uri-scheme",
    [LF_CS_HOST] = "cs-host",
    [LF_CS_URI_PORT] = "cs-uri-port",
    [LF_CS_URI_PATH] = "cs-uri-path",
    [LF_CS_URI_QUERY] = "cs-uri-query",
    [LF_SC_BYTES] = "sc-bytes",
    [LF_CS_BYTES] = "cs-bytes",
    [LF_S_IP] = "s-ip",
    [LF_S_SUPPLIER_IP] = "s-supplier-ip",
    [LF_CS_USER_AGENT] = "cs(User-Agent)",
    [LF_CS_REFERER] = "cs(Referer)",
    [LF_RS_CONTENT_TYPE] = "rs(Content-Type)",
    [LF_X_EXCEPTION_ID] = "x-exception-id",
    [LF_X_CERT_ERRORS] = "x-rs-certificate-observed-errors",
    [LF_X_CERT_STATUS] = "x-rs-certificate-validate-status",
    [LF_X_UPSTREAM] = "x-forwarded-via",
    [LF_X_DETAIL] = "x-detail",
};

#define LOG_MAX_FIELDS 64
static enum log_field log_fields[LOG_MAX_FIELDS];
static size_t log_n_fields;
static char log_fields_line[1024]; /* "#Fields: ..." as written at the top of each file */

static const char *const log_level_names[] = {
    [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
    [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

static const char *const log_fac_names[LOG_FAC_COUNT] = {"main", "ssl"};

int
log_level_parse(const char *name)
{
    for (size_t i = 0; i < CAT_ARRAY_LEN(log_level_names); i++)
        if (strcasecmp(name, log_level_names[i]) == 0)
            return (int)i;
    if (strcasecmp(name, "error") == 0)
        return LOG_ERR;
    if (strcasecmp(name, "warn") == 0)
        return LOG_WARNING;
    return -1;
}

const char *
log_level_name(int level)
{
    if (level < 0 || (size_t)level >= CAT_ARRAY_LEN(log_level_names))
        return "?";
    return log_level_names[level];
}

void
log_set_ctx_fn(log_ctx_fn *fn)
{
    log_ctx = fn;
}

void
log_set_level(enum log_fac fac, int level)
{
    log_levels[fac] = level;
}

/* Writes all of buf, retrying short writes; logging must not lose lines to EINTR. */
static void
log_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static int
log_open_file(const char *path)
{
    /* Logs may name clients and hosts: not world-readable. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd;
}

/* Replaces *fdp with a new descriptor for path, keeping the number if it had one. */
static int
log_swap_fd(int *fdp, const char *path)
{
    int fd = log_open_file(path);
    if (fd == -1)
        return CAT_ERR;
    if (*fdp >= 0 && *fdp != STDERR_FILENO) {
        if (dup2(fd, *fdp) == -1) {
            close(fd);
            return CAT_ERR;
        }
        close(fd);
    } else {
        *fdp = fd;
    }
    return CAT_OK;
}

int
log_open_event(const char *path, int level)
{
    log_levels[LOG_FAC_MAIN] = level;
    if (path == NULL || strcmp(path, "-") == 0) {
        free(log_event_path);
        log_event_path = NULL;
        if (log_event_fd != STDERR_FILENO)
            close(log_event_fd);
        log_event_fd = STDERR_FILENO;
        return CAT_OK;
    }
    if (log_event_path != NULL && strcmp(path, log_event_path) == 0)
        return CAT_OK;
    char *copy = strdup(path);
    if (copy == NULL)
        return CAT_ERR;
    int fd = log_open_file(path);
    if (fd == -1) {
        free(copy);
        return CAT_ERR;
    }
    if (log_event_fd != STDERR_FILENO) {
        dup2(fd, log_event_fd);
        close(fd);
    } else {
        log_event_fd = fd;
    }
    free(log_event_path);
    log_event_path = copy;
    return CAT_OK;
}

static int
log_parse_fields(const char *fields, char *err, size_t errlen)
{
    enum log_field parsed[LOG_MAX_FIELDS];
    size_t n = 0;
    char line[sizeof(log_fields_line) - 2];
    size_t off = (size_t)snprintf(line, sizeof(line), "#Fields:");
    const char *p = fields;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t len = (size_t)(p - start);
        size_t f;
        for (f = 0; f < LF_COUNT; f++)
            if (strlen(log_field_names[f]) == len && strncasecmp(start, log_field_names[f], len) == 0)
                break;
        if (f == LF_COUNT) {
            snprintf(err, errlen, "unknown access log field '%.*s'", (int)CAT_MIN(len, 64), start);
            return CAT_ERR;
        }
        if (n == LOG_MAX_FIELDS) {
            snprintf(err, errlen, "more than %d access log fields", LOG_MAX_FIELDS);
            return CAT_ERR;
        }
        parsed[n++] = (enum log_field)f;
        if (off < sizeof(line))
            off += (size_t)snprintf(line + off, sizeof(line) - off, " %s", log_field_names[f]);
    }
    if (n == 0) {
        snprintf(err, errlen, "empty access log field list");
        return CAT_ERR;
    }
    memcpy(log_fields, parsed, n * sizeof(parsed[0]));
    log_n_fields = n;
    snprintf(log_fields_line, sizeof(log_fields_line), "%s\n", line);
    return CAT_OK;
}

/* A new or empty access log starts with the W3C directives. */
static void
log_access_header(void)
{
    struct stat st;
    if (log_access_fd < 0 || fstat(log_access_fd, &st) == -1 || st.st_size > 0)
        return;
    char buf[sizeof(log_fields_line) + 64];
    int n = snprintf(buf, sizeof(buf), "#Software: catena\n#Version: 1.0\n%s", log_fields_line);
    log_write_all(log_access_fd, buf, (size_t)CAT_MIN((size_t)n, sizeof(buf) - 1));
}

int
log_open_access(const char *path, const char *fields, char *err, size_t errlen)
{
    if (log_parse_fields(fields ? fields : LOG_ACCESS_DEFAULT_FIELDS, err, errlen) != CAT_OK)
        return CAT_ERR;
    if (path == NULL) {
        if (log_access_fd >= 0)
            close(log_access_fd);
        log_access_fd = -1;
        free(log_access_path);
        log_access_path = NULL;
        return CAT_OK;
    }
    char *copy = strdup(path);
    if (copy == NULL || log_swap_fd(&log_access_fd, path) != CAT_OK) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(copy);
        return CAT_ERR;
    }
    free(log_access_path);
    log_access_path = copy;
    log_access_header();
    return CAT_OK;
}

static const char log_tls_fields[] =
    "#Fields: date time time-taken c-ip s-action x-cs-sni s-supplier-ip s-supplier-port "
    "x-rs-certificate-hostname x-rs-certificate-issuer x-rs-certificate-observed-errors "
    "x-rs-certificate-validate-status x-cs-tls-version x-cs-cipher x-rs-tls-version "
    "x-rs-cipher sc-bytes cs-bytes cs-username x-upstream x-upstream-intercepted x-detail\n";

static void
log_tls_header(void)
{
    struct stat st;
    if (log_tls_fd < 0 || fstat(log_tls_fd, &st) == -1 || st.st_size > 0)
        return;
    char buf[sizeof(log_tls_fields) + 64];
    int n = snprintf(buf, sizeof(buf), "#Software: catena\n#Version: 1.0\n%s", log_tls_fields);
    log_write_all(log_tls_fd, buf, (size_t)CAT_MIN((size_t)n, sizeof(buf) - 1));
}

int
log_open_tls(const char *path)
{
    if (path == NULL) {
        if (log_tls_fd >= 0)
            close(log_tls_fd);
        log_tls_fd = -1;
        free(log_tls_path);
        log_tls_path = NULL;
        return CAT_OK;
    }
    char *copy = strdup(path);
    if (copy == NULL || log_swap_fd(&log_tls_fd, path) != CAT_OK) {
        free(copy);
        return CAT_ERR;
    }
    free(log_tls_path);
    log_tls_path = copy;
    log_tls_header();
    return CAT_OK;
}

int
log_reopen(void)
{
    int rc = CAT_OK;
    if (log_event_path != NULL && log_swap_fd(&log_event_fd, log_event_path) != CAT_OK)
        rc = CAT_ERR;
    if (log_access_path != NULL) {
        if (log_swap_fd(&log_access_fd, log_access_path) != CAT_OK)
            rc = CAT_ERR;
        else
            log_access_header();
    }
    if (log_tls_path != NULL) {
        if (log_swap_fd(&log_tls_fd, log_tls_path) != CAT_OK)
            rc = CAT_ERR;
        else
            log_tls_header();
    }
    return rc;
}

void
log_close(void)
{
    if (log_tls_fd >= 0)
        close(log_tls_fd);
    log_tls_fd = -1;
    free(log_tls_path);
    log_tls_path = NULL;
    if (log_access_fd >= 0)
        close(log_access_fd);
    log_access_fd = -1;
    if (log_event_fd != STDERR_FILENO)
        close(log_event_fd);
    log_event_fd = STDERR_FILENO;
    free(log_event_path);
    log_event_path = NULL;
    free(log_access_path);
    log_access_path = NULL;
}

void
log_emit(enum log_fac fac, int level, const void *c, const char *fmt, ...)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    off += (size_t)snprintf(line + off, sizeof(line) - off, ".%03ldZ %s [%s] ",
                            ts.tv_nsec / 1000000, log_level_name(level), log_fac_names[fac]);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
    va_end(ap);
    if (n > 0)
        off = CAT_MIN(off + (size_t)n, sizeof(line) - 1);
    if (c != NULL && log_ctx != NULL && off < sizeof(line) - 2) {
        line[off++] = ' ';
        off += log_ctx(c, line + off, sizeof(line) - off - 1);
        off = CAT_MIN(off, sizeof(line) - 2);
    }
    /* One event per line: control characters from peers cannot forge lines. */
    for (size_t i = 0; i < off; i++)
        if ((unsigned char)line[i] < 0x20)
            line[i] = ' ';
    line[off++] = '\n';
    log_write_all(log_event_fd, line, off);
}

/* Appends s as one W3C field: "-" if empty, quoted when it has spaces or quotes. */
static size_t
log_put_str(char *buf, size_t off, size_t cap, const char *s)
{
    if (off >= cap)
        return off;
    if (s == NULL || *s == '\0') {
        buf[off++] = '-';
        return off;
    }
    bool quote = strpbrk(s, " \t\"") != NULL;
    if (quote && off < cap)
        buf[off++] = '"';
    for (; *s && off < cap - 1; s++) {
        unsigned char ch = (unsigned char)*s;
        /* Client-controlled text (User-Agent, paths) cannot break the line format. */
        if (ch < 0x20 || ch == 0x7f)
            buf[off++] = '?';
        else if (ch == '"')
            buf[off++] = '\'';
        else
            buf[off++] = (char)ch;
    }
    if (quote && off < cap)
        buf[off++] = '"';
    return off;
}

static size_t
log_put_num(char *buf, size_t off, size_t cap, long long v)
{
    if (v < 0)
        return log_put_str(buf, off, cap, NULL);
    int n = snprintf(buf + off, cap - off, "%lld", v);
    return n > 0 ? CAT_MIN(off + (size_t)n, cap) : off;
}

void
log_access(const struct log_txn *t)
{
    if (log_access_fd < 0)
        return;
    char line[8192];
    const size_t cap = sizeof(line) - 1; /* room for the newline */
    size_t off = 0;
    struct tm tm;
    gmtime_r(&t->end.tv_sec, &tm);
    for (size_t i = 0; i < log_n_fields && off < cap; i++) {
        if (i > 0)
            line[off++] = ' ';
        char tmp[64];
        switch (log_fields[i]) {
        case LF_DATE:
            strftime(tmp, sizeof(tmp), "%Y-%m-%d", &tm);
            off = log_put_str(line, off, cap, tmp);
            break;
        case LF_TIME:
            strftime(tmp, sizeof(tmp), "%H:%M:%S", &tm);
            off = log_put_str(line, off, cap, tmp);
            break;
        case LF_TIME_TAKEN: {
            long long ms = (long long)(t->end.tv_sec - t->start.tv_sec) * 1000 +
                           (t->end.tv_nsec - t->start.tv_nsec) / 1000000;
            off = log_put_num(line, off, cap, ms < 0 ? 0 : ms);
            break;
        }
        case LF_C_IP: off = log_put_str(line, off, cap, t->c_ip); break;
        case LF_C_PORT: off = log_put_num(line, off, cap, t->c_port); break;
        case LF_CS_USERNAME: off = log_put_str(line, off, cap, t->username); break;
        case LF_S_ACTION: off = log_put_str(line, off, cap, t->action); break;
        case LF_SC_STATUS: off = log_put_num(line, off, cap, t->status > 0 ? t->status : -1); break;
        case LF_CS_METHOD: off = log_put_str(line, off, cap, t->method); break;
        case LF_CS_URI_SCHEME: off = log_put_str(line, off, cap, t->scheme); break;
        case LF_CS_HOST: off = log_put_str(line, off, cap, t->host); break;
        case LF_CS_URI_PORT: off = log_put_num(line, off, cap, t->port > 0 ? t->port : -1); break;
        case LF_CS_URI_PATH: off = log_put_str(line, off, cap, t->path); break;
        case LF_CS_URI_QUERY: off = log_put_str(line, off, cap, t->query); break;
        case LF_SC_BYTES: off = log_put_num(line, off, cap, t->sc_bytes); break;
        case LF_CS_BYTES: off = log_put_num(line, off, cap, t->cs_bytes); break;
        case LF_S_IP: off = log_put_str(line, off, cap, t->s_ip); break;
        case LF_S_SUPPLIER_IP: off = log_put_str(line, off, cap, t->supplier_ip); break;
        case LF_CS_USER_AGENT: off = log_put_str(line, off, cap, t->user_agent); break;
        case LF_CS_REFERER: off = log_put_str(line, off, cap, t->referer); break;
        case LF_RS_CONTENT_TYPE: off = log_put_str(line, off, cap, t->content_type); break;
        case LF_X_EXCEPTION_ID: off = log_put_str(line, off, cap, t->exception_id); break;
        case LF_X_CERT_ERRORS: off = log_put_str(line, off, cap, t->cert_errors); break;
        case LF_X_CERT_STATUS: off = log_put_str(line, off, cap, t->cert_status); break;
        case LF_X_UPSTREAM: off = log_put_str(line, off, cap, t->upstream); break;
        case LF_X_DETAIL: off = log_put_str(line, off, cap, t->detail); break;
        case LF_COUNT: break;
        }
    }
    off = CAT_MIN(off, cap);
    line[off++] = '\n';
    log_write_all(log_access_fd, line, off);
}

void
log_tls(const struct log_tls *t)
{
    if (log_tls_fd < 0)
        return;
    char line[4096];
    const size_t cap = sizeof(line) - 1;
    size_t off = 0;
    struct tm tm;
    char tmp[64];
    gmtime_r(&t->end.tv_sec, &tm);
    strftime(tmp, sizeof(tmp), "%Y-%m-%d", &tm);
    off = log_put_str(line, off, cap, tmp);
    line[off++] = ' ';
    strftime(tmp, sizeof(tmp), "%H:%M:%S", &tm);
    off = log_put_str(line, off, cap, tmp);
    long long ms = (long long)(t->end.tv_sec - t->start.tv_sec) * 1000 +
                   (t->end.tv_nsec - t->start.tv_nsec) / 1000000;
    const char *strs[] = {t->c_ip,          t->action,      t->sni,        t->s_ip};
    const char *strs2[] = {t->cert_hostname, t->cert_issuer, t->cert_errors, t->cert_status,
                           t->cs_version,    t->cs_cipher,   t->rs_version,  t->rs_cipher};
    line[off++] = ' ';
    off = log_put_num(line, off, cap, ms < 0 ? 0 : ms);
    for (size_t i = 0; i < CAT_ARRAY_LEN(strs); i++) {
        line[off++] = ' ';
        off = log_put_str(line, off, cap, strs[i]);
    }
    line[off++] = ' ';
    off = log_put_num(line, off, cap, t->s_port > 0 ? t->s_port : -1);
    for (size_t i = 0; i < CAT_ARRAY_LEN(strs2) && off < cap - 1; i++) {
        line[off++] = ' ';
        off = log_put_str(line, off, cap, strs2[i]);
    }
    if (off < cap - 1) {
        line[off++] = ' ';
        off = log_put_num(line, off, cap, t->sc_bytes);
    }
    if (off < cap - 1) {
        line[off++] = ' ';
        off = log_put_num(line, off, cap, t->cs_bytes);
    }
    const char *tail[] = {t->username, t->upstream, t->upstream_intercepted};
    for (size_t i = 0; i < CAT_ARRAY_LEN(tail) && off < cap - 1; i++) {
        line[off++] = ' ';
        off = log_put_str(line, off, cap, tail[i]);
    }
    if (off < cap - 1) {
        line[off++] = ' ';
        off = log_put_str(line, off, cap, t->detail);
    }
    off = CAT_MIN(off, cap);
    line[off++] = '\n';
    log_write_all(log_tls_fd, line, off);
}
