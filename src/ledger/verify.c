#include "ledger/verify.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "crypto/hash.h"
#include "ledger/chunk.h"
#include "ledger/claims.h"
#include "ledger/entry.h"
#include "ledger/merkle.h"

#define MAX_NODES 1024

/* Compact Merkle frontier: the roots of the perfect subtrees of the current size, largest first.
 * Same shape as merkle.c (RFC 9162 split), but kept in memory only: O(log n). */
typedef struct {
    uint8_t h[64][32];
    uint8_t height[64];
    int n;
    uint64_t size;
} frontier;

static void frontier_append(frontier *f, const uint8_t leaf[32])
{
    memcpy(f->h[f->n], leaf, 32);
    f->height[f->n] = 0;
    f->n++;
    while (f->n >= 2 && f->height[f->n - 1] == f->height[f->n - 2]) {
        uint8_t out[32];
        cl_sha256_2(f->h[f->n - 2], 32, f->h[f->n - 1], 32, out);
        memcpy(f->h[f->n - 2], out, 32);
        f->height[f->n - 2]++;
        f->n--;
    }
    f->size++;
}

static void frontier_root(const frontier *f, uint8_t out[32])
{
    memcpy(out, f->h[f->n - 1], 32);
    for (int i = f->n - 2; i >= 0; i--)
        cl_sha256_2(f->h[i], 32, out, 32, out);
}

typedef struct {
    uint8_t id[32];
    cl_cert *cert;
} node_rec;

typedef struct {
    cl_fs *fs;
    cl_verify_report *rep;
    frontier tree;
    node_rec *nodes;
    size_t nnodes;
    cl_cert *identity; /* service identity in force */
    uint64_t identity_version;
    uint64_t expect, last_view;
    int saw_header;
    cl_verify_progress_cb progress;
    void *arg;
    uint64_t total_bytes;
    cl_merkle_audit *audit; /* the data directory's merkle/, or NULL */
} vstate;

/* One recomputed leaf: into the verifier's frontier and, when a store is audited, compared with
 * the stored leaf (an I/O error there is reported as damage to the store, not the ledger). */
static void leaf_append(vstate *v, const uint8_t leaf[32])
{
    frontier_append(&v->tree, leaf);
    if (v->audit != NULL && cl_merkle_audit_leaf(v->audit, leaf) < 0 && v->rep->merkle_what[0] == 0)
        snprintf(v->rep->merkle_what, sizeof v->rep->merkle_what,
                 "merkle/level_00 record %" PRIu64 " is not the leaf recomputed from the chunks",
                 v->tree.size - 1);
}

static int fail(vstate *v, int rc, uint64_t seqno, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(vstate *v, int rc, uint64_t seqno, uint64_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->rep->what, sizeof v->rep->what, fmt, ap);
    va_end(ap);
    v->rep->bad_seqno = seqno;
    v->rep->offset = off;
    return rc;
}

static node_rec *find_node(vstate *v, const uint8_t id[32])
{
    for (size_t i = 0; i < v->nnodes; i++)
        if (memcmp(v->nodes[i].id, id, 32) == 0) /* lint:public: node ids */
            return &v->nodes[i];
    return NULL;
}

static int cert_from_json(const uint8_t *value, size_t len, const char *field, json_t **jout,
                          cl_cert **out)
{
    json_t *j = NULL;
    CL_TRY(cl_json_parse((const char *)value, len, 1u << 20, &j, NULL, 0));
    const char *pem;
    size_t pl;
    int rc = cl_json_get_str(j, field, &pem, &pl);
    if (rc == CL_OK)
        rc = cl_cert_from_pem(pem, pl, out);
    if (rc < 0 || jout == NULL)
        json_decref(j);
    else
        *jout = j;
    return rc;
}

static int check_internal(vstate *v, const cl_entry_view *e, uint64_t off)
{
    cl_internal_pub ip;
    if (cl_internal_pub_decode(e->pub, e->pub_len, &ip) != CL_OK)
        return fail(v, CL_EFORMAT, e->seqno, off, "malformed internal-table write");
    if (ip.table == CL_TABLE_SECRETS && !(e->flags & CL_ENTRY_F_ENCRYPTED))
        return fail(v, CL_EFORMAT, e->seqno, off, "ledger-secret record is not encrypted");
    if (ip.op != CL_OP_PUT)
        return CL_OK;
    if (ip.table == CL_TABLE_SERVICE) {
        json_t *j = NULL;
        cl_cert *c = NULL, *endorse = NULL;
        int rc = cert_from_json(ip.value, ip.value_len, "cert", &j, &c);
        if (rc < 0)
            return fail(v, rc, e->seqno, off, "service identity record: bad certificate");
        const char *epem, *type;
        size_t el, tl;
        int has_e = cl_json_opt_str(j, "endorsement", &epem, &el) == CL_OK;
        int trc = cl_json_opt_str(j, "ledgerType", &type, &tl);
        const char *want = v->rep->private_ledger ? "private" : "public";
        if (trc == CL_OK && (tl != strlen(want) || strcmp(type, want) != 0)) {
            rc = fail(v, CL_EFORMAT, e->seqno, off,
                      "the chunk header's ledger type differs from the signed service record");
        } else if (trc != CL_OK && (trc != CL_ENOENT || v->identity == NULL)) {
            rc = fail(v, CL_EFORMAT, e->seqno, off,
                      "service identity record: missing or bad ledgerType");
        } else if (v->identity == NULL) {
            /* the first identity is self-signed */
            if (has_e || cl_cert_verify_signed_by(c, c->pub) != CL_OK)
                rc = fail(v, CL_EENDORSE, e->seqno, off,
                          "first service identity is not a self-signed certificate");
        } else if (!has_e) {
            rc = fail(v, CL_EENDORSE, e->seqno, off,
                      "service identity change without an endorsement of the previous identity");
        } else if ((rc = cl_cert_from_pem(epem, el, &endorse)) < 0) {
            rc = fail(v, rc, e->seqno, off, "service identity change: bad endorsement certificate");
        } else if (!cl_cert_same_key(endorse, v->identity->pub) ||
                   cl_cert_verify_signed_by(endorse, c->pub) != CL_OK ||
                   cl_cert_verify_signed_by(c, c->pub) != CL_OK) {
            rc = fail(v, CL_EENDORSE, e->seqno, off,
                      "new service identity does not endorse the previous one");
        }
        cl_cert_free(endorse);
        json_decref(j);
        if (rc < 0) {
            cl_cert_free(c);
            return rc;
        }
        cl_cert_free(v->identity);
        v->identity = c;
        v->identity_version++;
        return CL_OK;
    }
    if (ip.table == CL_TABLE_NODES) {
        cl_cert *c = NULL;
        int rc = cert_from_json(ip.value, ip.value_len, "cert", NULL, &c);
        if (rc < 0)
            return fail(v, rc, e->seqno, off, "node record: bad certificate");
        uint8_t id[32], want[32];
        if (v->identity == NULL || cl_cert_verify_signed_by(c, v->identity->pub) != CL_OK) {
            cl_cert_free(c);
            return fail(v, CL_EENDORSE, e->seqno, off,
                        "node certificate is not endorsed by the service identity in force");
        }
        if (ip.key_len != 64 || cl_hex_decode((const char *)ip.key, 64, want, 32) != CL_OK ||
            cl_cert_spki_sha256(c, id) != CL_OK || !cl_ct_equal(id, want, 32)) {
            cl_cert_free(c);
            return fail(v, CL_ENODEID, e->seqno, off,
                        "node id is not the SHA-256 of the node certificate's public key");
        }
        node_rec *n = find_node(v, id);
        if (n == NULL) {
            if (v->nnodes == MAX_NODES) {
                cl_cert_free(c);
                return fail(v, CL_EOVERFLOW, e->seqno, off, "too many nodes");
            }
            node_rec *p = cl_realloc(v->nodes, (v->nnodes + 1) * sizeof *p);
            if (p == NULL) {
                cl_cert_free(c);
                return CL_ENOMEM;
            }
            v->nodes = p;
            n = &p[v->nnodes++];
            memcpy(n->id, id, 32);
            n->cert = NULL;
        }
        cl_cert_free(n->cert);
        n->cert = c;
    }
    return CL_OK;
}

static int check_user(vstate *v, const cl_entry_view *e, uint64_t off)
{
    cl_user_pub up;
    if (cl_user_pub_decode(e->pub, e->pub_len, &up) != CL_OK || up.collection_len == 0)
        return fail(v, CL_EFORMAT, e->seqno, off, "malformed user entry");
    if (v->rep->private_ledger != !!(e->flags & CL_ENTRY_F_ENCRYPTED))
        return fail(v, CL_EFORMAT, e->seqno, off,
                    v->rep->private_ledger ? "user entry stored in plaintext in a private ledger"
                                           : "encrypted user entry in a public ledger");
    if (e->flags & CL_ENTRY_F_ENCRYPTED)
        return CL_OK; /* the claims digest is covered by the leaf; contents need the secret */
    cl_user_priv pv;
    if (cl_user_priv_decode(e->priv, e->priv_len, &pv) != CL_OK)
        return fail(v, CL_EFORMAT, e->seqno, off, "malformed user entry contents");
    uint8_t d[32];
    int rc = cl_claims_ledger_entry_digest(pv.claims_key, 32, (const char *)up.collection,
                                           up.collection_len, (const char *)pv.contents,
                                           pv.contents_len, d);
    if (rc < 0 || !cl_ct_equal(d, e->claims_digest, 32))
        return fail(v, CL_ECLAIMS, e->seqno, off,
                    "claims digest does not match the entry's collection and contents");
    return CL_OK;
}

static int check_signature(vstate *v, const cl_entry_view *e, uint64_t off)
{
    static const uint8_t zero[32];
    cl_sig_pub sp;
    if (cl_sig_pub_decode(e->pub, e->pub_len, &sp) != CL_OK || e->priv_len != 0 || e->flags != 0 ||
        !cl_ct_equal(e->claims_digest, zero, 32))
        return fail(v, CL_EFORMAT, e->seqno, off, "malformed signature entry");
    if (sp.tree_size != e->seqno || v->tree.size != e->seqno)
        return fail(v, CL_EFORMAT, e->seqno, off,
                    "signature covers tree size %" PRIu64 ", expected %" PRIu64, sp.tree_size,
                    e->seqno);
    uint8_t root[32];
    frontier_root(&v->tree, root);
    if (!cl_ct_equal(root, sp.root, 32))
        return fail(v, CL_EROOT, e->seqno, off,
                    "signed Merkle root differs from the root recomputed from the entries");
    node_rec *n = find_node(v, sp.node_id);
    if (n == NULL)
        return fail(v, CL_ENODEID, e->seqno, off, "signature by a node not in the nodes table");
    if (cl_key_verify_prehashed(n->cert->pub, sp.root, 32, sp.sig, sp.sig_len) != CL_OK)
        return fail(v, CL_ESIG, e->seqno, off, "node signature over the root does not verify");
    v->rep->signatures++;
    v->rep->last_signed = e->seqno;
    v->rep->last_view = e->view;
    memcpy(v->rep->last_root, sp.root, 32);
    return CL_OK;
}

static int verify_chunk(vstate *v, const char *path, const char *name, const cl_chunk_name *cn,
                        int last)
{
    cl_verify_report *rep = v->rep;
    snprintf(rep->file, sizeof rep->file, "%s", name);
    cl_chunk_reader r;
    int rc = cl_chunk_reader_open(&r, v->fs, path);
    if (rc < 0)
        return fail(v, rc, v->expect, 0, "cannot open chunk file");
    uint8_t h[CL_CHUNK_HEADER_LEN];
    size_t got = 0;
    uint64_t start;
    int priv;
    const char *why = NULL;
    rc = cl_file_pread(r.f, h, sizeof h, 0, &got);
    if (rc == CL_OK && cl_chunk_header_decode(h, got, &start, &priv, &why) != CL_OK)
        rc = fail(v, CL_EFORMAT, v->expect, 0, "%s", why);
    else if (rc == CL_OK && start != cn->start)
        rc = fail(v, CL_EFORMAT, v->expect, 16,
                  "chunk header start %" PRIu64 " differs from its file name", start);
    else if (rc == CL_OK && v->saw_header && priv != rep->private_ledger)
        rc = fail(v, CL_EFORMAT, v->expect, 12, "chunk ledger type differs from earlier chunks");
    if (rc < 0)
        goto out;
    rep->private_ledger = priv;
    v->saw_header = 1;
    rep->bytes += CL_CHUNK_HEADER_LEN;
    int last_type = 0;
    for (;;) {
        cl_entry_view e;
        uint64_t off;
        rc = cl_chunk_reader_next(&r, &e, &off);
        if (rc == CL_ENOENT) {
            rc = CL_OK;
            break;
        }
        if (rc < 0) {
            rc = fail(v, rc, v->expect, r.off, "unreadable entry frame: %s", cl_strerror(rc));
            goto out;
        }
        if (e.seqno != v->expect) {
            rc = fail(v, CL_EFORMAT, v->expect, off, "frame holds seqno %" PRIu64, e.seqno);
            goto out;
        }
        if (e.view < v->last_view || e.view < 1) {
            rc = fail(v, CL_EFORMAT, e.seqno, off, "view %" PRIu64 " goes backwards", e.view);
            goto out;
        }
        if (e.type == CL_ENTRY_USER)
            rc = check_user(v, &e, off);
        else if (e.type == CL_ENTRY_INTERNAL)
            rc = check_internal(v, &e, off);
        else
            rc = check_signature(v, &e, off);
        if (rc < 0)
            goto out;
        uint8_t wsd[32], leaf[32];
        cl_entry_write_set_digest(&e, wsd);
        cl_entry_leaf(wsd, e.ce_digest, e.claims_digest, leaf);
        leaf_append(v, leaf);
        v->last_view = e.view;
        v->expect++;
        rep->entries++;
        rep->bytes += e.frame_len;
        last_type = e.type;
        if (v->progress != NULL && (rep->entries & 0xfff) == 0)
            v->progress(v->arg, rep->bytes, v->total_bytes);
    }
    if (cn->committed) {
        if (v->expect - 1 != cn->end)
            rc = fail(v, CL_EFORMAT, v->expect, r.off,
                      "committed chunk should end at seqno %" PRIu64, cn->end);
        else if (last_type != CL_ENTRY_SIGNATURE)
            rc = fail(v, CL_EFORMAT, cn->end, r.off, "committed chunk does not end on a signature");
    } else if (!last) {
        rc = fail(v, CL_EFORMAT, v->expect, 0, "an open chunk that is not the last one");
    }
out:
    cl_chunk_reader_close(&r);
    return rc;
}

typedef struct {
    cl_chunk_name *c;
    char (*names)[128];
    size_t n, cap;
    int rc;
} list_state;

static int list_cb(void *arg, const char *name)
{
    list_state *s = arg;
    cl_chunk_name c;
    if (strncmp(name, "ledger_", 7) != 0)
        return 0;
    if (cl_chunk_parse_name(name, &c) != CL_OK) {
        size_t n = strlen(name);
        if (n > 4 && strcmp(name + n - 4, ".tmp") == 0)
            return 0;
        s->rc = CL_EFORMAT;
        return 1;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        cl_chunk_name *p = cl_realloc(s->c, cap * sizeof *p);
        char(*q)[128] = p ? cl_realloc(s->names, cap * sizeof *q) : NULL;
        if (p != NULL)
            s->c = p;
        if (q == NULL) {
            s->rc = CL_ENOMEM;
            return 1;
        }
        s->names = q;
        s->cap = cap;
    }
    s->c[s->n] = c;
    snprintf(s->names[s->n], 128, "%s", name);
    s->n++;
    return 0;
}

int cl_verify_ledger_dir(cl_fs *fs, const char *dir, const cl_cert *service_cert,
                         cl_verify_progress_cb progress, void *arg, cl_verify_report *rep)
{
    memset(rep, 0, sizeof *rep);
    if (fs == NULL)
        fs = cl_fs_posix();
    char ldir[1024], path[1200];
    snprintf(ldir, sizeof ldir, "%s/ledger", dir);
    if (cl_fs_exists(fs, ldir) != 1)
        snprintf(ldir, sizeof ldir, "%s", dir);
    vstate v;
    memset(&v, 0, sizeof v);
    v.fs = fs;
    v.rep = rep;
    v.expect = 1;
    v.progress = progress;
    v.arg = arg;
    list_state ls = {0};
    int rc = cl_fs_list(fs, ldir, list_cb, &ls);
    if (rc == CL_OK && ls.rc < 0)
        rc = fail(&v, ls.rc, 0, 0, "a file name in the ledger directory is not a chunk name");
    if (rc == CL_OK && ls.n == 0)
        rc = fail(&v, CL_ENOENT, 0, 0, "no chunk files in %.200s", ldir);
    if (rc < 0) {
        if (rep->what[0] == '\0')
            snprintf(rep->what, sizeof rep->what, "cannot list %.200s", ldir);
        goto out;
    }
    /* sort by start (insertion sort keeps names paired; chunk counts are small) */
    for (size_t i = 1; i < ls.n; i++) {
        for (size_t j = i; j > 0 && ls.c[j].start < ls.c[j - 1].start; j--) {
            cl_chunk_name t = ls.c[j];
            ls.c[j] = ls.c[j - 1];
            ls.c[j - 1] = t;
            char tn[128];
            memcpy(tn, ls.names[j], 128);
            memcpy(ls.names[j], ls.names[j - 1], 128);
            memcpy(ls.names[j - 1], tn, 128);
        }
    }
    for (size_t i = 0; i < ls.n; i++) {
        snprintf(path, sizeof path, "%s/%s", ldir, ls.names[i]);
        cl_file *f;
        if (cl_fs_open(fs, path, CL_FS_RDONLY, 0, &f) == CL_OK) {
            uint64_t sz = 0;
            if (cl_file_size(f, &sz) == CL_OK)
                v.total_bytes += sz;
            cl_file_close(f);
        }
    }
    if (strcmp(ldir, dir) != 0) { /* a data directory: audit its Merkle store too */
        char mdir[1100];
        snprintf(mdir, sizeof mdir, "%s/merkle", dir);
        int arc = cl_merkle_audit_open(fs, mdir, &v.audit);
        if (arc < 0 && arc != CL_ENOENT)
            snprintf(rep->merkle_what, sizeof rep->merkle_what, "cannot read %.200s: %s", mdir,
                     cl_strerror(arc));
        rep->merkle_checked = arc != CL_ENOENT;
    }
    static const uint8_t zero[32];
    leaf_append(&v, zero); /* leaf 0 */
    for (size_t i = 0; i < ls.n; i++) {
        if (ls.c[i].start != v.expect) {
            snprintf(rep->file, sizeof rep->file, "%s", ls.names[i]);
            rc = fail(&v, CL_EFORMAT, v.expect, 0,
                      "chunk starts at seqno %" PRIu64 " but seqno %" PRIu64
                      " was expected (missing or overlapping chunk)",
                      ls.c[i].start, v.expect);
            goto out;
        }
        snprintf(path, sizeof path, "%s/%s", ldir, ls.names[i]);
        rc = verify_chunk(&v, path, ls.names[i], &ls.c[i], i + 1 == ls.n);
        if (rc < 0)
            goto out;
    }
    if (progress != NULL)
        progress(arg, rep->bytes, v.total_bytes);
    rep->unsigned_tail = v.expect - 1 - rep->last_signed;
    rep->file[0] = '\0';
    if (rep->signatures == 0) {
        rc = fail(&v, CL_ENOTSIGNED, 1, 0, "the ledger holds no signature");
    } else if (v.identity == NULL || !cl_cert_same_key(v.identity, service_cert->pub)) {
        rc = fail(&v, CL_EENDORSE, v.expect - 1, 0,
                  "the ledger's current service identity is not the given service certificate");
    }
    if (rc == CL_OK && v.audit != NULL) {
        cl_merkle_audit_result ar;
        int arc = cl_merkle_audit_finish(v.audit, &ar);
        rep->merkle_records = ar.records;
        if (rep->merkle_what[0] == 0 && ar.bad)
            snprintf(rep->merkle_what, sizeof rep->merkle_what,
                     "merkle/level_%02u record %" PRIu64 " is not the hash of its two children",
                     ar.bad_level, ar.bad_index);
        else if (rep->merkle_what[0] == 0 && arc < 0)
            snprintf(rep->merkle_what, sizeof rep->merkle_what, "cannot read merkle/: %s",
                     cl_strerror(arc));
    }
    if (rc == CL_OK && rep->merkle_what[0] != 0)
        rc = CL_ECORRUPT;
out:
    cl_merkle_audit_close(v.audit);
    for (size_t i = 0; i < v.nnodes; i++)
        cl_cert_free(v.nodes[i].cert);
    cl_free(v.nodes);
    cl_cert_free(v.identity);
    cl_free(ls.c);
    cl_free(ls.names);
    return rc;
}
