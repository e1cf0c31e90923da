/*
 * Internals of emulation/, shared by its .c files and test/unit/emu_test.c:
 * a small DER reader and writer, the certificate fields catena reads, the
 * loaded keyring, the leaf cache, and struct emu itself.
 * Never included from outside emulation/ (and its unit test).
 */
#ifndef CATENA_EMULATION_EMU_INT_H
#define CATENA_EMULATION_EMU_INT_H

#include "core/dlist.h"
#include "emulation/emu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#define EMU_SPLASH_TEXT_MAX 200    /* characters; product limit */
#define EMU_URL_MAX 1024           /* splash and CRL URLs */
#define EMU_HOSTNAME_MAX 253       /* RFC 1035 2.3.4, as text */
#define EMU_CERT_MAX (64 * 1024)   /* larger certificates are refused */
#define EMU_FILE_MAX (1024 * 1024) /* keyring files */
#define EMU_CHAIN_MAX 8            /* certificates in chain.pem */
#define EMU_SERIAL_LEN 16

/* DER tags catena writes or looks for. */
#define DER_BOOLEAN 0x01
#define DER_INTEGER 0x02
#define DER_BIT_STRING 0x03
#define DER_OCTET_STRING 0x04
#define DER_OID 0x06
#define DER_UTF8STRING 0x0c
#define DER_PRINTABLESTRING 0x13
#define DER_T61STRING 0x14
#define DER_IA5STRING 0x16
#define DER_UTCTIME 0x17
#define DER_GENTIME 0x18
#define DER_SEQUENCE 0x30
#define DER_SET 0x31
#define DER_GN_DNS 0x82 /* GeneralName dNSName [2] IMPLICIT IA5String */
#define DER_GN_URI 0x86 /* uniformResourceIdentifier [6] */
#define DER_GN_IP 0x87  /* iPAddress [7] OCTET STRING */

/* ---- DER (der.c) -------------------------------------------------------- */

/** A borrowed byte range. */
struct emu_span {
    const uint8_t *p;
    size_t len;
};

/** Reads the next TLV of rd (single-byte tags, definite lengths); advances rd. */
int der_next(struct emu_span *rd, uint8_t *tag, struct emu_span *val,
             struct emu_span *whole) CAT_WUR CAT_NONNULL(1, 2, 3);
/** Reads the next TLV if it has this tag; else CAT_ERR and rd is unchanged (optional fields). */
int der_expect(struct emu_span *rd, uint8_t tag, struct emu_span *val, struct emu_span *whole)
    CAT_NONNULL(1, 3);

/** Writes a tag and length header (out may be NULL to measure); returns its size. */
size_t der_hdr(uint8_t *out, uint8_t tag, size_t len);

/** Growing output buffer for DER; a failed append sets failed and keeps the contents. */
struct der_buf {
    uint8_t *p; /* owned */
    size_t len, cap;
    bool failed;
};
void der_put(struct der_buf *b, const void *data, size_t len) CAT_NONNULL(1);
void der_put_tlv(struct der_buf *b, uint8_t tag, const void *val, size_t len) CAT_NONNULL(1);
/** Wraps b's bytes from offset start in a tag/length header. */
void der_wrap(struct der_buf *b, size_t start, uint8_t tag) CAT_NONNULL(1);
void der_buf_free(struct der_buf *b);

/** Parses a UTCTime or GeneralizedTime value (YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ). */
int der_time_parse(uint8_t tag, struct emu_span v, int64_t *t) CAT_WUR CAT_NONNULL(3);
/** Encodes t as a Time TLV (UTCTime before 2050, RFC 5280 4.1.2.5); returns the size. */
size_t der_time_put(uint8_t out[20], int64_t t) CAT_NONNULL(1);

/** What an editing pass over a TBSCertificate wolfSSL made should change. */
struct der_tbs_edit {
    struct emu_span issuer;     /* the Name TLV to put, or empty to keep wolfSSL's */
    struct emu_span subject;    /* likewise */
    struct emu_span extra_exts; /* Extension TLVs appended to the extensions */
    bool bc_critical;           /* mark basicConstraints critical */
};
/** Rewrites tbs into out (cap bytes) as the edit says; *out_len is the new TBS size. */
int der_tbs_edit(const uint8_t *tbs, size_t len, const struct der_tbs_edit *ed, uint8_t *out,
                 size_t cap, size_t *out_len) CAT_WUR CAT_NONNULL(1, 3, 4, 6);

/* ---- certificates (cert.c) ---------------------------------------------- */

enum emu_pk { EMU_PK_OTHER = 0, EMU_PK_EC, EMU_PK_RSA };

/** The fields of an X.509 certificate catena uses; spans point into the DER. */
struct emu_cert {
    struct emu_span der, tbs, issuer, subject, spki, spki_bits, exts;
    int64_t not_before, not_after;
    enum emu_pk pk;
    bool has_bc, is_ca;
    int path_len; /* -1: no constraint */
    bool has_ku;
    uint16_t ku;          /* bit 0 digitalSignature ... bit 5 keyCertSign (RFC 5280 4.2.1.3) */
    struct emu_span skid; /* keyIdentifier bytes, or empty */
    struct emu_span san;  /* GeneralNames TLV, or empty */
    struct emu_span cn;   /* last CN value in the subject, or empty */
    uint8_t cn_tag;
};
#define EMU_KU_DIGITAL_SIGNATURE 0x0001
#define EMU_KU_KEY_CERT_SIGN 0x0020
#define EMU_KU_CRL_SIGN 0x0040

/** Parses der (which must outlive c). CAT_ERR on malformed input: never trusts lengths. */
int emu_cert_parse(struct emu_cert *c, const uint8_t *der, size_t len) CAT_WUR CAT_NONNULL(1, 2);
/** True if subject and issuer names are the same bytes. */
bool emu_cert_self_issued(const struct emu_cert *c) CAT_NONNULL(1);
/** The key identifier an issued certificate names as its AKID: the SKID, else SHA-1 of the key. */
int emu_cert_key_id(const struct emu_cert *c, uint8_t out[32], size_t *len) CAT_WUR
    CAT_NONNULL(1, 2, 3);
/** Sets cert->akid (key identifier form) to the issuer's key id. */
int emu_cert_set_akid(Cert *cert, const struct emu_cert *issuer) CAT_WUR CAT_NONNULL(1, 2);
/** Fills 16 random serial bytes: positive, no leading zero, so always 16 bytes in DER. */
int emu_cert_serial(Cert *cert, WC_RNG *rng) CAT_WUR CAT_NONNULL(1, 2);
/** Sets beforeDate/afterDate from times. */
void emu_cert_dates(Cert *cert, int64_t not_before, int64_t not_after) CAT_NONNULL(1);
/** True if child's signature verifies with parent's key (dates not checked). */
bool emu_cert_signed_by(const uint8_t *child, size_t child_len, const uint8_t *parent,
                        size_t parent_len) CAT_NONNULL(1, 3);
/**
 * Runs wc_MakeCert_ex, the edit, and wc_SignCert_ex; returns the certificate
 * in a malloc'd *out. sign_mu (may be NULL) is held around the signature:
 * wolfSSL keeps per-operation state in the key.
 */
int emu_cert_finish(Cert *cert, int subj_type, void *subj_key, const struct der_tbs_edit *ed,
                    int signer_type, void *signer_key, pthread_mutex_t *sign_mu, WC_RNG *rng,
                    uint8_t **out, size_t *out_len, char *err, size_t errlen) CAT_WUR;

/* ---- keyrings (keyring.c) ----------------------------------------------- */

struct emu_blob {
    uint8_t *der; /* owned */
    size_t len;
    char *pem; /* owned */
};

/** A loaded and checked keyring: the issuer, its key, the chain above it. */
struct emu_keyring {
    struct emu_blob certs[1 + EMU_CHAIN_MAX]; /* [0] the issuer, then chain.pem's */
    size_t ncerts;
    struct emu_cert cert; /* parsed certs[0] */
    int key_type;         /* ECC_TYPE or RSA_TYPE (wolfSSL's key type codes) */
    int sig_type;         /* CTC_SHA256wECDSA or CTC_SHA256wRSA */
    bool key_set;
    union {
        ecc_key ecc;
        RsaKey rsa;
    } key; /* owned; zeroised by emu_kr_free */
};

/**
 * Loads and checks a keyring from its files (chain_path may be NULL or
 * missing). private_key says to refuse a key file readable by group/other.
 */
int emu_kr_load(struct emu_keyring *kr, const char *cert_path, const char *key_path,
                const char *chain_path, bool private_key, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);
void emu_kr_free(struct emu_keyring *kr);
/** The issuer key as wolfSSL's sign functions take it. */
void *emu_kr_key(struct emu_keyring *kr) CAT_NONNULL(1);

/* ---- files and PEM (pem.c) ---------------------------------------------- */

/** Reads a whole file (at most EMU_FILE_MAX) into a NUL-terminated buffer. */
int emu_file_read(const char *path, bool private_key, char **out, size_t *len, char *err,
                  size_t errlen) CAT_WUR CAT_NONNULL(1, 3, 4);
/** Certificates of a PEM text (or one DER certificate), in order; count in *n. */
int emu_pem_certs(const char *text, size_t len, struct emu_blob *out, size_t max, size_t *n,
                  const char *what, char *err, size_t errlen) CAT_WUR CAT_NONNULL(1, 3, 5, 6);
/** DER to a malloc'd PEM string of type (CERT_TYPE, ECC_PRIVATEKEY_TYPE, PRIVATEKEY_TYPE). */
char *emu_der_to_pem(const uint8_t *der, size_t len, int type) CAT_NONNULL(1);
void emu_blob_free(struct emu_blob *b);
void emu_zfree(void *p, size_t len);

/* ---- process-wide state (emu.c) ----------------------------------------- */

/** This thread's RNG (made on first use, freed at thread exit or emu_fini). */
WC_RNG *emu_rng(void);
/** The process's leaf key, its private key DER, NULL before emu_init. */
ecc_key *emu_leaf_key(void);
const uint8_t *emu_leaf_key_der(size_t *len) CAT_NONNULL(1);
void emu_seterr(char *err, size_t errlen, const char *fmt, ...) CAT_PRINTF(3, 4);
/** Unix time now: the system clock, or the hook's. */
int64_t emu_now(void);
typedef int64_t emu_clock_fn(void);
/** For tests: makes emu_now() read fn (NULL: the system clock again). Any thread. */
void emu_clock_set(emu_clock_fn *fn);

/* ---- leaves (leaf.c) and the cache (cache.c) ---------------------------- */

struct emu_leaf {
    atomic_uint refs;
    WOLFSSL_CTX *ctx; /* owned */
    size_t der_len;
    uint8_t der[];
};

/** Checks params: lengths, characters, hostname form. */
int emu_params_check(const struct emu_params *p, char *err, size_t errlen) CAT_WUR CAT_NONNULL(1);
/** Makes a leaf (one reference) for the origin certificate; the cache is not involved. */
struct emu_leaf *emu_leaf_make(struct emu *e, const uint8_t *der, size_t len,
                               const struct emu_params *p, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 4);

enum emu_ent_state { EMU_ENT_BUILDING = 0, EMU_ENT_READY, EMU_ENT_FAILED };

struct emu_entry {
    uint8_t key[32]; /* SHA-256 of the origin DER and the parameters */
    enum emu_ent_state state;
    struct emu_leaf *leaf;           /* ref, once READY */
    struct emu_entry *hnext;         /* hash chain; also the free list once detached */
    struct dlist_link lru;           /* in the LRU list, READY entries only */
    unsigned pins;                   /* the builder and waiters still looking at it */
    bool in_table;
    char err[192]; /* the builder's error, for its waiters */
};

struct emu_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* broadcast when an entry leaves BUILDING */
    struct emu_entry **buckets; /* owned */
    size_t mask;
    struct dlist lru;           /* READY entries, the most recent first */
    unsigned cap;
    struct emu_stats stats; /* entries = READY entries in the LRU */
};

int emu_cache_init(struct emu_cache *c, unsigned cap) CAT_WUR CAT_NONNULL(1);
void emu_cache_fini(struct emu_cache *c);

struct emu {
    char *name; /* owned */
    struct emu_keyring kr;
    Cert *tmpl;         /* owned: the fixed part of every leaf */
    uint8_t *chain_der; /* owned: issuer then chain.pem's certs, DER */
    size_t chain_len;
    WOLFSSL_CERT_MANAGER *cm; /* owned: holds only the issuer, for emu_is_own_issue */
    pthread_mutex_t sign_mu;  /* wolfSSL keeps signing state in the key */
    emu_ctx_setup_fn *ctx_setup;
    void *ctx_setup_arg;
    struct emu_cache cache;
    /* The keyring's CRL (crl.c): made on first request, all fields under crl_mu. */
    pthread_mutex_t crl_mu; /* taken before sign_mu, never after it */
    uint8_t *crl_der;       /* owned; NULL until first made */
    size_t crl_len;
    int64_t crl_this, crl_next; /* its thisUpdate and nextUpdate */
    uint64_t crl_number;        /* its cRLNumber */
};

#endif
