/*
 * catena's entry point: argv, startup and shutdown order, and the main
 * thread's signal loop (SIGHUP reload, SIGTERM/SIGINT drain, SIGUSR1 reopen
 * logs). Workers run the proxy; this thread only manages them.
 */
#include "core/admin.h"
#include "core/cfg.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/override.h"
#include "core/policy.h"
#include "core/tls.h"
#include "core/version.h"
#include "core/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#define CATENA_DEFAULT_CONF "/etc/catena/catena.conf"

static struct cfg *main_cfg; /* ref: the running config */

static void
main_usage(FILE *f)
{
    fprintf(f, "usage: catena [-c FILE] [-t] [-d] [-V]\n"
               "  -c FILE  node configuration (default " CATENA_DEFAULT_CONF ")\n"
               "  -t       check the configuration and exit (0 if it is valid)\n"
               "  -d       run in the background (writes pid_file if configured)\n"
               "  -V       print the version and exit\n");
}

/* Opens (or reopens) the logs a config names; events go to stderr until then. */
static int
main_open_logs(const struct cfg *cfg, char *err, size_t errlen)
{
    if (log_open_event(cfg->log.event_file, cfg->log.event_level) != CAT_OK) {
        snprintf(err, errlen, "%s: %s", cfg->log.event_file, strerror(errno));
        return CAT_ERR;
    }
    log_set_level(LOG_FAC_SSL, cfg->log.ssl_level);
    if (log_open_tls(cfg->log.ssl_file) != CAT_OK) {
        snprintf(err, errlen, "%s: %s", cfg->log.ssl_file, strerror(errno));
        return CAT_ERR;
    }
    return log_open_access(cfg->log.access_file, cfg->log.access_fields, err, errlen);
}

/* Many tunnels need many descriptors (a tunnel holds six): take what we may. */
static void
main_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn(LOG_FAC_MAIN, NULL, "cannot raise the descriptor limit: %s", strerror(errno));
    }
}

static int
main_daemonize(const char *pid_file)
{
    pid_t pid = fork();
    if (pid == -1)
        return CAT_ERR;
    if (pid > 0)
        _exit(0);
    if (setsid() == -1)
        return CAT_ERR;
    pid = fork();
    if (pid == -1)
        return CAT_ERR;
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    if (pid_file != NULL) {
        FILE *f = fopen(pid_file, "w");
        if (f == NULL)
            return CAT_ERR;
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
    return CAT_OK;
}

static void
main_reload(void)
{
    char err[512];
    struct cfg *cfg = cfg_load(main_cfg->path, err, sizeof(err));
    if (cfg == NULL) {
        log_warn(LOG_FAC_MAIN, NULL, LOG_EVT_RELOAD_FAIL " %s; the running config stays", err);
        return;
    }
    struct tls_conf *tls = tls_conf_new(cfg, err, sizeof(err));
    if (tls == NULL) {
        log_warn(LOG_FAC_MAIN, NULL, LOG_EVT_RELOAD_FAIL " %s; the running config stays", err);
        cfg_unref(cfg);
        return;
    }
    /* A bundle file named by the config is read again; a bad one keeps the
     * running policy (and the config, so the two stay consistent). */
    struct pol *pol = NULL;
    if (cfg->bundle.file != NULL && pol_load_configured(cfg, &pol, err, sizeof(err)) != CAT_OK) {
        log_warn(LOG_FAC_MAIN, NULL, LOG_EVT_RELOAD_FAIL " %s; the running config stays", err);
        tls_conf_unref(tls);
        cfg_unref(cfg);
        return;
    }
    int rc = workers_reload(cfg, tls, err, sizeof(err));
    tls_conf_unref(tls);
    if (rc != CAT_OK) {
        log_warn(LOG_FAC_MAIN, NULL, LOG_EVT_RELOAD_FAIL " %s; the running config stays", err);
        pol_unref(pol);
        cfg_unref(cfg);
        return;
    }
    if (pol != NULL) {
        struct pol *cur = pol_current();
        if (strcmp(cur->digest, pol->digest) != 0)
            pol_install(pol, "file");
        else
            pol_unref(pol);
        pol_unref(cur);
    }
    if (main_open_logs(cfg, err, sizeof(err)) != CAT_OK)
        log_warn(LOG_FAC_MAIN, NULL, "logs: %s", err);
    cfg_unref(main_cfg);
    main_cfg = cfg;
    log_notice(LOG_FAC_MAIN, NULL, LOG_EVT_RELOAD " %s", cfg->path);
}

static void
main_signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    switch (s->signum) {
    case SIGHUP:
        main_reload();
        break;
    case SIGUSR1:
        if (log_reopen() != CAT_OK)
            log_warn(LOG_FAC_MAIN, NULL, "reopening logs: %s", strerror(errno));
        else
            log_notice(LOG_FAC_MAIN, NULL, "logs reopened");
        break;
    default:
        log_notice(LOG_FAC_MAIN, NULL, "signal %d: draining connections for up to %u ms",
                   s->signum, main_cfg->timeouts.drain_ms);
        workers_drain();
        ev_break(loop, EVBREAK_ALL);
        break;
    }
}

int
main(int argc, char **argv)
{
    const char *path = CATENA_DEFAULT_CONF;
    bool check = false, daemonize = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:tdVh")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check = true; break;
        case 'd': daemonize = true; break;
        case 'V': printf("catena %s\n", CATENA_VERSION); return 0;
        case 'h': main_usage(stdout); return 0;
        default: main_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        main_usage(stderr);
        return 2;
    }

    char err[512];
    main_cfg = cfg_load(path, err, sizeof(err));
    if (main_cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (tls_global_init(err, sizeof(err)) != CAT_OK || ovr_init() != CAT_OK) {
        fprintf(stderr, "catena: TLS: %s\n", err);
        return 1;
    }
    /* Checking includes what only loading shows: keyrings, CA files. */
    struct tls_conf *tls = tls_conf_new(main_cfg, err, sizeof(err));
    if (tls == NULL) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    struct pol *pol;
    if (pol_load_configured(main_cfg, &pol, err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "%s\n", err);
        tls_conf_unref(tls);
        return 1;
    }
    if (check) {
        printf("%s: configuration OK\n", path);
        if (pol->bundle != NULL)
            printf("bundle: policy %s, version %llu: OK\n", pol->digest,
                   (unsigned long long)pol->version);
        pol_unref(pol);
        tls_conf_unref(tls);
        cfg_unref(main_cfg);
        tls_global_fini();
        return 0;
    }

    /* A peer that goes away must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    if (main_open_logs(main_cfg, err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "catena: logs: %s\n", err);
        return 1;
    }
    log_set_ctx_fn(conn_log_ctx);
    admin_init();
    pol_install(pol, main_cfg->bundle.file != NULL ? "file" : "store");
    main_raise_fd_limit();
    if (daemonize && main_daemonize(main_cfg->pid_file) != CAT_OK) {
        log_err(LOG_FAC_MAIN, NULL, "cannot daemonize: %s", strerror(errno));
        return 1;
    }

    /* Workers inherit a mask with the handled signals blocked, so they are
     * delivered to this thread's loop only. */
    struct ev_loop *loop = ev_default_loop(0);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int started = workers_start(main_cfg, tls, err, sizeof(err));
    tls_conf_unref(tls);
    if (started != CAT_OK) {
        log_err(LOG_FAC_MAIN, NULL, "cannot start: %s", err);
        return 1;
    }
    /* Watchers first, then unblock: a signal in between would otherwise
     * get its default action and kill the process. */
    ev_signal sigs[4];
    const int signums[4] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    for (int i = 0; i < 4; i++) {
        ev_signal_init(&sigs[i], main_signal_cb, signums[i]);
        ev_signal_start(loop, &sigs[i]);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (size_t i = 0; i < main_cfg->n_listeners; i++)
        log_notice(LOG_FAC_MAIN, NULL, "listening on %s (%s)", main_cfg->listeners[i].text,
                   cfg_listener_type_name(main_cfg->listeners[i].type));
    log_notice(LOG_FAC_MAIN, NULL, "catena %s started: node %s, %u workers, pid %ld",
               CATENA_VERSION, main_cfg->node_name, main_cfg->workers, (long)getpid());
    if (geteuid() == 0)
        log_notice(LOG_FAC_MAIN, NULL, "running as root, which catena does not need: an "
                   "unprivileged user with CAP_NET_BIND_SERVICE (and CAP_NET_ADMIN for tproxy) "
                   "is enough (contrib/systemd/catena.service)");

    ev_run(loop, 0);

    workers_join();
    log_notice(LOG_FAC_MAIN, NULL, "stopped");
    if (daemonize && main_cfg->pid_file != NULL)
        unlink(main_cfg->pid_file);
    cfg_unref(main_cfg);
    tls_global_fini();
    ev_loop_destroy(loop);
    log_close();
    return 0;
}
