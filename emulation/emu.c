/*
 * Process-wide emulation state: the one leaf key every emulated certificate
 * carries (so a new certificate costs one signature, not a key generation
 * too), and one wolfCrypt RNG per thread (WC_RNG is not thread-safe, and the
 * workers sign in parallel). emu_init runs before any keyring is loaded;
 * emu_fini zeroises the leaf key after every keyring is freed.
 */
#include "emulation/emu_int.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#include <wolfssl/wolfcrypt/error-crypt.h>

static pthread_mutex_t emu_init_mu = PTHREAD_MUTEX_INITIALIZER;
static bool emu_ready;
static pthread_key_t emu_rng_key;
static ecc_key emu_lkey;
static uint8_t emu_lkey_der[256];
static size_t emu_lkey_der_len;
static _Atomic(emu_clock_fn *) emu_clock; /* NULL: time(NULL) */

void
emu_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int64_t
emu_now(void)
{
    emu_clock_fn *fn = atomic_load_explicit(&emu_clock, memory_order_relaxed);

    return fn ? fn() : (int64_t)time(NULL);
}

void
emu_clock_set(emu_clock_fn *fn)
{
    atomic_store_explicit(&emu_clock, fn, memory_order_relaxed);
}

/* Thread exit (or emu_fini): the thread's wolfCrypt state goes with it. */
static void
emu_rng_destroy(void *p)
{
    wc_FreeRng(p);
    free(p);
#ifdef FP_ECC
    /* Debian's build caches fixed-point tables per thread (notes section 8.15). */
    wc_ecc_fp_free();
#endif
}

WC_RNG *
emu_rng(void)
{
    WC_RNG *r = pthread_getspecific(emu_rng_key);

    if (r)
        return r;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (wc_InitRng(r) != 0) {
        free(r);
        return NULL;
    }
    if (pthread_setspecific(emu_rng_key, r) != 0) {
        emu_rng_destroy(r);
        return NULL;
    }
    return r;
}

ecc_key *
emu_leaf_key(void)
{
    return emu_ready ? &emu_lkey : NULL;
}

const uint8_t *
emu_leaf_key_der(size_t *len)
{
    *len = emu_lkey_der_len;
    return emu_ready ? emu_lkey_der : NULL;
}

int
emu_init(char *err, size_t errlen)
{
    WC_RNG *rng;
    int ret, rc = CAT_ERR;

    pthread_mutex_lock(&emu_init_mu);
    if (emu_ready) {
        pthread_mutex_unlock(&emu_init_mu);
        return CAT_OK;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        emu_seterr(err, errlen, "wolfSSL_Init failed");
        goto out;
    }
    if (pthread_key_create(&emu_rng_key, emu_rng_destroy) != 0) {
        emu_seterr(err, errlen, "pthread_key_create failed");
        wolfSSL_Cleanup();
        goto out;
    }
    rng = emu_rng();
    if (!rng) {
        emu_seterr(err, errlen, "cannot initialise the random number generator");
        goto fail_key;
    }
    ret = wc_ecc_init(&emu_lkey);
    if (ret == 0)
        ret = wc_ecc_make_key_ex(rng, 32, &emu_lkey, ECC_SECP256R1);
    if (ret != 0) {
        emu_seterr(err, errlen, "leaf key generation: %s (%d)", wc_GetErrorString(ret), ret);
        wc_ecc_free(&emu_lkey);
        goto fail_key;
    }
    ret = wc_EccKeyToDer(&emu_lkey, emu_lkey_der, sizeof(emu_lkey_der));
    if (ret <= 0) {
        emu_seterr(err, errlen, "leaf key encoding: %s (%d)", wc_GetErrorString(ret), ret);
        wc_ecc_free(&emu_lkey);
        goto fail_key;
    }
    emu_lkey_der_len = (size_t)ret;
    emu_ready = true;
    rc = CAT_OK;
    goto out;
fail_key:
    rng = pthread_getspecific(emu_rng_key);
    if (rng)
        emu_rng_destroy(rng);
    pthread_setspecific(emu_rng_key, NULL);
    pthread_key_delete(emu_rng_key);
    wolfSSL_Cleanup();
out:
    pthread_mutex_unlock(&emu_init_mu);
    return rc;
}

void
emu_fini(void)
{
    WC_RNG *rng;

    pthread_mutex_lock(&emu_init_mu);
    if (!emu_ready) {
        pthread_mutex_unlock(&emu_init_mu);
        return;
    }
    wc_ecc_free(&emu_lkey);
    explicit_bzero(&emu_lkey, sizeof(emu_lkey));
    explicit_bzero(emu_lkey_der, sizeof(emu_lkey_der));
    emu_lkey_der_len = 0;
    /* Other threads' RNGs went with their threads (the key's destructor). */
    rng = pthread_getspecific(emu_rng_key);
    if (rng)
        emu_rng_destroy(rng);
    pthread_setspecific(emu_rng_key, NULL);
    pthread_key_delete(emu_rng_key);
    emu_ready = false;
    wolfSSL_Cleanup();
    pthread_mutex_unlock(&emu_init_mu);
}
