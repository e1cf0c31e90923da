/*
 * The policy compiler: CPL text -> the tables of struct cpl (cpl_int.h).
 * One pass over the logical lines builds layers, rules and define blocks
 * (each condition and property is converted by cpl_item.c, strings are
 * interned); a second step resolves condition=NAME references, refuses
 * duplicate or undefined names, cycles and deep nesting, and builds the
 * evaluator's index. The first error stops compilation with file:line:col.
 */
#include "core/cpl_int.h"

#include <stdlib.h>
#include <string.h>

const char *const cpl_layer_names[CPL_L_COUNT] = {"proxy", "ssl-intercept", "ssl", "exception",
                                                  "forward"};

const char *
cpl_layer_name(enum cpl_layer l)
{
    return (unsigned)l < CPL_L_COUNT ? cpl_layer_names[l] : "?";
}

int
cpl_oom(struct cpl_cc *cc)
{
    return cpl_lex_err_here(&cc->lx, "out of memory");
}

/* Equal strings share one copy; lower folds case before comparing. */
int
cpl_intern(struct cpl_cc *cc, const char *s, size_t len, bool lower, struct cpl_str *out)
{
    struct cpl_arena *a = &cc->p->strs;
    uint32_t h = CPL_HASH_SEED;
    for (size_t i = 0; i < len; i++)
        h = cpl_hash_step(h, (unsigned char)(lower ? cpl_lower(s[i]) : s[i]));
    h = cpl_hash_fin(h, (uint32_t)len);
    size_t i = h & cc->intern_mask;
    for (; cc->intern[i] != 0; i = (i + 1) & cc->intern_mask) {
        const char *q = a->b + cc->intern[i];
        if (strlen(q) != len) /* arena strings never hold NUL (the lexer refuses it) */
            continue;
        size_t k = 0;
        while (k < len && (lower ? cpl_lower(s[k]) : s[k]) == q[k])
            k++;
        if (k == len) {
            out->off = cc->intern[i];
            out->len = (uint32_t)len;
            return CAT_OK;
        }
    }
    if (cpl_arena_add(a, s, len, lower, out) != CAT_OK)
        return cpl_oom(cc);
    cc->intern[i] = out->off;
    if (++cc->n_intern * 2 > cc->intern_mask) {
        size_t size = (cc->intern_mask + 1) * 2;
        uint32_t *t = calloc(size, sizeof(*t));
        if (t == NULL)
            return cpl_oom(cc);
        for (size_t k = 0; k <= cc->intern_mask; k++) {
            uint32_t off = cc->intern[k];
            if (off == 0)
                continue;
            const char *q = a->b + off;
            size_t qlen = strlen(q);
            uint32_t qh = CPL_HASH_SEED;
            for (size_t j = 0; j < qlen; j++)
                qh = cpl_hash_step(qh, (unsigned char)q[j]);
            size_t j = cpl_hash_fin(qh, (uint32_t)qlen) & (size - 1);
            while (t[j] != 0)
                j = (j + 1) & (size - 1);
            t[j] = off;
        }
        free(cc->intern);
        cc->intern = t;
        cc->intern_mask = size - 1;
    }
    return CAT_OK;
}

/* --- rules, layers, defines ------------------------------------------------ */

/* Conditions (and properties, for a rule) up to the end of the logical line. */
static int
cpl_items(struct cpl_cc *cc, enum cpl_in in, unsigned lmask, struct cpl_conds *out,
          struct cpl_props *pr)
{
    struct cpl_lex *lx = &cc->lx;
    struct cpl *p = cc->p;
    char shown[CPL_ERR_SHOW + 8];
    out->atom0 = (uint32_t)p->n_atoms;
    for (;;) {
        if (cpl_lex_skip(lx) != CAT_OK)
            return CAT_ERR;
        if (cpl_lex_eol(lx))
            break;
        if (cpl_lex_peek(lx) == '!')
            return cpl_lex_err_here(lx, "negation goes after the '=': expected NAME=!VALUE");
        struct cpl_tok nt;
        cpl_lex_name(lx, &nt);
        char c = cpl_lex_peek(lx);
        if (nt.len == 0)
            return cpl_lex_err_here(lx,
                                    "unexpected '%s': expected a condition (NAME=VALUE) or a "
                                    "property (NAME or NAME(VALUE))",
                                    cpl_show(shown, 8, lx->p, 1));
        if (c == '=') {
            if (p->n_atoms - out->atom0 >= CPL_MAX_CONDS)
                return cpl_lex_err(lx, nt.line, nt.col,
                                   "too many conditions on one line (at most %u)", CPL_MAX_CONDS);
            if (cpl_condition(cc, &nt, in, lmask) != CAT_OK)
                return CAT_ERR;
        } else if (c == '(' || cpl_word_end(lx)) {
            if (cpl_property(cc, &nt, in, lmask, pr) != CAT_OK)
                return CAT_ERR;
        } else {
            return cpl_lex_err_here(lx, "unexpected '%s' after '%s': expected '=', '(' or a blank",
                                    cpl_show(shown, 8, lx->p, 1),
                                    cpl_show(shown + 8, sizeof(shown) - 8, nt.p, nt.len));
        }
    }
    out->n = (uint32_t)(p->n_atoms - out->atom0);
    return CAT_OK;
}

static int
cpl_check_rules(struct cpl_cc *cc, unsigned line, unsigned col)
{
    if (cc->p->n_rules + cc->p->n_clauses >= CPL_MAX_RULES)
        return cpl_lex_err(&cc->lx, line, col, "too many rules (at most %u)", CPL_MAX_RULES);
    return CAT_OK;
}

static int
cpl_rule(struct cpl_cc *cc)
{
    struct cpl *p = cc->p;
    struct cpl_lex *lx = &cc->lx;
    unsigned line = lx->line, col = (unsigned)(lx->p - lx->line_start) + 1;
    if (cpl_check_rules(cc, line, col) != CAT_OK)
        return CAT_ERR;
    if (cc->define >= 0) {
        struct cpl_conds c;
        struct cpl_props unused = {0};
        if (cpl_items(cc, CPL_IN_DEFINE, 0, &c, &unused) != CAT_OK)
            return CAT_ERR;
        if (CPL_PUSH(p, clauses) != CAT_OK)
            return cpl_oom(cc);
        p->clauses[p->n_clauses++] = c;
        p->defines[cc->define].n++;
        return CAT_OK;
    }
    if (cc->layer < 0)
        return cpl_lex_err(lx, line, col,
                           "rule outside a layer: expected a layer header such as <proxy> first");
    struct cpl_lay *l = &p->layers[cc->layer];
    struct cpl_rule r = {.line = line};
    if (cpl_items(cc, CPL_IN_RULE, CPL_LM(l->kind), &r.c, &r.pr) != CAT_OK)
        return CAT_ERR;
    if (CPL_PUSH(p, rules) != CAT_OK)
        return cpl_oom(cc);
    p->rules[p->n_rules++] = r;
    p->layers[cc->layer].n++;
    return CAT_OK;
}

/* "<kind [label]> [guard conditions]": the lexer is at '<'. */
static int
cpl_layer(struct cpl_cc *cc)
{
    struct cpl *p = cc->p;
    struct cpl_lex *lx = &cc->lx;
    char shown[CPL_ERR_SHOW + 8];
    unsigned line = lx->line, col = (unsigned)(lx->p - lx->line_start) + 1;
    if (cc->define >= 0)
        return cpl_lex_err(lx, line, col,
                           "layer header inside define condition '%s': expected 'end' first",
                           p->strs.b + p->defines[cc->define].name.off);
    if (p->n_layers >= CPL_MAX_LAYER_COUNT)
        return cpl_lex_err(lx, line, col, "too many layers (at most %u)", CPL_MAX_LAYER_COUNT);
    lx->p++;
    if (cpl_lex_skip(lx) != CAT_OK)
        return CAT_ERR;
    struct cpl_tok kt, label = {0};
    cpl_lex_name(lx, &kt);
    int kind = -1;
    for (int k = 0; k < CPL_L_COUNT && kind < 0; k++)
        if (cpl_tok_is(&kt, cpl_layer_names[k]))
            kind = k;
    if (kind < 0 && kt.len == 0)
        return cpl_lex_err(lx, kt.line, kt.col,
                           "expected a layer name after '<': proxy, ssl-intercept, ssl, "
                           "exception or forward");
    if (kind < 0)
        return cpl_lex_err(lx, kt.line, kt.col,
                           "unknown layer '<%s>': expected <proxy>, <ssl-intercept>, <ssl>, "
                           "<exception> or <forward>",
                           cpl_show(shown, sizeof(shown), kt.p, kt.len));
    if (cpl_lex_skip(lx) != CAT_OK)
        return CAT_ERR;
    if (cpl_lex_peek(lx) != '>') {
        if (cpl_lex_peek(lx) == '"' || cpl_lex_peek(lx) == '\'') {
            if (cpl_lex_value(lx, &label) != CAT_OK)
                return CAT_ERR;
        } else {
            cpl_lex_name(lx, &label);
        }
        if (cpl_lex_skip(lx) != CAT_OK)
            return CAT_ERR;
    }
    if (cpl_lex_peek(lx) != '>')
        return cpl_lex_err_here(lx, "expected '>' to close the layer header");
    lx->p++;
    if (CPL_PUSH(p, layers) != CAT_OK)
        return cpl_oom(cc);
    struct cpl_lay l = {.kind = (uint8_t)kind, .line = line, .rule0 = (uint32_t)p->n_rules};
    if (label.len > 0 && cpl_intern(cc, label.p, label.len, false, &l.label) != CAT_OK)
        return CAT_ERR;
    struct cpl_props unused = {0};
    if (cpl_items(cc, CPL_IN_GUARD, CPL_LM(kind), &l.guard, &unused) != CAT_OK)
        return CAT_ERR;
    p->layers[p->n_layers] = l;
    cc->layer = (long)p->n_layers++;
    return CAT_OK;
}

/* "define condition NAME": the lexer is past "define". */
static int
cpl_define(struct cpl_cc *cc, const struct cpl_tok *dt)
{
    struct cpl *p = cc->p;
    struct cpl_lex *lx = &cc->lx;
    char shown[CPL_ERR_SHOW + 8];
    if (cc->define >= 0) {
        const struct cpl_define *d = &p->defines[cc->define];
        return cpl_lex_err(lx, dt->line, dt->col,
                           "'define' inside define condition '%s' (line %u): expected 'end' first",
                           p->strs.b + d->name.off, d->line);
    }
    if (cpl_lex_skip(lx) != CAT_OK)
        return CAT_ERR;
    struct cpl_tok kt, nt;
    cpl_lex_name(lx, &kt);
    if (!cpl_tok_is(&kt, "condition"))
        return cpl_lex_err(lx, kt.line, kt.col,
                           "unsupported definition 'define %s': expected 'define condition NAME'",
                           cpl_show(shown, sizeof(shown), kt.p, kt.len));
    if (cpl_lex_skip(lx) != CAT_OK)
        return CAT_ERR;
    cpl_lex_name(lx, &nt);
    if (!cpl_is_name(nt.p, nt.len) || !cpl_word_end(lx))
        return cpl_lex_err(lx, nt.line, nt.col,
                           "bad condition name: expected 1-64 letters, digits, '_', '.', '-' "
                           "after 'define condition'");
    if (cpl_lex_skip(lx) != CAT_OK)
        return CAT_ERR;
    if (!cpl_lex_eol(lx))
        return cpl_lex_err_here(lx,
                                "unexpected text after 'define condition %s': expected the "
                                "end of the line",
                                cpl_show(shown, sizeof(shown), nt.p, nt.len));
    if (p->n_defines >= CPL_MAX_DEFINES)
        return cpl_lex_err(lx, dt->line, dt->col, "too many define conditions (at most %u)",
                           CPL_MAX_DEFINES);
    if (CPL_PUSH(p, defines) != CAT_OK)
        return cpl_oom(cc);
    struct cpl_define d = {.line = nt.line, .col = nt.col, .clause0 = (uint32_t)p->n_clauses};
    if (cpl_intern(cc, nt.p, nt.len, true, &d.name) != CAT_OK)
        return CAT_ERR;
    p->defines[p->n_defines] = d;
    cc->define = (long)p->n_defines++;
    return CAT_OK;
}

/* "end [condition]": the lexer is past "end". */
static int
cpl_end(struct cpl_cc *cc, const struct cpl_tok *et)
{
    struct cpl *p = cc->p;
    struct cpl_lex *lx = &cc->lx;
    if (cc->define < 0)
        return cpl_lex_err(lx, et->line, et->col, "'end' without a 'define condition' before it");
    if (cpl_lex_skip(lx) != CAT_OK)
        return CAT_ERR;
    if (!cpl_lex_eol(lx)) {
        struct cpl_tok kt;
        cpl_lex_name(lx, &kt);
        if (!cpl_tok_is(&kt, "condition"))
            return cpl_lex_err(lx, kt.line, kt.col, "expected 'end' or 'end condition'");
        if (cpl_lex_skip(lx) != CAT_OK)
            return CAT_ERR;
        if (!cpl_lex_eol(lx))
            return cpl_lex_err_here(lx, "unexpected text after 'end condition'");
    }
    const struct cpl_define *d = &p->defines[cc->define];
    if (d->n == 0)
        return cpl_lex_err(lx, d->line, d->col,
                           "define condition '%s' is empty: expected at least one line of "
                           "conditions before 'end'",
                           p->strs.b + d->name.off);
    cc->define = -1;
    return CAT_OK;
}

static int
cpl_line(struct cpl_cc *cc)
{
    struct cpl_lex *lx = &cc->lx;
    if (cpl_lex_skip(lx) != CAT_OK)
        return CAT_ERR;
    if (cpl_lex_eol(lx))
        return CAT_OK;
    if (cpl_lex_peek(lx) == '<')
        return cpl_layer(cc);
    const char *save = lx->p;
    struct cpl_tok t;
    cpl_lex_name(lx, &t);
    if (cpl_word_end(lx) && cpl_tok_is(&t, "define"))
        return cpl_define(cc, &t);
    if (cpl_word_end(lx) && cpl_tok_is(&t, "end"))
        return cpl_end(cc, &t);
    lx->p = save; /* a name never spans lines, so the position is still right */
    return cpl_rule(cc);
}

/* --- resolution ------------------------------------------------------------ */

struct cpl_def_key {
    uint32_t name, idx;
};

static int
cpl_def_key_cmp(const void *a, const void *b)
{
    const struct cpl_def_key *x = a, *y = b;
    if (x->name != y->name)
        return x->name < y->name ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Height of define d (1 for one without references), refusing cycles and depth. */
static int
cpl_def_height(struct cpl_cc *cc, uint32_t d, uint32_t root, unsigned level, uint8_t *state,
               uint8_t *height)
{
    const struct cpl *p = cc->p;
    const struct cpl_define *def = &p->defines[d], *rdef = &p->defines[root];
    if (state[d] == 1)
        return cpl_lex_err(&cc->lx, def->line, def->col,
                           "define condition '%s' refers to itself (through condition=)",
                           p->strs.b + def->name.off);
    if (state[d] == 2 && level - 1 + height[d] <= CPL_MAX_DEPTH)
        return CAT_OK;
    if (level > CPL_MAX_DEPTH || state[d] == 2)
        return cpl_lex_err(&cc->lx, rdef->line, rdef->col,
                           "define condition '%s' is nested too deep (at most %u levels of "
                           "condition=)",
                           p->strs.b + rdef->name.off, CPL_MAX_DEPTH);
    state[d] = 1;
    unsigned h = 1;
    for (uint32_t c = def->clause0; c < def->clause0 + def->n; c++) {
        const struct cpl_conds *cl = &p->clauses[c];
        for (uint32_t a = cl->atom0; a < cl->atom0 + cl->n; a++) {
            const struct cpl_atom *at = &p->atoms[a];
            if (at->field != CPL_F_CONDITION)
                continue;
            for (uint32_t v = at->val0; v < at->val0 + at->n; v++) {
                uint32_t r = p->vals[v].id;
                if (cpl_def_height(cc, r, root, level + 1, state, height) != CAT_OK)
                    return CAT_ERR;
                if (height[r] + 1u > h)
                    h = height[r] + 1u;
            }
        }
    }
    state[d] = 2;
    height[d] = (uint8_t)h;
    return CAT_OK;
}

static int
cpl_resolve(struct cpl_cc *cc)
{
    struct cpl *p = cc->p;
    int rc = CAT_ERR;
    size_t nd = p->n_defines;
    struct cpl_def_key *keys = malloc((nd ? nd : 1) * sizeof(*keys));
    uint8_t *state = calloc(nd ? nd : 1, 2);
    if (keys == NULL || state == NULL) {
        cpl_oom(cc);
        goto out;
    }
    for (size_t i = 0; i < nd; i++)
        keys[i] = (struct cpl_def_key){p->defines[i].name.off, (uint32_t)i};
    qsort(keys, nd, sizeof(*keys), cpl_def_key_cmp);
    for (size_t i = 1; i < nd; i++)
        if (keys[i].name == keys[i - 1].name) {
            const struct cpl_define *d = &p->defines[keys[i].idx];
            cpl_lex_err(&cc->lx, d->line, d->col,
                        "duplicate define condition '%s' (first defined at line %u)",
                        p->strs.b + d->name.off, p->defines[keys[i - 1].idx].line);
            goto out;
        }
    for (size_t i = 0; i < cc->n_refs; i++) {
        union cpl_val *v = &p->vals[cc->refs[i].val];
        struct cpl_def_key k = {v->s.off, 0}, *hit = NULL;
        size_t lo = 0, hi = nd;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (keys[mid].name < k.name)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < nd && keys[lo].name == k.name)
            hit = &keys[lo];
        if (hit == NULL) {
            cpl_lex_err(&cc->lx, cc->refs[i].line, cc->refs[i].col,
                        "undefined condition '%s': expected a 'define condition %s' block",
                        p->strs.b + v->s.off, p->strs.b + v->s.off);
            goto out;
        }
        v->id = hit->idx;
    }
    for (size_t i = 0; i < nd; i++)
        if (cpl_def_height(cc, (uint32_t)i, (uint32_t)i, 1, state, state + nd) != CAT_OK)
            goto out;
    rc = CAT_OK;
out:
    free(keys);
    free(state);
    return rc;
}

static int
cpl_group_layers(struct cpl *p)
{
    p->kind_layers = malloc((p->n_layers ? p->n_layers : 1) * sizeof(*p->kind_layers));
    if (p->kind_layers == NULL)
        return CAT_ERR;
    size_t o = 0;
    for (unsigned k = 0; k < CPL_L_COUNT; k++) {
        p->kind_off[k] = (uint32_t)o;
        for (size_t i = 0; i < p->n_layers; i++)
            if (p->layers[i].kind == k)
                p->kind_layers[o++] = (uint32_t)i;
    }
    p->kind_off[CPL_L_COUNT] = (uint32_t)o;
    return CAT_OK;
}

struct cpl *
cpl_compile(const char *text, size_t len, const char *name, const struct cpl_cats *cats, char *err,
            size_t errlen)
{
    struct cpl_cc cc = {.layer = -1, .define = -1};
    cpl_lex_init(&cc.lx, text ? text : "", text ? len : 0, name, err, errlen);
    if (len > CPL_MAX_TEXT) {
        cpl_lex_err(&cc.lx, 1, 1, "policy too large (at most %u bytes)", CPL_MAX_TEXT);
        return NULL;
    }
    cc.p = calloc(1, sizeof(*cc.p));
    cc.intern_mask = 1023;
    cc.intern = calloc(cc.intern_mask + 1, sizeof(*cc.intern));
    if (cc.p == NULL || cc.intern == NULL || cpl_arena_init(&cc.p->strs) != CAT_OK) {
        cpl_oom(&cc);
        goto fail;
    }
    cc.p->cats = cats;
    while (cc.lx.p < cc.lx.end) {
        if (cpl_line(&cc) != CAT_OK)
            goto fail;
        if (cpl_lex_skip(&cc.lx) != CAT_OK)
            goto fail;
        if (!cpl_lex_eol(&cc.lx)) {
            char shown[CPL_ERR_SHOW + 8];
            cpl_lex_err_here(&cc.lx, "unexpected '%s': expected the end of the line",
                             cpl_show(shown, 8, cc.lx.p, 1));
            goto fail;
        }
        cpl_lex_newline(&cc.lx);
    }
    if (cc.define >= 0) {
        const struct cpl_define *d = &cc.p->defines[cc.define];
        cpl_lex_err(&cc.lx, d->line, d->col, "define condition '%s' has no matching 'end'",
                    cc.p->strs.b + d->name.off);
        goto fail;
    }
    if (cpl_resolve(&cc) != CAT_OK)
        goto fail;
    if (cpl_group_layers(cc.p) != CAT_OK || cpl_index_build(cc.p) != CAT_OK) {
        cpl_lex_err(&cc.lx, cc.lx.line, 1, "out of memory");
        goto fail;
    }
    cc.p->n_user_rules = cc.p->n_rules;
    free(cc.intern);
    free(cc.refs);
    return cc.p;
fail:
    free(cc.intern);
    free(cc.refs);
    cpl_free(cc.p);
    return NULL;
}

void
cpl_free(struct cpl *p)
{
    if (p == NULL)
        return;
    free(p->strs.b);
    free(p->layers);
    free(p->rules);
    free(p->atoms);
    free(p->vals);
    free(p->nets);
    free(p->clauses);
    free(p->defines);
    free(p->ix_rules);
    free(p->ix);
    free(p->ix_slots);
    free(p->kind_layers);
    free(p);
}

void
cpl_stats(const struct cpl *p, size_t *n_layers, size_t *n_rules)
{
    *n_layers = p->n_layers;
    *n_rules = p->n_user_rules;
}
