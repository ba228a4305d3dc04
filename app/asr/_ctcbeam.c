/* Lexicon-free CTC prefix beam search and CTC forced alignment, in C.
 *
 * The same search as the Python engine of app/asr/beam.py without words (no lexicon, LM,
 * hotwords or word scores): hypotheses are label prefixes (repeats merged, no blanks) with
 * the log-scores of their paths ending in a blank (pb) and in their last label (pnb). Each
 * frame every hypothesis stays (blank, or its last label again) or is extended by a token
 * within `token_threshold` of the frame's best; paths that reach the same prefix merge with
 * log-add (or max). Hypotheses below the best by more than `beam_threshold` are dropped and
 * at most `beam_size` kept.
 *
 * Prefixes live in a trie (parent, token) with a hash map from (parent, token) to child, so
 * a prefix is created once and merging is an index comparison. Loaded with ctypes by
 * app/asr/fastbeam.py; it uses no Python API. Built by setup.py as an optional extension:
 * without a compiler the server falls back to the other engines.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int vocab;
    int n_nodes, cap_nodes;
    int *parent, *token;     /* per prefix node; node 0 is the empty prefix */
    int *stamp, *slot;       /* per node: frame stamp and candidate slot of the current frame */
    int64_t *keys;           /* hash of (parent, token) -> child; key -1 is empty */
    int *vals;
    int64_t cap_hash, n_hash;
    int size;                /* final beam */
    int *prefix;
    double *pb, *pnb;
} Beam;

static double log_add(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

static double combine(double a, double b, int use_log_add) {
    return use_log_add ? log_add(a, b) : (a > b ? a : b);
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

static int grow_hash(Beam *b) {
    int64_t cap = b->cap_hash ? b->cap_hash * 2 : 1024;
    int64_t *keys = malloc(sizeof(int64_t) * cap);
    int *vals = malloc(sizeof(int) * cap);
    if (!keys || !vals) { free(keys); free(vals); return -1; }
    for (int64_t i = 0; i < cap; i++) keys[i] = -1;
    for (int64_t i = 0; i < b->cap_hash; i++) {
        if (b->keys[i] < 0) continue;
        int64_t h = (int64_t)(mix((uint64_t)b->keys[i]) & (uint64_t)(cap - 1));
        while (keys[h] >= 0) h = (h + 1) & (cap - 1);
        keys[h] = b->keys[i];
        vals[h] = b->vals[i];
    }
    free(b->keys); free(b->vals);
    b->keys = keys; b->vals = vals; b->cap_hash = cap;
    return 0;
}

static int grow_nodes(Beam *b) {
    int cap = b->cap_nodes ? b->cap_nodes * 2 : 1024;
    int *arrays[4] = {b->parent, b->token, b->stamp, b->slot};
    for (int i = 0; i < 4; i++) {
        int *p = realloc(arrays[i], sizeof(int) * (size_t)cap);
        if (!p) return -1;
        arrays[i] = p;
    }
    b->parent = arrays[0]; b->token = arrays[1]; b->stamp = arrays[2]; b->slot = arrays[3];
    for (int i = b->cap_nodes; i < cap; i++) b->stamp[i] = 0;
    b->cap_nodes = cap;
    return 0;
}

/* The child of `parent` by `token`, created on first use; -1 when out of memory. */
static int child(Beam *b, int parent, int token) {
    if ((b->n_hash + 1) * 2 > b->cap_hash && grow_hash(b) < 0) return -1;
    int64_t key = (int64_t)parent * b->vocab + token;
    int64_t h = (int64_t)(mix((uint64_t)key) & (uint64_t)(b->cap_hash - 1));
    while (b->keys[h] >= 0) {
        if (b->keys[h] == key) return b->vals[h];
        h = (h + 1) & (b->cap_hash - 1);
    }
    if (b->n_nodes == b->cap_nodes && grow_nodes(b) < 0) return -1;
    int node = b->n_nodes++;
    b->parent[node] = parent;
    b->token[node] = token;
    b->keys[h] = key;
    b->vals[h] = node;
    b->n_hash++;
    return node;
}

typedef struct { int prefix; double pb, pnb, score; } Cand;

static int by_score_desc(const void *x, const void *y) {
    double a = ((const Cand *)x)->score, c = ((const Cand *)y)->score;
    return (a < c) - (a > c);
}

void ctcb_free(Beam *b) {
    if (!b) return;
    free(b->parent); free(b->token); free(b->stamp); free(b->slot);
    free(b->keys); free(b->vals);
    free(b->prefix); free(b->pb); free(b->pnb);
    free(b);
}

/* Search `emissions` [frames, vocab] (log-probabilities, row-major). Returns the final beam,
 * best first, or NULL when out of memory. `token_cap` <= 0: no cap on tokens per frame. */
Beam *ctcb_search(const float *emissions, int frames, int vocab, int blank, int beam_size, double beam_threshold,
                  double token_threshold, int token_cap, int use_log_add) {
    Beam *b = calloc(1, sizeof(Beam));
    Cand *cands = NULL;
    int *tokens = malloc(sizeof(int) * (size_t)vocab);
    int *beam_prefix = malloc(sizeof(int) * (size_t)beam_size);
    double *beam_pb = malloc(sizeof(double) * (size_t)beam_size), *beam_pnb = malloc(sizeof(double) * (size_t)beam_size);
    int cap_cands = 0, n_beam = 1;
    if (!b || !tokens || !beam_prefix || !beam_pb || !beam_pnb) goto fail;
    b->vocab = vocab;
    if (grow_nodes(b) < 0 || grow_hash(b) < 0) goto fail;
    b->n_nodes = 1;
    b->parent[0] = -1;
    b->token[0] = -1;
    beam_prefix[0] = 0; beam_pb[0] = 0.0; beam_pnb[0] = -INFINITY;

    for (int t = 0; t < frames; t++) {
        const float *row = emissions + (size_t)t * vocab;
        double best_token = -INFINITY;
        for (int c = 0; c < vocab; c++) if (row[c] > best_token) best_token = row[c];
        int k = 0;
        for (int c = 0; c < vocab; c++)
            if (c != blank && row[c] >= best_token - token_threshold) tokens[k++] = c;
        if (token_cap > 0 && k > token_cap) {  /* keep the token_cap best (selection; vocab is small) */
            for (int i = 0; i < token_cap; i++) {
                int m = i;
                for (int j = i + 1; j < k; j++) if (row[tokens[j]] > row[tokens[m]]) m = j;
                int tmp = tokens[i]; tokens[i] = tokens[m]; tokens[m] = tmp;
            }
            k = token_cap;
        }
        int need = n_beam * (k + 1);
        if (need > cap_cands) {
            Cand *p = realloc(cands, sizeof(Cand) * (size_t)need);
            if (!p) goto fail;
            cands = p; cap_cands = need;
        }
        int n = 0, stamp = t + 1;
        for (int i = 0; i < n_beam; i++) {
            int p = beam_prefix[i], last = b->token[p];
            double pb = beam_pb[i], pnb = beam_pnb[i], total = combine(pb, pnb, use_log_add);
            double stay_b = total + row[blank], stay_nb = last >= 0 ? pnb + row[last] : -INFINITY;
            for (int j = -1; j < k; j++) {
                int q = p;
                double add_b = stay_b, add_nb = stay_nb;
                if (j >= 0) {
                    int c = tokens[j];
                    q = child(b, p, c);
                    if (q < 0) goto fail;
                    add_b = -INFINITY;
                    add_nb = (c == last ? pb : total) + row[c];
                }
                if (b->stamp[q] == stamp) {
                    Cand *m = &cands[b->slot[q]];
                    m->pb = combine(m->pb, add_b, use_log_add);
                    m->pnb = combine(m->pnb, add_nb, use_log_add);
                } else {
                    b->stamp[q] = stamp;
                    b->slot[q] = n;
                    cands[n].prefix = q; cands[n].pb = add_b; cands[n].pnb = add_nb;
                    n++;
                }
            }
        }
        double best = -INFINITY;
        for (int i = 0; i < n; i++) {
            cands[i].score = combine(cands[i].pb, cands[i].pnb, use_log_add);
            if (cands[i].score > best) best = cands[i].score;
        }
        if (best == -INFINITY) { n_beam = 0; break; }
        int kept = 0;
        for (int i = 0; i < n; i++)
            if (cands[i].score >= best - beam_threshold && cands[i].score > -INFINITY) cands[kept++] = cands[i];
        if (kept > beam_size) qsort(cands, (size_t)kept, sizeof(Cand), by_score_desc);
        n_beam = kept < beam_size ? kept : beam_size;
        for (int i = 0; i < n_beam; i++) {
            beam_prefix[i] = cands[i].prefix; beam_pb[i] = cands[i].pb; beam_pnb[i] = cands[i].pnb;
        }
    }
    /* the final beam, best first */
    if (n_beam > 0) {
        Cand *final = malloc(sizeof(Cand) * (size_t)n_beam);
        b->prefix = malloc(sizeof(int) * (size_t)n_beam);
        b->pb = malloc(sizeof(double) * (size_t)n_beam);
        b->pnb = malloc(sizeof(double) * (size_t)n_beam);
        if (!final || !b->prefix || !b->pb || !b->pnb) { free(final); goto fail; }
        for (int i = 0; i < n_beam; i++) {
            final[i].prefix = beam_prefix[i]; final[i].pb = beam_pb[i]; final[i].pnb = beam_pnb[i];
            final[i].score = combine(beam_pb[i], beam_pnb[i], use_log_add);
        }
        qsort(final, (size_t)n_beam, sizeof(Cand), by_score_desc);
        for (int i = 0; i < n_beam; i++) {
            b->prefix[i] = final[i].prefix; b->pb[i] = final[i].pb; b->pnb[i] = final[i].pnb;
        }
        free(final);
    }
    b->size = n_beam;
    free(cands); free(tokens); free(beam_prefix); free(beam_pb); free(beam_pnb);
    return b;
fail:
    free(cands); free(tokens); free(beam_prefix); free(beam_pb); free(beam_pnb);
    ctcb_free(b);
    return NULL;
}

int ctcb_size(const Beam *b) { return b->size; }

/* Hypothesis i: writes its pb and pnb, returns its label count. */
int ctcb_scores(const Beam *b, int i, double *pb, double *pnb) {
    *pb = b->pb[i];
    *pnb = b->pnb[i];
    int n = 0;
    for (int p = b->prefix[i]; p > 0; p = b->parent[p]) n++;
    return n;
}

/* Hypothesis i's labels into `out` (room for the count ctcb_scores returned). */
void ctcb_labels(const Beam *b, int i, int *out, int n) {
    for (int p = b->prefix[i]; p > 0 && n > 0; p = b->parent[p]) out[--n] = b->token[p];
}

/* Best CTC alignment of `labels` [n] to `emissions` [frames, vocab], exactly as
 * app.asr.alignment.align_ctc (same tie-breaking). Writes label i's frames [starts[i], ends[i]).
 * Returns 0, -1 if the labels cannot be aligned, -2 when out of memory. */
int ctcb_align(const float *emissions, int frames, int vocab, int blank, const int *labels, int n, int *starts, int *ends) {
    if (n == 0 || frames == 0) return 0;
    int size = 2 * n + 1;
    int *states = malloc(sizeof(int) * (size_t)size);
    double *alpha = malloc(sizeof(double) * (size_t)size), *next = malloc(sizeof(double) * (size_t)size);
    signed char *back = malloc((size_t)frames * (size_t)size);
    int rc = 0;
    if (!states || !alpha || !next || !back) { rc = -2; goto done; }
    memset(back, 0, (size_t)size);  /* frame 0 has no predecessor */
    for (int s = 0; s < size; s++) { states[s] = s % 2 ? labels[s / 2] : blank; alpha[s] = -INFINITY; }
    alpha[0] = emissions[states[0]];
    if (size > 1) alpha[1] = emissions[states[1]];
    for (int t = 1; t < frames; t++) {
        const float *row = emissions + (size_t)t * vocab;
        signed char *bk = back + (size_t)t * size;
        for (int s = 0; s < size; s++) {
            double stay = alpha[s], from1 = s >= 1 ? alpha[s - 1] : -INFINITY;
            int skip_ok = s >= 2 && s % 2 == 1 && states[s] != states[s - 2];
            double from2 = skip_ok ? alpha[s - 2] : -INFINITY;
            signed char choice = from1 > stay ? 1 : 0;
            double best = from1 > stay ? from1 : stay;
            if (from2 > best) { choice = 2; best = from2; }
            bk[s] = choice;
            next[s] = best + row[states[s]];
        }
        double *tmp = alpha; alpha = next; next = tmp;
    }
    int state = alpha[2 * n] >= alpha[2 * n - 1] ? 2 * n : 2 * n - 1;
    if (alpha[state] == -INFINITY) { rc = -1; goto done; }
    for (int i = 0; i < n; i++) { starts[i] = -1; ends[i] = -1; }
    for (int t = frames - 1; t >= 0; t--) {
        if (state % 2 == 1) {
            int i = state / 2;
            if (ends[i] < 0) ends[i] = t + 1;
            starts[i] = t;
        }
        state -= back[(size_t)t * size + state];
    }
done:
    free(states); free(alpha); free(next); free(back);
    return rc;
}
