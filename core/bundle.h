/*
 * The shared bundle: one signed file that carries what must be identical on
 * every tier (policy.cpl, categories.txt, cas/NAME.pem, pages/NAME.html), so that it
 * can be pushed (PUT) and pulled (GET) as is.
 *
 * Format 1 (every byte covered: the manifest by an Ed25519 signature, the
 * files by their SHA-256 in the manifest):
 *
 *     catena-bundle 1\n
 *     version <N>\n                      positive decimal, no leading zero
 *     created <YYYY-MM-DDTHH:MM:SSZ>\n   UTC
 *     file <name> <size> <sha256 hex>\n  one per file, names in ascending byte order
 *     signature ed25519 <key id hex16> <signature hex128>\n
 *     <file contents, concatenated in manifest order, exact sizes, nothing after>
 *
 * The signature is over every manifest byte before the "signature" line; the
 * key id is the first 8 bytes of SHA-256(public key). The bundle digest,
 * "sha256:<hex>", is SHA-256 over the manifest including the signature line.
 */
#ifndef CATENA_CORE_BUNDLE_H
#define CATENA_CORE_BUNDLE_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BDL_FORMAT 1
#define BDL_MAX_SIZE (64u * 1024 * 1024) /* whole bundle */
#define BDL_MAX_FILES 1024
#define BDL_MAX_NAME 128  /* bytes in a file name */
#define BDL_MAX_LINE 512  /* bytes in a manifest line, LF included */
#define BDL_KEY_ID_LEN 8  /* bytes; 16 hex digits */
#define BDL_DIGEST_LEN 71 /* "sha256:" + 64 hex, without the NUL */

/* What a file is for; the name decides (policy.cpl, categories.txt, cas/X.pem, pages/X.html). */
enum bdl_kind {
    BDL_KIND_POLICY = 0, /* policy.cpl, required */
    BDL_KIND_CATEGORIES, /* categories.txt, optional */
    BDL_KIND_CA,         /* cas/<name>.pem: extra trusted CAs */
    BDL_KIND_PAGE,       /* pages/<name>.html: exception page templates */
};

/** A trusted verification key: the Ed25519 public key and its id. */
struct bdl_pubkey {
    uint8_t key[32];
    uint8_t id[BDL_KEY_ID_LEN];
    char id_hex[2 * BDL_KEY_ID_LEN + 1];
};

/** A signing key (seed and public half). Wipe it with bdl_privkey_wipe() when done. */
struct bdl_privkey {
    uint8_t seed[32];
    struct bdl_pubkey pub;
};

/** One file of a bundle: views into the bundle's own memory, valid until bdl_free(). */
struct bdl_entry {
    const char *name;
    enum bdl_kind kind;
    const uint8_t *data;
    size_t len;
};

/** A file to put into a bundle (bdl_build_mem); name must follow the bundle's naming rules. */
struct bdl_src {
    const char *name;
    const uint8_t *data;
    size_t len;
};

struct bdl;

/**
 * Parses data (len bytes, copied) and checks every rule: manifest syntax, the
 * signature with the key in keys whose id matches, each file's SHA-256, and
 * version >= min_version (0: no floor). Returns an immutable bundle, or NULL
 * with one line in err ("manifest line 4: ...", "file policy.cpl: sha256 mismatch").
 */
struct bdl *bdl_parse_verify(const uint8_t *data, size_t len, const struct bdl_pubkey *keys,
                             size_t n_keys, uint64_t min_version, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(6);
/** Frees a bundle (NULL is fine). Views obtained from it become invalid. */
void bdl_free(struct bdl *b);

/** The bundle's version (the manifest's "version" line). */
uint64_t bdl_version(const struct bdl *b) CAT_NONNULL(1);
/** "sha256:<64 hex>": identifies the policy; owned by b. */
const char *bdl_digest(const struct bdl *b) CAT_NONNULL(1);
/** The manifest's "created" time, as seconds since the epoch and as written. */
time_t bdl_created(const struct bdl *b) CAT_NONNULL(1);
const char *bdl_created_str(const struct bdl *b) CAT_NONNULL(1);
/** The id (hex) of the key that signed the bundle; owned by b. */
const char *bdl_key_id(const struct bdl *b) CAT_NONNULL(1);
/** The whole bundle as received (to serve it to other nodes); owned by b. */
const uint8_t *bdl_raw(const struct bdl *b, size_t *len) CAT_NONNULL(1, 2);

/** A file's contents by name, or NULL if the bundle has no such file. */
const uint8_t *bdl_file(const struct bdl *b, const char *name, size_t *len) CAT_NONNULL(1, 2, 3);
/** Number of files; bdl_entry_at(b, i) for i below it gives them in manifest order. */
size_t bdl_count(const struct bdl *b) CAT_NONNULL(1);
const struct bdl_entry *bdl_entry_at(const struct bdl *b, size_t i) CAT_NONNULL(1);
/**
 * Iterates over the files of one kind: start with *pos = 0, call until NULL.
 * for (size_t i = 0; (e = bdl_next(b, BDL_KIND_CA, &i)) != NULL;) ...
 */
const struct bdl_entry *bdl_next(const struct bdl *b, enum bdl_kind kind, size_t *pos)
    CAT_NONNULL(1, 3);

/**
 * Checks a file name against the bundle's rules and gives its kind. On failure,
 * why (e.g. "contains \"..\"") goes to err.
 */
int bdl_name_check(const char *name, size_t len, enum bdl_kind *kind, char *err,
                   size_t errlen) CAT_WUR CAT_NONNULL(1, 4);

/** Reads a public key file ("catena-ed25519-public <64 hex>\n"). */
int bdl_pubkey_load(const char *path, struct bdl_pubkey *out, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);
/** Parses a public key from its text ("catena-ed25519-public <hex>", one optional LF). */
int bdl_pubkey_parse(const char *text, size_t len, struct bdl_pubkey *out, char *err,
                     size_t errlen) CAT_WUR CAT_NONNULL(1, 3, 4);
/** Reads a private key file ("catena-ed25519-private <64 hex>\n"); refused unless mode 0600/0400.
 */
int bdl_privkey_load(const char *path, struct bdl_privkey *out, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);
/** Makes a signing key from a 32-byte seed (tests, fuzzing). */
int bdl_privkey_from_seed(const uint8_t seed[32], struct bdl_privkey *out) CAT_WUR
    CAT_NONNULL(1, 2);
/** Zeroes a private key. */
void bdl_privkey_wipe(struct bdl_privkey *k) CAT_NONNULL(1);

/**
 * Makes a new key pair: priv_path written 0600 and pub_path 0644, both
 * created exclusively (an existing file is never overwritten).
 */
int bdl_keygen(const char *priv_path, const char *pub_path, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);

/**
 * Builds and signs a bundle from files in memory (any order; they are sorted).
 * created is written as UTC. *out is malloc'd, the caller frees it.
 */
int bdl_build_mem(const struct bdl_src *files, size_t n_files, uint64_t version, time_t created,
                  const struct bdl_privkey *key, uint8_t **out, size_t *out_len, char *err,
                  size_t errlen) CAT_WUR CAT_NONNULL(5, 6, 7, 8);

/**
 * Builds and signs a bundle from dir: policy.cpl (required), categories.txt,
 * cas/NAME.pem and pages/NAME.html. Hidden files are skipped; any other entry in
 * cas/ or pages/ is an error. *out is malloc'd, the caller frees it.
 */
int bdl_build(const char *dir, uint64_t version, const char *privkey_path, uint8_t **out,
              size_t *out_len, char *err, size_t errlen) CAT_WUR CAT_NONNULL(1, 3, 4, 5, 6);

#endif
