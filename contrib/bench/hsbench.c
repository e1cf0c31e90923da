/*
 * hsbench: a TLS load client for `make bench`. Threads run, for a fixed
 * time, either full TLS handshakes (a new TCP connection each, no session
 * resumption) or keep-alive HTTPS requests on one connection each, directly
 * or through an HTTP proxy's CONNECT. Prints one line of figures.
 *
 *   hsbench --connect HOST:PORT [--proxy IP:PORT] [--sni NAME] [--cafile F]
 *           [--threads N] [--seconds S] [--mode handshakes|requests] [--path P]
 *
 * Blocking sockets and one thread per connection: the point is to load the
 * server side, not to be clever.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

struct hs_opts {
    char host[256];
    int port;
    char proxy_ip[64];
    int proxy_port;
    const char *sni;
    const char *cafile;
    int threads;
    double seconds;
    bool requests;
    const char *path;
};

static struct hs_opts hs;
static WOLFSSL_CTX *hs_ctx;
static atomic_ulong hs_done, hs_failed;
static atomic_bool hs_stop;

static double
hs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* TCP to the origin, or to the proxy followed by CONNECT. -1 on failure. */
static int
hs_dial(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    const char *ip = hs.proxy_port ? hs.proxy_ip : hs.host;
    sa.sin_port = htons((uint16_t)(hs.proxy_port ? hs.proxy_port : hs.port));
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
        goto fail;
    if (hs.proxy_port) {
        char req[512];
        int n = snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                         hs.host, hs.port, hs.host, hs.port);
        if (write(fd, req, (size_t)n) != n)
            goto fail;
        /* Read exactly the response head: the TLS bytes that follow are not ours. */
        char head[1024];
        size_t len = 0;
        while (len < sizeof(head) - 1) {
            ssize_t r = read(fd, head + len, 1);
            if (r <= 0)
                goto fail;
            len++;
            if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)
                break;
        }
        head[len] = '\0';
        if (strncmp(head, "HTTP/1.1 200", 12) != 0)
            goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static WOLFSSL *
hs_tls(int fd)
{
    WOLFSSL *ssl = wolfSSL_new(hs_ctx);
    if (ssl == NULL)
        return NULL;
    wolfSSL_set_fd(ssl, fd);
    const char *sni = hs.sni ? hs.sni : hs.host;
    wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni));
    if (wolfSSL_connect(ssl) != WOLFSSL_SUCCESS) {
        wolfSSL_free(ssl);
        return NULL;
    }
    return ssl;
}

/* One GET; reads the response (Content-Length bodies only). */
static bool
hs_request(WOLFSSL *ssl)
{
    char req[512];
    const char *sni = hs.sni ? hs.sni : hs.host;
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", hs.path, sni);
    if (wolfSSL_write(ssl, req, n) != n)
        return false;
    char buf[16384];
    size_t have = 0;
    long body = -1;
    size_t head_end = 0;
    for (;;) {
        int r = wolfSSL_read(ssl, buf + have, (int)(sizeof(buf) - have));
        if (r <= 0)
            return false;
        have += (size_t)r;
        if (body < 0) {
            char *e = memmem(buf, have, "\r\n\r\n", 4);
            if (e == NULL)
                continue;
            head_end = (size_t)(e - buf) + 4;
            char *cl = memmem(buf, head_end, "Content-Length:", 15);
            if (cl == NULL)
                return false;
            body = strtol(cl + 15, NULL, 10);
        }
        if (have >= head_end + (size_t)body) {
            return true;
        }
        if (have == sizeof(buf)) {
            /* Large bodies: drop what was read, keep counting. */
            body -= (long)(have - head_end);
            head_end = 0;
            have = 0;
        }
    }
}

static void *
hs_worker(void *arg)
{
    while (!atomic_load(&hs_stop)) {
        int fd = hs_dial();
        WOLFSSL *ssl = fd >= 0 ? hs_tls(fd) : NULL;
        if (ssl == NULL) {
            atomic_fetch_add(&hs_failed, 1);
            if (fd >= 0)
                close(fd);
            usleep(1000);
            continue;
        }
        if (!hs.requests) {
            atomic_fetch_add(&hs_done, 1);
        } else {
            while (!atomic_load(&hs_stop) && hs_request(ssl))
                atomic_fetch_add(&hs_done, 1);
        }
        wolfSSL_shutdown(ssl);
        wolfSSL_free(ssl);
        close(fd);
    }
    return NULL;
}

static void
hs_usage(void)
{
    fprintf(stderr, "usage: hsbench --connect HOST:PORT [--proxy IP:PORT] [--sni NAME] "
                    "[--cafile F] [--threads N] [--seconds S] [--mode handshakes|requests] "
                    "[--path P]\n");
    exit(2);
}

static void
hs_split(const char *s, char *host, size_t cap, int *port)
{
    const char *c = strrchr(s, ':');
    if (c == NULL || (size_t)(c - s) >= cap)
        hs_usage();
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = '\0';
    *port = atoi(c + 1);
}

int
main(int argc, char **argv)
{
    hs.threads = 4;
    hs.seconds = 5;
    hs.path = "/";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            hs_usage();
        if (strcmp(a, "--connect") == 0)
            hs_split(v, hs.host, sizeof(hs.host), &hs.port);
        else if (strcmp(a, "--proxy") == 0)
            hs_split(v, hs.proxy_ip, sizeof(hs.proxy_ip), &hs.proxy_port);
        else if (strcmp(a, "--sni") == 0)
            hs.sni = v;
        else if (strcmp(a, "--cafile") == 0)
            hs.cafile = v;
        else if (strcmp(a, "--threads") == 0)
            hs.threads = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            hs.seconds = atof(v);
        else if (strcmp(a, "--mode") == 0)
            hs.requests = strcmp(v, "requests") == 0;
        else if (strcmp(a, "--path") == 0)
            hs.path = v;
        else
            hs_usage();
        i++;
    }
    if (hs.port == 0 || hs.threads < 1 || hs.threads > 256)
        hs_usage();
    wolfSSL_Init();
    hs_ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
    wolfSSL_CTX_set_groups(hs_ctx, groups, 2);
    if (hs.cafile != NULL) {
        if (wolfSSL_CTX_load_verify_locations(hs_ctx, hs.cafile, NULL) != WOLFSSL_SUCCESS) {
            fprintf(stderr, "hsbench: cannot load %s\n", hs.cafile);
            return 1;
        }
        wolfSSL_CTX_set_verify(hs_ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(hs_ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    pthread_t *t = calloc((size_t)hs.threads, sizeof(*t));
    double start = hs_now();
    for (int i = 0; i < hs.threads; i++)
        pthread_create(&t[i], NULL, hs_worker, NULL);
    while (hs_now() - start < hs.seconds)
        usleep(20000);
    atomic_store(&hs_stop, true);
    unsigned long done = atomic_load(&hs_done);
    double secs = hs_now() - start;
    for (int i = 0; i < hs.threads; i++)
        pthread_join(t[i], NULL);
    printf("%s %.1f /s (%lu in %.2f s, %lu failed)\n", hs.requests ? "requests" : "handshakes",
           (double)done / secs, done, secs, (unsigned long)atomic_load(&hs_failed));
    free(t);
    wolfSSL_CTX_free(hs_ctx);
    wolfSSL_Cleanup();
    return done > 0 ? 0 : 1;
}
