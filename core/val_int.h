/*
 * Internals of the validation engine (core/validate.c, val_cert.c,
 * val_cache.c). Never included outside those files and their tests.
 */
#ifndef CATENA_CORE_VAL_INT_H
#define CATENA_CORE_VAL_INT_H

#include "core/validate.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>

#define VAL_HASH_SIZE KEYID_SIZE /* wolfSSL's name and key-id hashes */

/* The facts of one certificate that path building and the checks need. */
struct val_cert {
    const uint8_t *der; /* borrowed (a sent certificate) or owned by the store */
    size_t len;
    uint8_t sha256[32];
    uint8_t subject_hash[VAL_HASH_SIZE];
    uint8_t issuer_hash[VAL_HASH_SIZE];
    uint8_t skid[VAL_HASH_SIZE]; /* valid if skid_set */
    uint8_t akid[VAL_HASH_SIZE]; /* valid if akid_set */
    size_t key_off;              /* the public key as wolfSSL's signature check wants it */
    uint32_t key_len;
    uint32_t key_oid;   /* RSAk, ECDSAk, ... (0: unusable key) */
    uint32_t curve_oid; /* ECC_SECP256R1_OID, ... */
    unsigned key_bits;  /* RSA modulus bits (0 if not RSA) */
    uint32_t sig_oid;   /* CTC_SHA256wRSA, ... */
    time_t not_before, not_after;
    size_t ext_off, ext_len; /* the [3] extensions inside der (len 0: none) */
    uint16_t ku;             /* KEYUSE_* if ku_set */
    uint8_t eku;             /* EXTKEYUSE_* if eku_set */
    uint8_t path_len;        /* if path_len_set */
    bool ku_set, eku_set, bc_set, is_ca, path_len_set, skid_set, akid_set;
    bool self_issued;  /* subject == issuer */
    bool crit_unknown; /* an unrecognised critical extension: unusable */
};

/* Leaf text wanted from a parse (NULL: none). */
struct val_leaf_text {
    char *cn;
    size_t cn_cap;
    char *issuer;
    size_t issuer_cap;
    char *dns;
    size_t dns_cap;
};

/**
 * Parses der into c (der must outlive c). dc is scratch, freed before the
 * return. CAT_OK, or CAT_ERR for anything wolfSSL or we cannot use.
 */
int val_cert_parse(struct val_cert *c, const uint8_t *der, size_t len, DecodedCert *dc,
                   const struct val_leaf_text *text);

/** The public key bytes of c for wc_CheckCertSigPubKey. */
const uint8_t *val_cert_key(const struct val_cert *c, uint32_t *len);

/** True if parent's key verifies child's signature. */
bool val_cert_signed_by(const struct val_cert *child, const struct val_cert *parent);

enum val_url_kind { VAL_URL_OCSP, VAL_URL_CA_ISSUERS, VAL_URL_CRL };

/** Copies the first http:// URL of that kind from c's extensions into buf; false if none fits. */
bool val_cert_url(const struct val_cert *c, enum val_url_kind kind, char *buf, size_t cap);

/** RFC 5280 UTCTime/GeneralizedTime TLV (tag, length, value) to time_t; CAT_ERR if malformed. */
int val_time_parse(const uint8_t *tlv, size_t len, time_t *out);

/** Copies untrusted text: control bytes and invalid UTF-8 become '?'; never splits a character. */
void val_text_copy(char *dst, size_t cap, const uint8_t *src, size_t n);

/**
 * One DER element at *p (before end): its tag, value and value length;
 * *p moves past it. Definite lengths and one-byte tags only. CAT_OK or CAT_ERR.
 */
int val_der_next(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **val,
                 size_t *vlen);

/**
 * Finds the next certificate in PEM text from *pos: its DER in out (cap
 * bytes). Returns the DER length, 0 when there are no more, CAT_ERR (-1)
 * for a damaged block (skipped: *pos moves past it either way).
 */
long val_pem_next(const char *pem, size_t len, size_t *pos, uint8_t *out, size_t cap);

/* ---- results cache ------------------------------------------------------ */

struct val_cache;

/** A cache of cap results, each kept at most ttl seconds. NULL on OOM. */
struct val_cache *val_cache_new(size_t cap, unsigned ttl);
void val_cache_free(struct val_cache *c);

/** The result for key if cached and live at now: copied to out (path DERs not restored). */
bool val_cache_get(struct val_cache *c, const uint8_t key[32], time_t now, struct val_result *out);

/** Stores r for key until min(now + ttl, expires). */
void val_cache_put(struct val_cache *c, const uint8_t key[32], const struct val_result *r,
                   time_t now, time_t expires);

void val_cache_stats(struct val_cache *c, size_t *entries, uint64_t *hits, uint64_t *misses);

#endif
