/*
 * Internals of the policy engine (core/cpl_*.c only): the compiled tables,
 * the lexer, the host hash shared by the compiler, the categories and the
 * evaluator. Everything a compiled policy holds is an index or an offset
 * into one of its arrays, so the tables can grow while compiling and are
 * read-only after.
 */
#ifndef CATENA_CORE_CPL_INT_H
#define CATENA_CORE_CPL_INT_H

#include "core/cpl.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPL_HOST_MAX 253 /* longest DNS name in text form, without the trailing dot */
#define CPL_ERR_SHOW 48  /* bytes of offending input quoted in an error */

/* A string in an arena: offset and length; offset 0 is the "no string" sentinel. */
struct cpl_str {
    uint32_t off, len;
};

/* Growable string arena with NUL-terminated entries. */
struct cpl_arena {
    char *b; /* owned */
    size_t len, cap;
};

/* What a condition tests. */
enum cpl_field {
    CPL_F_CLIENT_ADDR = 0,
    CPL_F_PROXY_PORT,
    CPL_F_CLIENT_PROTO,
    CPL_F_METHOD,
    CPL_F_URL_SCHEME,
    CPL_F_URL_HOST,
    CPL_F_URL_DOMAIN,
    CPL_F_URL_PORT,
    CPL_F_URL_PATH,
    CPL_F_URL_SUBSTRING,
    CPL_F_URL_ADDR,
    CPL_F_SRV_HOST,
    CPL_F_CERT_HOST,
    CPL_F_CERT_CAT,
    CPL_F_USER,
    CPL_F_EXCEPTION_ID,
    CPL_F_HEADER,
    CPL_F_CONDITION,
    CPL_F_COUNT
};

/* An address network; family 4 or 6 (IPv4-mapped v6 is stored as 4). */
struct cpl_net {
    uint8_t family, prefix;
    uint8_t addr[16];
};

/* One value of a condition; which member is meant follows from the field. */
union cpl_val {
    struct cpl_str s; /* hosts (lowercase), tokens (lowercase), strings */
    struct {
        uint16_t lo, hi;
    } port;
    uint32_t id; /* category id, define index, or index into nets */
};

/* One condition: field=[!](values...). Holds if any value matches (none, if neg). */
struct cpl_atom {
    uint8_t field;      /* enum cpl_field */
    bool neg;           /* =!value */
    bool ci;            /* string values compare case-insensitively (stored lowercase) */
    uint32_t val0, n;   /* p->vals[val0 .. val0+n); host values sorted by (len, bytes) */
    struct cpl_str hdr; /* request.header.NAME: NAME */
};

/* A conjunction of atoms (a rule's conditions, a guard, a define line). */
struct cpl_conds {
    uint32_t atom0, n;
};

/* Property bits: which properties a rule sets. */
enum {
    CPL_P_ALLOW = 1u << 0, /* allow, deny_reason and deny_unauthorized together */
    CPL_P_AUTH = 1u << 1,
    CPL_P_INTERCEPT = 1u << 2,
    CPL_P_KEYRING = 1u << 3,
    CPL_P_EMU_HOST = 1u << 4,
    CPL_P_SPLASH_TEXT = 1u << 5,
    CPL_P_SPLASH_URL = 1u << 6,
    CPL_P_VALIDATE = 1u << 7,
    CPL_P_IGNORE = 1u << 8, /* ign_mask says which bits */
    CPL_P_FORCE = 1u << 9,
    CPL_P_FORWARD = 1u << 10,
    CPL_P_INSPECT = 1u << 11,
};

struct cpl_props {
    uint32_t set;                                  /* CPL_P_* */
    uint8_t allow, intercept, validate, force_ssl; /* enum cpl_tri */
    uint8_t inspect;                               /* enum cpl_inspect */
    uint8_t ign_mask, ign_val;
    bool deny_unauth;
    /* string offsets; 0 = NULL */
    uint32_t deny_reason, auth_realm, keyring, emu_host, splash_text, splash_url, forward;
};

struct cpl_rule {
    struct cpl_conds c;
    uint32_t line;
    struct cpl_props pr;
};

struct cpl_define {
    struct cpl_str name; /* lowercase */
    uint32_t line, col;
    uint32_t clause0, n; /* p->clauses[clause0 .. clause0+n) */
};

struct cpl_lay {
    uint8_t kind; /* enum cpl_layer */
    uint32_t line;
    struct cpl_str label;
    struct cpl_conds guard;
    uint32_t rule0, n;      /* p->rules[rule0 .. rule0+n) */
    bool indexed;           /* candidates come from the index, see cpl_eval.c */
    uint32_t ix_fields;     /* 1u << field of the keyed atoms present */
    uint32_t always0, nalw; /* p->ix_rules[always0 ..): rules without a key atom */
    /* Prefix lengths of the keyed networks, [0] client.address, [1] url.address:
     * bit n of pfx4 for IPv4 /n, bit n%64 of pfx6[n/64] for IPv6 /n. */
    uint64_t pfx4[2], pfx6[2][3];
};

/* A slot of an open-addressing table: the hash is kept here so that a probe
 * that does not match never touches the entry (one cache miss, not two). */
struct cpl_slot {
    uint32_t hash;
    uint32_t idx; /* entry index + 1, 0 = empty */
};

/* Index entry: the rules of one layer whose key atom has this value. */
struct cpl_ix {
    uint32_t hash;
    uint32_t layer;
    uint32_t key; /* string offset, category id, or index into nets */
    uint16_t key_len;
    uint8_t field;
    uint32_t list0, n; /* p->ix_rules[list0 .. list0+n), ascending rule indices */
};

#define CPL_VEC(T, name)                                                                           \
    T *name;                                                                                       \
    size_t n_##name, cap_##name

struct cpl {
    struct cpl_arena strs;
    CPL_VEC(struct cpl_lay, layers);
    CPL_VEC(struct cpl_rule, rules);
    CPL_VEC(struct cpl_atom, atoms);
    CPL_VEC(union cpl_val, vals);
    CPL_VEC(struct cpl_net, nets);
    CPL_VEC(struct cpl_conds, clauses);
    CPL_VEC(struct cpl_define, defines);
    CPL_VEC(uint32_t, ix_rules);
    CPL_VEC(struct cpl_ix, ix);
    struct cpl_slot *ix_slots; /* owned: open addressing over ix */
    size_t ix_mask;
    uint32_t *kind_layers; /* owned: layer indices grouped by kind */
    uint32_t kind_off[CPL_L_COUNT + 1];
    size_t n_user_rules;         /* rules in layers (define lines excluded) */
    const struct cpl_cats *cats; /* borrowed */
};

/* --- vectors and the arena (cpl_lex.c) ------------------------------------ */

/** Makes room for one more element; CAT_ERR on overflow or OOM. */
int cpl_vec_grow(void **base, size_t *cap, size_t n, size_t elem) CAT_WUR;
#define CPL_PUSH(p, name)                                                                          \
    cpl_vec_grow((void **)&(p)->name, &(p)->cap_##name, (p)->n_##name, sizeof(*(p)->name))

/** Initialises an arena with the offset-0 sentinel. */
int cpl_arena_init(struct cpl_arena *a) CAT_WUR;
/** Appends s (NUL added); lower folds ASCII case. CAT_ERR on OOM/overflow. */
int cpl_arena_add(struct cpl_arena *a, const char *s, size_t len, bool lower,
                  struct cpl_str *out) CAT_WUR;

/* --- host names ------------------------------------------------------------ */

#define CPL_HASH_SEED 2166136261u
static inline uint32_t
cpl_hash_step(uint32_t h, unsigned char c)
{
    return (h ^ c) * 16777619u;
}
static inline uint32_t
cpl_hash_fin(uint32_t h, uint32_t salt)
{
    h ^= salt * 0x9e3779b1u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}
/* Hosts are hashed from the right so that the hash of every label-boundary
 * suffix falls out of one pass (see cpl_cats_lookup, cpl_eval.c). */
static inline uint32_t
cpl_hash_host(const char *s, size_t len)
{
    uint32_t h = CPL_HASH_SEED;
    while (len > 0)
        h = cpl_hash_step(h, (unsigned char)s[--len]);
    return h;
}
static inline char
cpl_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/**
 * Normalises a host into out (lowercase, trailing dot and [ ] of an IPv6
 * literal removed). Returns its length, or -1 if longer than CPL_HOST_MAX.
 */
int cpl_host_norm(const char *in, size_t len, char out[CPL_HOST_MAX + 1]);
/** Does a normalised host consist of valid labels (and is it not empty)? */
bool cpl_host_valid(const char *s, size_t len);
/** Is a normalised host an IP literal (no domain structure)? */
bool cpl_host_is_ip(const char *s, size_t len);

/* --- categories (cpl_cat.c) ------------------------------------------------ */

/** Category id of name (case-insensitive); 0 is "none"; -1 if unknown. */
int cpl_cats_id(const struct cpl_cats *c, const char *name, size_t len);
/**
 * Category ids of a normalised host: sets *ids and *n (n == 0: unrated, i.e. only
 * "none"). c may be NULL.
 */
void cpl_cats_lookup(const struct cpl_cats *c, const char *host, size_t len, const uint16_t **ids,
                     size_t *n);
/** Name of category id (0: "none"). */
const char *cpl_cats_name(const struct cpl_cats *c, unsigned id);
/** Number of categories, "none" included. */
size_t cpl_cats_count(const struct cpl_cats *c);

/* --- lexer (cpl_lex.c) ---------------------------------------------------- */

/* A token: a view into the text and where it starts. */
struct cpl_tok {
    const char *p;
    size_t len;
    unsigned line, col;
    bool quoted;
};

struct cpl_lex {
    const char *name;
    const char *p, *end;
    const char *line_start; /* of the current physical line */
    const char *logical;    /* start of the current logical line */
    unsigned line;
    char *err; /* borrowed: caller's buffer */
    size_t errlen;
    bool failed;
};

void cpl_lex_init(struct cpl_lex *lx, const char *text, size_t len, const char *name, char *err,
                  size_t errlen);
/** Formats "name:line:col: msg" into the error buffer (first error wins); returns CAT_ERR. */
int cpl_lex_err(struct cpl_lex *lx, unsigned line, unsigned col, const char *fmt, ...)
    CAT_PRINTF(4, 5);
/** Error at the current position. */
int cpl_lex_err_here(struct cpl_lex *lx, const char *fmt, ...) CAT_PRINTF(2, 3);
/** Copies up to CPL_ERR_SHOW bytes of s into buf for an error, unprintables as '?'. */
const char *cpl_show(char *buf, size_t cap, const char *s, size_t len);
/**
 * Skips blanks, comments and '\' continuations within the logical line.
 * Returns CAT_ERR if the line grew too long or holds a control character.
 */
int cpl_lex_skip(struct cpl_lex *lx) CAT_WUR;
/** After cpl_lex_skip: at the end of the logical line (or the text)? */
bool cpl_lex_eol(const struct cpl_lex *lx);
/** Consumes the newline ending a logical line and starts the next. */
void cpl_lex_newline(struct cpl_lex *lx);
/** Next byte, or 0 at the end. */
static inline char
cpl_lex_peek(const struct cpl_lex *lx)
{
    return lx->p < lx->end ? *lx->p : '\0';
}
/** Reads a name ([A-Za-z0-9_.-]+); an empty token if none. */
void cpl_lex_name(struct cpl_lex *lx, struct cpl_tok *t);
/**
 * Reads a value: a quoted string ("..." or '...', no escapes), or a run of
 * bytes up to a blank, ',', '(', ')' or the end of the line.
 * CAT_ERR on an unterminated quote or an empty value.
 */
int cpl_lex_value(struct cpl_lex *lx, struct cpl_tok *t) CAT_WUR;
/** Does the name token equal the lowercase word w (case-insensitively)? */
bool cpl_tok_is(const struct cpl_tok *t, const char *w);

/* --- compiler (cpl_parse.c, cpl_item.c) ----------------------------------- */

/* A condition=NAME reference waiting for its define. */
struct cpl_ref {
    uint32_t val; /* index into p->vals: holds the name until resolved to a define index */
    unsigned line, col;
};

/* What is being parsed on the current logical line. */
enum cpl_in { CPL_IN_RULE, CPL_IN_GUARD, CPL_IN_DEFINE };

/* Compilation state, dropped when cpl_compile returns. */
struct cpl_cc {
    struct cpl *p; /* owned until returned */
    struct cpl_lex lx;
    uint32_t *intern; /* owned: string offsets, 0 = empty slot */
    size_t intern_mask, n_intern;
    CPL_VEC(struct cpl_ref, refs);
    long layer;  /* current layer, -1 before the first */
    long define; /* define being read, -1 outside */
};

extern const char *const cpl_layer_names[CPL_L_COUNT];
#define CPL_LM(k) (1u << (k))

/** Reports out of memory at the current position; returns CAT_ERR. */
int cpl_oom(struct cpl_cc *cc);
/** Adds a string once: equal strings (after folding, if lower) share an offset. */
int cpl_intern(struct cpl_cc *cc, const char *s, size_t len, bool lower,
               struct cpl_str *out) CAT_WUR;
/** Is the lexer at the end of a word (blank, comment, continuation, end of line)? */
bool cpl_word_end(const struct cpl_lex *lx);
/** 1-64 of [A-Za-z0-9_.-]: define, realm, keyring and forwarding host names. */
bool cpl_is_name(const char *s, size_t len);
/**
 * NAME=VALUE...: the lexer is at '='; appends one atom. in and lmask (the
 * layer kind's bit) decide which conditions are allowed.
 */
int cpl_condition(struct cpl_cc *cc, const struct cpl_tok *nt, enum cpl_in in,
                  unsigned lmask) CAT_WUR;
/** NAME or NAME(ARGS): the lexer is just past NAME; sets pr. */
int cpl_property(struct cpl_cc *cc, const struct cpl_tok *nt, enum cpl_in in, unsigned lmask,
                 struct cpl_props *pr) CAT_WUR;

/* --- compiler and evaluator ------------------------------------------------ */

/** Builds the per-layer host/category index (cpl_eval.c). CAT_ERR on OOM. */
int cpl_index_build(struct cpl *p) CAT_WUR;
/** Evaluates layers without the index (reference semantics for tests and the fuzzer). */
void cpl_eval_linear(const struct cpl *p, enum cpl_layer which, const struct cpl_txn *t,
                     struct cpl_decision *d);

#endif
