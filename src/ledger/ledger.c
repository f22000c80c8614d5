/*
 * ledger.c — the ledger engine (see ledger.h for the invariants and the data directory).
 *
 * Write path: append_frame() builds a frame into `pending` (one contiguous buffer per open chunk),
 * appends its Merkle leaf, and records its location in the open index batch. cl_ledger_sync()
 * writes `pending` with one pwrite, fdatasyncs the chunk, commits the index batch, and only then
 * moves durable_seqno. Any write or sync failure poisons the handle (CL_ECLOSED afterwards): after
 * a failed fsync the page cache state is unknown, so the only safe move is to reopen, which
 * re-derives everything from what is really on disk.
 *
 * Recovery (open): only the open chunk is scanned (bounded by the chunk size); a torn tail is cut.
 * The Merkle tree and the index are then brought to exactly the durable entries by truncating or
 * by replaying the missing suffix, which is bounded by how often they are synced (every chunk
 * rollover — every 4th with external durability — and on close), so start-up never walks the
 * whole ledger.
 */
#define _GNU_SOURCE /* memmem */
#include "ledger/ledger.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "base/log.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/x509.h"
#include "ledger/chunk.h"
#include "ledger/claims.h"
#include "ledger/entry.h"
#include "ledger/merkle.h"
#include "ledger/receipt.h"
#include "storage/index.h"

#define PATH_MAX_LEN 1024
#define DEFAULT_CHUNK (5u << 20)
#define WRITEBACK_STEP (1u << 20)
#define DERIVED_SYNC_EVERY 4
#define SIG_COLLECTION "\x01sig"
#define SIG_COLLECTION_LEN 4
#define CE_LABEL "cledger commit evidence v1"
#define SECRETS_MAGIC "CLSECRT1"
/* Read-only descriptors of committed chunks kept open (least recently used one closed first). A
 * chunk is 5 MiB, about 20,000 100-byte entries: 64 cover the newest ~1.3M such entries, so reads
 * spread over a large recent range do not open and close a file each (with 4, random reads of the
 * last 440k entries reopened a chunk on most reads: an open() path walk per read). */
#define READ_CACHE 64

typedef struct {
    uint64_t applies_from;
    uint8_t *key;            /* 32 bytes, secure heap */
    cl_hmac_key *commit_key; /* HMAC key expanded from HMAC(key, CE_LABEL), secure heap */
} secret_rec;

typedef struct {
    uint64_t start;
    cl_file *f;
    uint64_t stamp;
} read_slot;

struct cl_ledger {
    cl_fs *fs;
    char dir[PATH_MAX_LEN], ledger_dir[PATH_MAX_LEN], node_dir[PATH_MAX_LEN];
    char merkle_dir[PATH_MAX_LEN], index_dir[PATH_MAX_LEN];
    uint64_t chunk_size;
    int private_ledger;
    int failed;

    cl_key *node_key, *service_key;
    cl_cert *node_cert, *service_cert;
    char *node_cert_pem, *service_cert_pem;
    uint8_t node_id[32];
    uint64_t service_version;

    secret_rec *secrets;
    size_t nsecrets;

    cl_chunk_name *chunks; /* committed chunks, in order */
    size_t nchunks, chunks_cap;

    cl_file *open_chunk; /* NULL until the first append after a rollover */
    uint64_t open_start;
    uint64_t open_durable; /* bytes of the open chunk known durable */
    int open_new;          /* created since the last directory sync */
    cl_buf pending;        /* frames not yet written; starts at file offset open_durable */
    int roll_after_sync;
    int external_durability;      /* a consensus log makes writes durable; sync skips fdatasync */
    int unsynced;                 /* bytes written to the open chunk since its last fdatasync */
    uint64_t kicked;              /* open-chunk offset up to which writeback was started */
    unsigned rolls_since_derived; /* rollovers since the tree and index were last synced */
    int derived_steps; /* 1: tree sync steps under way, 2: the index sync is next (external) */

    cl_merkle *tree;
    cl_index *idx;
    cl_index_batch *batch;

    uint64_t last_seqno, durable_seqno, signed_seqno, pending_signed;
    uint64_t last_view; /* the view of last_seqno (0: not read yet; check_view) */
    /* Sealing (cl_ledger_seal): a key derived for this process from the current secret and a
     * random salt, IVs from a counter; unsealing keeps the last key it derived for another
     * (secret, salt). Keys on the secure heap; both forgotten when a secret goes (seal_forget). */
    struct seal_key {
        uint8_t *key; /* 32 bytes; NULL: none */
        uint8_t salt[16];
        uint64_t from; /* applies_from of the secret it is derived from */
    } seal, unseal;
    uint64_t seal_ctr;
    int rebuild_asked;     /* merkle/rebuild was written (request_rebuild) */
    int index_damaged;     /* index/dirty asks the next open to rebuild (index_damage) */
    unsigned index_faults; /* index_damage's count: open tells index faults from chunk faults */

    uint8_t *rpool; /* RAND_bytes in bulk for per-entry claims keys; secure heap, wiped */
    size_t rpool_pos;

    read_slot rcache[READ_CACHE];
    uint64_t rstamp;
    cl_buf scratch, scratch2, scratch3;
    uint64_t loc_seqno;    /* loc_memo holds the index entry of this seqno (0: none) */
    cl_index_loc loc_memo; /* (see loc_of) */
};

/* ---- small helpers ----------------------------------------------------------------------- */

static int path_join(char *out, const char *a, const char *b)
{
    int n = snprintf(out, PATH_MAX_LEN, "%s/%s", a, b);
    return n > 0 && n < PATH_MAX_LEN ? CL_OK : CL_EOVERFLOW;
}

static int poisoned(cl_ledger *l, int rc)
{
    if (rc < 0 && rc != CL_EINVAL && rc != CL_EOVERFLOW) {
        l->failed = 1;
        cl_logf(CL_LOG_ERROR, "ledger: write path failed (%s); the handle must be reopened",
                cl_errname(rc));
    }
    return rc;
}

static const secret_rec *secret_for(const cl_ledger *l, uint64_t seqno)
{
    for (size_t i = l->nsecrets; i > 0; i--)
        if (l->secrets[i - 1].applies_from <= seqno)
            return &l->secrets[i - 1];
    return NULL;
}

static void seal_forget(cl_ledger *l)
{
    cl_secret_free(l->seal.key, 32);
    cl_secret_free(l->unseal.key, 32);
    l->seal.key = l->unseal.key = NULL;
}

static void secrets_free(cl_ledger *l)
{
    seal_forget(l);
    for (size_t i = 0; i < l->nsecrets; i++) {
        cl_secret_free(l->secrets[i].key, 32);
        cl_secret_free(l->secrets[i].commit_key, sizeof(cl_hmac_key));
    }
    cl_free(l->secrets);
    l->secrets = NULL;
    l->nsecrets = 0;
}

static int secret_add(cl_ledger *l, uint64_t applies_from, const uint8_t key[32])
{
    secret_rec *s = cl_realloc(l->secrets, (l->nsecrets + 1) * sizeof *s);
    CL_ENSURE(s != NULL, CL_ENOMEM);
    l->secrets = s;
    secret_rec *r = &s[l->nsecrets];
    r->applies_from = applies_from;
    r->key = cl_secret_alloc(32);
    r->commit_key = cl_secret_alloc(sizeof(cl_hmac_key));
    if (r->key == NULL || r->commit_key == NULL) {
        cl_secret_free(r->key, 32);
        cl_secret_free(r->commit_key, sizeof(cl_hmac_key));
        return CL_ENOMEM;
    }
    memcpy(r->key, key, 32);
    uint8_t commit_secret[32];
    int rc = cl_hmac_sha256(key, 32, CE_LABEL, strlen(CE_LABEL), commit_secret);
    if (rc < 0) {
        cl_secret_free(r->key, 32);
        cl_secret_free(r->commit_key, sizeof(cl_hmac_key));
        return rc;
    }
    cl_hmac_key_init(r->commit_key, commit_secret, sizeof commit_secret);
    cl_wipe(commit_secret, sizeof commit_secret);
    l->nsecrets++;
    return CL_OK;
}

/* node/ledger_secrets: magic(8) | count u32 | count x (applies_from u64 | key[32]); 0600. */
static int secrets_save(cl_ledger *l)
{
    size_t n = 12 + l->nsecrets * 40;
    uint8_t *b = cl_secret_alloc(n);
    CL_ENSURE(b != NULL, CL_ENOMEM);
    memcpy(b, SECRETS_MAGIC, 8);
    cl_store_u32(b + 8, (uint32_t)l->nsecrets);
    for (size_t i = 0; i < l->nsecrets; i++) {
        cl_store_u64(b + 12 + 40 * i, l->secrets[i].applies_from);
        memcpy(b + 20 + 40 * i, l->secrets[i].key, 32);
    }
    char path[PATH_MAX_LEN];
    int rc = path_join(path, l->node_dir, "ledger_secrets");
    if (rc == CL_OK)
        rc = cl_fs_write_atomic(l->fs, path, b, n, 0600);
    cl_secret_free(b, n);
    return rc;
}

/* rc, logged with the file it concerns when it is an error: the caller's message names only the
 * data directory. */
static int named(int rc, const char *path)
{
    if (rc < 0)
        cl_logf(CL_LOG_ERROR, "ledger: %s: %s", path, cl_strerror(rc));
    return rc;
}

static int secrets_load(cl_ledger *l)
{
    char path[PATH_MAX_LEN];
    CL_TRY(path_join(path, l->node_dir, "ledger_secrets"));
    uint8_t *b = NULL;
    size_t n = 0;
    CL_TRY(named(cl_fs_read_all(l->fs, path, 1u << 20, &b, &n), path));
    int rc = CL_OK;
    uint32_t count = n >= 12 ? cl_load_u32(b + 8) : 0;
    if (n < 12 || memcmp(b, SECRETS_MAGIC, 8) != 0 || count == 0 || n != 12 + (size_t)count * 40)
        rc = CL_EFORMAT;
    for (uint32_t i = 0; rc == CL_OK && i < count; i++) {
        uint64_t from = cl_load_u64(b + 12 + 40 * i);
        if (l->nsecrets > 0 && from <= l->secrets[l->nsecrets - 1].applies_from)
            rc = CL_EFORMAT;
        else
            rc = secret_add(l, from, b + 20 + 40 * i);
    }
    cl_wipe(b, n);
    cl_free(b);
    return named(rc, path);
}

/* Per-entry claims keys come from a pool filled by RAND_bytes 4 KiB at a time: one DRBG call
 * per 128 entries instead of one per entry (a third of the CPU of an append). Each key is wiped
 * from the pool as it is taken. */
#define RPOOL 4096
static int pool_random(cl_ledger *l, uint8_t *out, size_t n)
{
    if (l->rpool == NULL) {
        l->rpool = cl_secret_alloc(RPOOL);
        CL_ENSURE(l->rpool != NULL, CL_ENOMEM);
        l->rpool_pos = RPOOL;
    }
    if (l->rpool_pos + n > RPOOL) {
        CL_TRY(cl_random(l->rpool, RPOOL));
        l->rpool_pos = 0;
    }
    memcpy(out, l->rpool + l->rpool_pos, n);
    cl_wipe(l->rpool + l->rpool_pos, n);
    l->rpool_pos += n;
    return CL_OK;
}

/* ---- commit evidence --------------------------------------------------------------------------
 */

static int commit_evidence(const cl_ledger *l, uint64_t view, uint64_t seqno, char *out, size_t cap)
{
    const secret_rec *s = secret_for(l, seqno);
    CL_ENSURE(s != NULL, CL_ENOSECRET);
    /* "ce:<view>.<seqno>:<hex of HMAC(commit key, "<view>.<seqno>")>", built without printf */
    char ce[3 + CL_U64_PAIR_DEC_MAX + 1 + 64 + 1];
    memcpy(ce, "ce:", 3);
    size_t n = 3 + cl_u64_pair_dec(view, seqno, ce + 3);
    uint8_t nonce[32];
    cl_hmac_key_mac(s->commit_key, ce + 3, n - 3, nonce);
    ce[n++] = ':';
    cl_hex_encode(nonce, 32, ce + n);
    n += 64;
    CL_ENSURE(n < cap, CL_EOVERFLOW);
    memcpy(out, ce, n + 1);
    return CL_OK;
}

/* ---- chunks -----------------------------------------------------------------------------------
 */

static int chunk_path(const cl_ledger *l, const cl_chunk_name *c, char *out)
{
    char name[96];
    cl_chunk_format_name(c, name, sizeof name);
    return path_join(out, l->ledger_dir, name);
}

static int chunks_push(cl_ledger *l, const cl_chunk_name *c)
{
    if (l->nchunks == l->chunks_cap) {
        size_t cap = l->chunks_cap ? l->chunks_cap * 2 : 16;
        cl_chunk_name *p = cl_realloc(l->chunks, cap * sizeof *p);
        CL_ENSURE(p != NULL, CL_ENOMEM);
        l->chunks = p;
        l->chunks_cap = cap;
    }
    l->chunks[l->nchunks++] = *c;
    return CL_OK;
}

static int open_new_chunk(cl_ledger *l, uint64_t start)
{
    cl_chunk_name c = {start, 0, 0};
    char path[PATH_MAX_LEN];
    CL_TRY(chunk_path(l, &c, path));
    CL_TRY(cl_fs_open(l->fs, path, CL_FS_RDWR | CL_FS_CREAT | CL_FS_TRUNC, 0640, &l->open_chunk));
    l->open_start = start;
    l->open_durable = 0;
    l->kicked = 0;
    l->open_new = 1;
    /* The header is made durable (file and directory) before any entry is written: a crash can
     * then damage a header only in a file that holds nothing else, which open recreates, and a
     * damaged header in front of entries is corruption, never a crash artefact. (Written along
     * with the first entries, a power cut could leave entries intact behind a torn header.) */
    uint8_t h[CL_CHUNK_HEADER_LEN];
    cl_chunk_header_encode(start, l->private_ledger, h);
    CL_TRY(cl_file_pwrite(l->open_chunk, h, sizeof h, 0));
    CL_TRY(cl_file_sync(l->open_chunk));
    CL_TRY(cl_fs_sync_dir(l->fs, l->ledger_dir));
    l->open_new = 0;
    l->open_durable = sizeof h;
    l->kicked = sizeof h;
    cl_buf_reset(&l->pending);
    return CL_OK;
}

/* Roll the open chunk (which is durable and ends with a signature) into a committed one. */
static int flush_unsynced(cl_ledger *l)
{
    if (l->open_chunk != NULL && l->unsynced) {
        CL_TRY(cl_file_sync(l->open_chunk));
        l->unsynced = 0;
    }
    if (l->open_chunk != NULL && l->open_new) {
        CL_TRY(cl_fs_sync_dir(l->fs, l->ledger_dir));
        l->open_new = 0;
    }
    return CL_OK;
}

static int roll_chunk(cl_ledger *l)
{
    /* A committed chunk is always on disk before it gets its committed name. */
    CL_TRY(flush_unsynced(l));
    cl_chunk_name open = {l->open_start, 0, 0}, done = {l->open_start, l->durable_seqno, 1};
    char from[PATH_MAX_LEN], to[PATH_MAX_LEN];
    CL_TRY(chunk_path(l, &open, from));
    CL_TRY(chunk_path(l, &done, to));
    cl_file_close(l->open_chunk);
    l->open_chunk = NULL;
    CL_TRY(cl_fs_rename(l->fs, from, to));
    CL_TRY(cl_fs_sync_dir(l->fs, l->ledger_dir));
    CL_TRY(chunks_push(l, &done));
    /* The derived structures are synced at rollover, which bounds the replay at open. Normally
     * at every rollover, at once. With external durability (a consensus log in front and a loop
     * thread waiting on this call) every DERIVED_SYNC_EVERY rollovers, and in steps of one
     * fdatasync per cl_ledger_sync (derived_step): the tree alone is one device flush per level
     * file, 9 ms at a million entries, which held every waiting request at once. Open then
     * replays at most that many chunks and the few written while the steps ran. */
    if (!l->external_durability) {
        CL_TRY(cl_merkle_sync(l->tree));
        CL_TRY(cl_index_sync(l->idx));
    } else if (++l->rolls_since_derived >= DERIVED_SYNC_EVERY && !l->derived_steps) {
        l->derived_steps = 1;
        l->rolls_since_derived = 0;
    }
    l->roll_after_sync = 0;
    return CL_OK;
}

/* One step of the derived-state sync started at a rollover: a tree sync step, then the index. */
static int derived_step(cl_ledger *l)
{
    if (l->derived_steps == 1) {
        int done = 0;
        CL_TRY(cl_merkle_sync_step(l->tree, &done));
        if (done)
            l->derived_steps = 2;
        return CL_OK;
    }
    CL_TRY(cl_index_sync(l->idx));
    l->derived_steps = 0;
    return CL_OK;
}

/* ---- the write path ---------------------------------------------------------------------------
 */

static int ensure_batch(cl_ledger *l)
{
    if (l->batch == NULL)
        CL_TRY(cl_index_batch_begin(l->idx, &l->batch));
    return CL_OK;
}

typedef struct {
    uint8_t type;
    uint64_t view;
    const cl_buf *pub;
    const uint8_t *priv; /* plaintext */
    size_t priv_len;
    int encrypt;
    const uint8_t *claims_digest; /* NULL: zeros */
    const char *collection;       /* index under this collection, or NULL */
    size_t collection_len;
} frame_spec;

static int loc_of(cl_ledger *l, uint64_t seqno, cl_index_loc *loc);

/* Views never go down along the ledger, and fit the IV's 32 bits (IV = seqno || view): a caller
 * that must write above every view a ledger holds (cledgerd's new view at each start) takes the
 * last entry's. */
static int check_view(cl_ledger *l, uint64_t view)
{
    CL_ENSURE(view <= UINT32_MAX, CL_ERANGE);
    if (l->last_view == 0 && l->last_seqno > 0) {
        cl_index_loc loc;
        CL_TRY(loc_of(l, l->last_seqno, &loc));
        l->last_view = loc.view;
    }
    if (view < l->last_view) {
        cl_logf(CL_LOG_ERROR,
                "ledger: an entry in view %" PRIu64 " after entry %" PRIu64 " in view %" PRIu64
                ": views never go down",
                view, l->last_seqno, l->last_view);
        return CL_EINVAL;
    }
    return CL_OK;
}

static int append_frame(cl_ledger *l, const frame_spec *fs, uint64_t *seqno_out)
{
    static const uint8_t zero[32];
    uint64_t seqno = l->last_seqno + 1;
    int rc;
    CL_TRY(check_view(l, fs->view));
    if (l->open_chunk == NULL && (rc = open_new_chunk(l, seqno)) < 0)
        return poisoned(l, rc); /* a failed write or sync: the file's state is unknown */
    CL_TRY(ensure_batch(l));

    cl_entry_view e;
    memset(&e, 0, sizeof e);
    e.type = fs->type;
    e.view = fs->view;
    e.seqno = seqno;
    memcpy(e.claims_digest, fs->claims_digest ? fs->claims_digest : zero, 32);
    char ce[128];
    CL_TRY(commit_evidence(l, fs->view, seqno, ce, sizeof ce));
    cl_sha256(ce, strlen(ce), e.ce_digest);
    e.pub = fs->pub->data;
    e.pub_len = fs->pub->len;
    e.priv_len = fs->priv_len;
    e.priv = fs->priv;
    if (fs->encrypt) {
        const secret_rec *s = secret_for(l, seqno);
        CL_ENSURE(s != NULL, CL_ENOSECRET);
        e.flags = CL_ENTRY_F_ENCRYPTED;
        cl_entry_iv(fs->view, seqno, e.iv);
        cl_buf_reset(&l->scratch2);
        CL_TRY(cl_entry_aad(&e, &l->scratch2));
        cl_buf_reset(&l->scratch3);
        CL_TRY(cl_buf_reserve(&l->scratch3, fs->priv_len));
        CL_TRY(cl_aead_encrypt(s->key, e.iv, l->scratch2.data, l->scratch2.len, fs->priv,
                               fs->priv_len, l->scratch3.data, e.tag));
        e.priv = l->scratch3.data;
    }
    size_t at = l->pending.len;
    CL_TRY(cl_entry_encode(&e, &l->pending));
    e.frame = l->pending.data + at;
    e.frame_len = l->pending.len - at;

    uint8_t wsd[32], leaf[32];
    cl_entry_write_set_digest(&e, wsd);
    cl_entry_leaf(wsd, e.ce_digest, e.claims_digest, leaf);
    cl_index_loc loc = {
        l->open_start, l->open_durable + at, (uint32_t)e.frame_len, fs->view, fs->type, 0};
    CL_GUARD(cl_merkle_append(l->tree, leaf));
    CL_GUARD(cl_index_put_entry(l->batch, seqno, &loc));
    if (fs->collection != NULL)
        CL_GUARD(cl_index_put_collection(l->batch, fs->collection, fs->collection_len, seqno));
    l->last_seqno = seqno;
    l->last_view = fs->view;
    if (seqno_out)
        *seqno_out = seqno;
    return CL_OK;
out:
    /* The frame is in `pending` and maybe in the tree: the handle is inconsistent now. */
    return poisoned(l, rc);
}

int cl_ledger_sync(cl_ledger *l)
{
    CL_ENSURE(!l->failed, CL_ECLOSED);
    int rc = CL_OK;
    if (l->pending.len > 0) {
        CL_GUARD(cl_file_pwrite(l->open_chunk, l->pending.data, l->pending.len, l->open_durable));
        if (l->external_durability) {
            l->unsynced = 1;
            /* Start writeback every MiB, so the fdatasync at chunk rollover (on the caller's
             * loop) does not have to flush the whole chunk at once. A hint: errors are ignored
             * here; the sync that makes the data durable reports them. */
            uint64_t end = l->open_durable + l->pending.len;
            if (end - l->kicked >= WRITEBACK_STEP) {
                (void)cl_file_writeback(l->open_chunk, l->kicked, end - l->kicked);
                l->kicked = end;
            }
        } else {
            CL_GUARD(cl_file_sync(l->open_chunk));
            if (l->open_new) {
                CL_GUARD(cl_fs_sync_dir(l->fs, l->ledger_dir));
                l->open_new = 0;
            }
        }
        l->open_durable += l->pending.len;
        cl_buf_reset(&l->pending);
    }
    /* From here the entries are durable; the index and tree only describe them. */
    l->durable_seqno = l->last_seqno;
    l->signed_seqno = l->pending_signed;
    if (l->batch != NULL) {
        cl_index_batch *b = l->batch;
        l->batch = NULL;
        CL_GUARD(cl_index_batch_commit(b));
    }
    /* The tree's write buffers are not flushed here: its reads serve buffered records, the
     * buffers write themselves out when full (bounded memory), and the tree is derived state
     * that open rebuilds from the chunks; cl_merkle_sync at rollover and close persists it. */
    if (l->roll_after_sync)
        CL_GUARD(roll_chunk(l));
    else if (l->derived_steps)
        CL_GUARD(derived_step(l));
out:
    return rc < 0 ? poisoned(l, rc) : rc;
}

int cl_ledger_sync_hard(cl_ledger *l)
{
    CL_TRY(cl_ledger_sync(l));
    return poisoned(l, flush_unsynced(l));
}

void cl_ledger_set_external_durability(cl_ledger *l, int on) { l->external_durability = on != 0; }

int cl_ledger_append_user(cl_ledger *l, uint64_t view, const char *collection, size_t clen,
                          const uint8_t *contents, size_t len, uint64_t *seqno)
{
    CL_ENSURE(!l->failed, CL_ECLOSED);
    uint8_t key[32];
    CL_TRY(pool_random(l, key, sizeof key));
    int rc = cl_ledger_append_user_keyed(l, view, collection, clen, contents, len, key, seqno);
    cl_wipe(key, sizeof key);
    return rc;
}

int cl_ledger_append_user_keyed(cl_ledger *l, uint64_t view, const char *collection, size_t clen,
                                const uint8_t *contents, size_t len, const uint8_t claims_key[32],
                                uint64_t *seqno)
{
    CL_ENSURE(!l->failed, CL_ECLOSED);
    CL_ENSURE(clen >= 1 && clen <= CL_INDEX_COLL_MAX && memchr(collection, 0, clen) == NULL &&
                  (uint8_t)collection[0] != 0x01,
              CL_EINVAL);
    uint8_t key[32], claims[32];
    memcpy(key, claims_key, sizeof key);
    int rc = cl_claims_ledger_entry_digest(key, 32, collection, clen, (const char *)contents, len,
                                           claims);
    if (rc < 0) {
        cl_wipe(key, sizeof key);
        return rc;
    }
    cl_buf_reset(&l->scratch);
    cl_user_pub pub = {(const uint8_t *)collection, clen};
    cl_buf priv = CL_BUF_SECRET;
    cl_user_priv up = {contents, len, key};
    CL_GUARD(cl_user_pub_encode(&pub, &l->scratch));
    CL_GUARD(cl_user_priv_encode(&up, &priv));
    frame_spec fs = {CL_ENTRY_USER,     view,   &l->scratch, priv.data, priv.len,
                     l->private_ledger, claims, collection,  clen};
    CL_GUARD(append_frame(l, &fs, seqno));
out:
    cl_wipe(key, sizeof key);
    cl_buf_free(&priv);
    return rc;
}

/* Every internal write is listed under the reserved collection "\x01t<table>" (3 bytes), so the
 * current state of a table is rebuilt by reading only that table's writes. */
#define TABLE_COLL_LEN 3
static void table_coll(uint8_t table, char out[TABLE_COLL_LEN + 1])
{
    out[0] = '\x01';
    out[1] = 't';
    out[2] = (char)('0' + table);
    out[3] = 0;
}

/* Internal-table writes that the engine needs to find quickly are mirrored into the index meta:
 * the latest certificate of every node (for receipts) and the service identity version. The same
 * function serves the write path and replay, so a rebuilt index equals the original. */
static int index_internal_meta(cl_index_batch *b, const cl_internal_pub *ip, uint64_t seqno)
{
    char coll[TABLE_COLL_LEN + 1];
    table_coll(ip->table, coll);
    CL_TRY(cl_index_put_collection(b, coll, TABLE_COLL_LEN, seqno));
    if (ip->op != CL_OP_PUT)
        return CL_OK;
    char mk[CL_INDEX_META_KEY_MAX];
    if (ip->table == CL_TABLE_NODES) {
        CL_ENSURE(ip->key_len <= 64, CL_EFORMAT);
        snprintf(mk, sizeof mk, "node:%.*s", (int)ip->key_len, ip->key);
        return cl_index_put_meta(b, mk, ip->value, ip->value_len);
    }
    if (ip->table == CL_TABLE_SERVICE)
        return cl_index_put_meta(b, "service_version", ip->key, ip->key_len);
    return CL_OK;
}

/* Every internal-table write goes through here: the frame, then its index entries, the same
 * index_internal_meta that replay calls, so a rebuilt index equals the live one. `priv` (the
 * previous secret of a ledger-secret record) is encrypted when `encrypt`. */
static int append_internal_frame(cl_ledger *l, uint64_t view, const cl_internal_pub *p,
                                 const uint8_t *priv, size_t priv_len, int encrypt, uint64_t *seqno)
{
    cl_buf_reset(&l->scratch);
    CL_TRY(cl_internal_pub_encode(p, &l->scratch));
    frame_spec fs = {CL_ENTRY_INTERNAL, view, &l->scratch, priv, priv_len, encrypt, NULL, NULL, 0};
    uint64_t s;
    CL_TRY(append_frame(l, &fs, &s));
    CL_TRY(poisoned(l, index_internal_meta(l->batch, p, s)));
    if (seqno)
        *seqno = s;
    return CL_OK;
}

int cl_ledger_append_internal(cl_ledger *l, uint64_t view, uint8_t table, uint8_t op,
                              const char *key, size_t klen, const char *value, size_t vlen,
                              uint64_t *seqno)
{
    CL_ENSURE(!l->failed, CL_ECLOSED);
    CL_ENSURE(table >= CL_TABLE_USERS && table <= CL_TABLE_MAX, CL_EINVAL);
    CL_ENSURE(op == CL_OP_PUT || op == CL_OP_REMOVE, CL_EINVAL);
    cl_internal_pub p = {table, op, (const uint8_t *)key, klen, (const uint8_t *)value, vlen};
    return append_internal_frame(l, view, &p, NULL, 0, 0, seqno);
}

int cl_ledger_sign(cl_ledger *l, uint64_t view, uint64_t *seqno)
{
    return cl_ledger_sign_at(l, view, 0, seqno);
}

int cl_ledger_sign_at(cl_ledger *l, uint64_t view, uint64_t raft_index, uint64_t *seqno)
{
    CL_ENSURE(!l->failed, CL_ECLOSED);
    uint8_t root[32], sig[CL_ECDSA_MAX_DER];
    size_t siglen = 0;
    uint64_t size = cl_merkle_size(l->tree);
    CL_ENSURE(size == l->last_seqno + 1, CL_ECORRUPT);
    CL_TRY(cl_merkle_root(l->tree, root));
    /* Deterministic (RFC 6979): a signature entry applied again after its bytes were lost
     * (raft replays past the ledger's last durable signature) comes back identical, so the
     * history never forks (crypto/ecdsa_det.c). */
    CL_TRY(cl_key_sign_deterministic(l->node_key, root, 32, sig, &siglen));
    cl_sig_pub sp;
    sp.tree_size = size;
    sp.raft_index = raft_index;
    memcpy(sp.root, root, 32);
    memcpy(sp.node_id, l->node_id, 32);
    sp.sig = sig;
    sp.sig_len = siglen;
    cl_buf_reset(&l->scratch);
    CL_TRY(cl_sig_pub_encode(&sp, &l->scratch));
    frame_spec fs = {CL_ENTRY_SIGNATURE, view, &l->scratch, NULL, 0, 0, NULL, SIG_COLLECTION,
                     SIG_COLLECTION_LEN};
    uint64_t s;
    CL_TRY(append_frame(l, &fs, &s));
    l->pending_signed = s;
    if (seqno)
        *seqno = s;
    if (l->open_durable + l->pending.len >= l->chunk_size) {
        l->roll_after_sync = 1;
        CL_TRY(cl_ledger_sync(l));
    }
    return CL_OK;
}

/* ---- identities -------------------------------------------------------------------------------
 */

static int node_record_json(const char *cert_pem, char **out)
{
    json_t *j = json_pack("{s:s,s:s}", "cert", cert_pem, "status", "Trusted");
    CL_ENSURE(j != NULL, CL_ENOMEM);
    *out = cl_json_dump(j);
    json_decref(j);
    return *out ? CL_OK : CL_ENOMEM;
}

static int append_node_record(cl_ledger *l, uint64_t view)
{
    char hex[65], *v = NULL;
    cl_hex_encode(l->node_id, 32, hex);
    CL_TRY(node_record_json(l->node_cert_pem, &v));
    int rc =
        cl_ledger_append_internal(l, view, CL_TABLE_NODES, CL_OP_PUT, hex, 64, v, strlen(v), NULL);
    cl_free(v);
    return rc;
}

static int append_service_record(cl_ledger *l, uint64_t view, const char *endorsement_pem)
{
    /* The ledger type is part of the signed service record, so a verifier checks the chunk
     * headers' type flag against signed data (docs/ledger-format.md §3). */
    json_t *j = json_pack("{s:s,s:s}", "cert", l->service_cert_pem, "ledgerType",
                          l->private_ledger ? "private" : "public");
    CL_ENSURE(j != NULL, CL_ENOMEM);
    if (endorsement_pem != NULL)
        json_object_set_new(j, "endorsement", json_string(endorsement_pem));
    char *v = cl_json_dump(j);
    json_decref(j);
    CL_ENSURE(v != NULL, CL_ENOMEM);
    char key[24];
    int n = snprintf(key, sizeof key, "%" PRIu64, l->service_version);
    int rc = cl_ledger_append_internal(l, view, CL_TABLE_SERVICE, CL_OP_PUT, key, (size_t)n, v,
                                       strlen(v), NULL);
    cl_free(v);
    return rc;
}

/* Appends the record of the newest secret; its private part is the previous secret (if any),
 * encrypted under the newest one by the normal rule (the record's seqno >= its appliesFrom). */
/* The value of a ledger-secret record (written here, compared by check_secret). */
static int applies_from_value(uint64_t applies_from, char out[64])
{
    return snprintf(out, 64, "{\"appliesFrom\":%" PRIu64 "}", applies_from);
}

static int append_secret_record(cl_ledger *l, uint64_t view)
{
    const secret_rec *cur = &l->secrets[l->nsecrets - 1];
    const secret_rec *prev = l->nsecrets > 1 ? &l->secrets[l->nsecrets - 2] : NULL;
    char key[24], val[64];
    int kn = snprintf(key, sizeof key, "%zu", l->nsecrets);
    int vn = applies_from_value(cur->applies_from, val);
    cl_internal_pub p = {CL_TABLE_SECRETS,     CL_OP_PUT, (const uint8_t *)key, (size_t)kn,
                         (const uint8_t *)val, (size_t)vn};
    return append_internal_frame(l, view, &p, prev ? prev->key : NULL, prev ? 32 : 0, 1, NULL);
}

int cl_ledger_rotate_secret(cl_ledger *l, uint64_t view)
{
    CL_ENSURE(!l->failed, CL_ECLOSED);
    uint8_t key[32];
    int rc = cl_random(key, 32);
    if (rc == CL_OK)
        rc = secret_add(l, l->last_seqno + 1, key);
    cl_wipe(key, 32); /* on a failed cl_random too: it may have filled part of it */
    CL_TRY(rc);
    /* Persist the new secret before anything is encrypted with it. */
    rc = secrets_save(l);
    if (rc < 0) {
        seal_forget(l);
        l->nsecrets--;
        cl_secret_free(l->secrets[l->nsecrets].key, 32);
        cl_secret_free(l->secrets[l->nsecrets].commit_key, sizeof(cl_hmac_key));
        /* The file may hold the new secret anyway (e.g. renamed into place, then the directory
         * sync failed); going on without it would encrypt entries under a secret that a reopen
         * no longer uses for them. Only a reopen knows (it trims secrets without a record). */
        return poisoned(l, rc);
    }
    /* Likewise, a saved secret whose record could not be appended must not be used. */
    return poisoned(l, append_secret_record(l, view));
}

/* Writes pem[0..len) to `name` in dir through the ledger's fs (atomic replace, fsync'ed). */
static int write_pem(cl_ledger *l, const char *dir, const char *name, const char *pem, size_t len,
                     int mode)
{
    char path[PATH_MAX_LEN];
    CL_TRY(path_join(path, dir, name));
    return named(cl_fs_write_atomic(l->fs, path, pem, len, mode), path);
}

/* The identity files from the handle's identity: node/service_key.pem (0600), node/node_cert.pem
 * and service_cert.pem. */
static int write_identity_files(cl_ledger *l)
{
    char *kp = NULL;
    size_t kl = 0;
    CL_TRY(cl_key_private_pem(l->service_key, &kp, &kl));
    int rc = write_pem(l, l->node_dir, "service_key.pem", kp, kl, 0600);
    cl_secret_free(kp, kl + 1);
    CL_TRY(rc);
    CL_TRY(write_pem(l, l->node_dir, "node_cert.pem", l->node_cert_pem, strlen(l->node_cert_pem),
                     0644));
    return write_pem(l, l->dir, "service_cert.pem", l->service_cert_pem,
                     strlen(l->service_cert_pem), 0644);
}

/* This node's certificate under the service identity (sk, sc). */
static int issue_node_cert_under(cl_ledger *l, const cl_key *sk, const cl_cert *sc, cl_cert **out,
                                 char **pem)
{
    static const char *const sans[] = {"localhost", "127.0.0.1"};
    cl_cert *c = NULL;
    CL_TRY(cl_cert_issue(l->node_key, "cledger node", sc, sk, 3650, sans, 2, &c));
    size_t len = 0;
    int rc = cl_cert_to_pem(c, pem, &len);
    if (rc < 0) {
        cl_cert_free(c);
        return rc;
    }
    *out = c;
    return CL_OK;
}

static int issue_node_cert(cl_ledger *l)
{
    cl_cert *c = NULL;
    char *pem = NULL;
    CL_TRY(issue_node_cert_under(l, l->service_key, l->service_cert, &c, &pem));
    cl_cert_free(l->node_cert);
    cl_free(l->node_cert_pem);
    l->node_cert = c;
    l->node_cert_pem = pem;
    return CL_OK;
}

/* ---- service identity rotation: staged, recorded and signed, then installed ----------------
 *
 * node/identity.next (0600) holds a rotation's new service key, service certificate and node
 * certificate, in that order as PEM, from before its records are appended until its files are
 * installed. So the identity files in place are always one the ledger recorded under a durable
 * signature, and the key files never run ahead of the ledger: a crash at any point leaves either
 * no record of the new identity (open discards the staged one), its records without their
 * signature (open cuts them and discards it), or its records signed (open installs it).
 * resolve_staged_identity does that at open. */
#define IDENTITY_NEXT "identity.next"
#define PEM_CERT_BEGIN "-----BEGIN CERTIFICATE-----"

typedef struct {
    cl_key *key;
    cl_cert *cert, *node_cert;
    char *cert_pem, *node_cert_pem;
} staged_identity;

static void staged_free(staged_identity *s)
{
    cl_key_free(s->key);
    cl_cert_free(s->cert);
    cl_cert_free(s->node_cert);
    cl_free(s->cert_pem);
    cl_free(s->node_cert_pem);
    memset(s, 0, sizeof *s);
}

static int stage_identity(cl_ledger *l, const staged_identity *s)
{
    char *kp = NULL;
    size_t kl = 0;
    CL_TRY(cl_key_private_pem(s->key, &kp, &kl));
    size_t c1 = strlen(s->cert_pem), c2 = strlen(s->node_cert_pem), n = kl + c1 + c2;
    char *b = cl_secret_alloc(n + 1);
    int rc = CL_ENOMEM;
    if (b != NULL) {
        memcpy(b, kp, kl);
        memcpy(b + kl, s->cert_pem, c1);
        memcpy(b + kl + c1, s->node_cert_pem, c2);
        rc = write_pem(l, l->node_dir, IDENTITY_NEXT, b, n, 0600);
        cl_secret_free(b, n + 1);
    }
    cl_secret_free(kp, kl + 1);
    return rc;
}

/* Parses what stage_identity wrote. CL_EFORMAT when it is not that. */
static int staged_parse(const char *b, size_t n, staged_identity *s)
{
    memset(s, 0, sizeof *s);
    const char *end = b + n;
    const char *c1 = memmem(b, n, PEM_CERT_BEGIN, strlen(PEM_CERT_BEGIN));
    const char *c2 =
        c1 ? memmem(c1 + 1, (size_t)(end - c1 - 1), PEM_CERT_BEGIN, strlen(PEM_CERT_BEGIN)) : NULL;
    CL_ENSURE(c1 != NULL && c2 != NULL && c1 > b, CL_EFORMAT);
    CL_ENSURE(memmem(c2 + 1, (size_t)(end - c2 - 1), PEM_CERT_BEGIN, strlen(PEM_CERT_BEGIN)) ==
                  NULL,
              CL_EFORMAT);
    int rc = CL_OK;
    CL_GUARD(cl_key_from_private_pem(b, (size_t)(c1 - b), &s->key));
    s->cert_pem = cl_strndup(c1, (size_t)(c2 - c1));
    s->node_cert_pem = cl_strndup(c2, (size_t)(end - c2));
    CL_GUARD_IF(s->cert_pem == NULL || s->node_cert_pem == NULL, CL_ENOMEM);
    CL_GUARD(cl_cert_from_pem(s->cert_pem, strlen(s->cert_pem), &s->cert));
    CL_GUARD(cl_cert_from_pem(s->node_cert_pem, strlen(s->node_cert_pem), &s->node_cert));
    CL_GUARD_IF(cl_cert_same_key(s->cert, s->key) != 1, CL_EFORMAT);
out:
    if (rc < 0) {
        staged_free(s);
        if (rc != CL_ENOMEM)
            rc = CL_EFORMAT;
    }
    return rc;
}

/* The handle takes the staged identity (s is emptied). */
static void take_identity(cl_ledger *l, staged_identity *s)
{
    cl_key_free(l->service_key);
    cl_cert_free(l->service_cert);
    cl_free(l->service_cert_pem);
    cl_cert_free(l->node_cert);
    cl_free(l->node_cert_pem);
    l->service_key = s->key;
    l->service_cert = s->cert;
    l->service_cert_pem = s->cert_pem;
    l->node_cert = s->node_cert;
    l->node_cert_pem = s->node_cert_pem;
    memset(s, 0, sizeof *s);
}

/* Installs the handle's identity as the files, then removes node/identity.next. */
static int install_identity(cl_ledger *l)
{
    CL_TRY(write_identity_files(l));
    char path[PATH_MAX_LEN];
    CL_TRY(path_join(path, l->node_dir, IDENTITY_NEXT));
    CL_TRY(named(cl_fs_unlink(l->fs, path), path));
    return named(cl_fs_sync_dir(l->fs, l->node_dir), l->node_dir);
}

int cl_ledger_rotate_service_identity(cl_ledger *l, uint64_t view)
{
    CL_ENSURE(!l->failed, CL_ECLOSED);
    staged_identity s = {0};
    cl_cert *endorsement = NULL;
    char *endorse_pem = NULL;
    size_t len = 0;
    int rc;
    CL_GUARD(cl_key_generate(l->service_key->curve, &s.key));
    CL_GUARD(cl_cert_self_signed_ca(s.key, "cledger service", 3650, &s.cert));
    CL_GUARD(cl_cert_endorse_previous(l->service_cert, s.cert, s.key, 3650, &endorsement));
    CL_GUARD(cl_cert_to_pem(endorsement, &endorse_pem, &len));
    CL_GUARD(cl_cert_to_pem(s.cert, &s.cert_pem, &len));
    CL_GUARD(issue_node_cert_under(l, s.key, s.cert, &s.node_cert, &s.node_cert_pem));
    /* Durable before any record of it: a crash after the records finds it at open. A failure here
     * changed nothing the ledger relies on (a staged identity without records is discarded). */
    CL_GUARD(stage_identity(l, &s));
    /* From here the handle's identity runs ahead of the files: any failure poisons it, and the
     * next open settles the rotation from node/identity.next. */
    take_identity(l, &s);
    l->service_version++;
    CL_GUARD(poisoned(l, append_service_record(l, view, endorse_pem)));
    CL_GUARD(poisoned(l, append_node_record(l, view)));
    CL_GUARD(poisoned(l, cl_ledger_sign(l, view, NULL)));
    CL_GUARD(poisoned(l, cl_ledger_sync(l)));
    CL_GUARD(poisoned(l, install_identity(l)));
out:
    staged_free(&s);
    cl_cert_free(endorsement);
    cl_free(endorse_pem);
    return rc;
}

/* The last durable record of the service table: its seqno and its certificate (heap PEM), or
 * seqno 0. Cost: the table's writes (one per rotation). */
typedef struct {
    uint64_t seqno;
    char *cert_pem;
    int rc;
} last_service;

static int last_service_cb(void *arg, const cl_ledger_entry *e)
{
    last_service *ls = arg;
    if (e->op != CL_OP_PUT)
        return 0;
    json_t *j = NULL;
    const char *pem = NULL;
    size_t n = 0;
    int rc = cl_json_parse(e->value, e->value_len, 1u << 20, &j, NULL, 0);
    if (rc == CL_OK)
        rc = cl_json_get_str(j, "cert", &pem, &n);
    char *copy = rc == CL_OK ? cl_strndup(pem, n) : NULL;
    json_decref(j);
    if (rc == CL_OK && copy == NULL)
        rc = CL_ENOMEM;
    if (rc < 0) {
        ls->rc = rc == CL_ENOMEM ? rc : CL_ECORRUPT;
        return ls->rc;
    }
    cl_free(ls->cert_pem);
    ls->cert_pem = copy;
    ls->seqno = e->seqno;
    return 0;
}

static int last_service_record(cl_ledger *l, last_service *ls)
{
    memset(ls, 0, sizeof *ls);
    int rc = cl_ledger_table_scan(l, CL_TABLE_SERVICE, last_service_cb, ls);
    if (rc == CL_OK)
        rc = ls->rc;
    if (rc < 0) {
        cl_free(ls->cert_pem);
        ls->cert_pem = NULL;
    }
    return rc;
}

/* Two PEM certificates are the same certificate (the files may differ in trailing bytes). */
static int same_cert_pem(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na > 0 && (a[na - 1] == '\n' || a[na - 1] == '\r'))
        na--;
    while (nb > 0 && (b[nb - 1] == '\n' || b[nb - 1] == '\r'))
        nb--;
    return na == nb && memcmp(a, b, na) == 0;
}

/* At open, after the chunks, tree and index are settled: finishes or undoes a rotation that
 * stopped on the way (see above), then holds the service identity in place to the ledger: the
 * service certificate must be the last recorded one and the service key its key. */
static int resolve_staged_identity(cl_ledger *l)
{
    char path[PATH_MAX_LEN];
    CL_TRY(path_join(path, l->node_dir, IDENTITY_NEXT));
    last_service ls;
    CL_TRY(last_service_record(l, &ls));
    int rc = CL_OK;
    staged_identity s = {0};
    uint8_t *b = NULL;
    size_t n = 0;
    int exists = cl_fs_exists(l->fs, path);
    CL_GUARD_IF(exists < 0, exists);
    if (exists == 1) {
        CL_GUARD(named(cl_fs_read_all(l->fs, path, 1u << 20, &b, &n), path));
        rc = staged_parse((const char *)b, n, &s);
        if (rc == CL_EFORMAT)
            cl_logf(CL_LOG_ERROR,
                    "ledger: %s is not a staged service identity (a key and two certificates); "
                    "an interrupted rotation cannot be settled without it",
                    path);
        CL_GUARD(rc);
        int recorded = ls.seqno != 0 && same_cert_pem(ls.cert_pem, s.cert_pem);
        if (recorded && ls.seqno <= l->signed_seqno) {
            cl_logf(CL_LOG_WARN,
                    "ledger: finishing an interrupted service identity rotation (recorded and "
                    "signed at seqno %" PRIu64 "): installing its key and certificates",
                    ls.seqno);
            take_identity(l, &s);
            CL_GUARD(install_identity(l));
        } else {
            if (recorded) {
                /* Its records, unsigned, end the ledger (the rotation appends nothing else
                 * before its signature): cut them. */
                cl_logf(CL_LOG_WARN,
                        "ledger: undoing an interrupted service identity rotation: its records "
                        "from seqno %" PRIu64 " were never signed",
                        ls.seqno);
                CL_GUARD(cl_ledger_truncate(l, ls.seqno - 1));
                cl_free(ls.cert_pem);
                CL_GUARD(last_service_record(l, &ls));
            } else {
                cl_logf(CL_LOG_WARN, "ledger: discarding an interrupted service identity "
                                     "rotation that left no record");
            }
            CL_GUARD(named(cl_fs_unlink(l->fs, path), path));
            CL_GUARD(named(cl_fs_sync_dir(l->fs, l->node_dir), l->node_dir));
        }
    }
    if (ls.seqno != 0 && (!same_cert_pem(ls.cert_pem, l->service_cert_pem) ||
                          cl_cert_same_key(l->service_cert, l->service_key) != 1)) {
        cl_logf(CL_LOG_ERROR,
                "ledger: %s/service_cert.pem or %s/service_key.pem is not the service identity "
                "the ledger recorded last (seqno %" PRIu64 "): receipts would not verify",
                l->dir, l->node_dir, ls.seqno);
        CL_GUARD(CL_ECORRUPT);
    }
out:
    if (b != NULL) {
        cl_wipe(b, n);
        cl_free(b);
    }
    staged_free(&s);
    cl_free(ls.cert_pem);
    return rc;
}

/* merkle/rebuild: written when a proof read from the stored tree does not reproduce its signed
 * root (a damaged record); the next open rebuilds the tree from the chunks (check_tree). */
#define REBUILD_FILE "rebuild"

static int rebuild_path(const cl_ledger *l, char *out)
{
    return path_join(out, l->merkle_dir, REBUILD_FILE);
}

/* A derived store (the Merkle tree or the index) that a read found wrong: the marker file `name`
 * with content `mark`, written in its directory `dir`, makes the next open rebuild the store from
 * the chunks (check_tree, index_marker_set). Written once per ledger (*asked); a marker that could
 * not be written is tried again by the next read that finds damage. `why` says what was found. */
static void ask_rebuild(cl_ledger *l, int *asked, const char *dir, const char *name,
                        const char *mark, const char *store, const char *why)
{
    if (*asked)
        return;
    char path[PATH_MAX_LEN];
    int rc = path_join(path, dir, name);
    if (rc == CL_OK)
        rc = cl_fs_write_atomic(l->fs, path, mark, strlen(mark), 0600);
    cl_logf(CL_LOG_ERROR, "ledger: %s; refused. The next start rebuilds %s from the chunks%s%s%s",
            why, store, rc == CL_OK ? "" : " (the marker could not be written: ",
            rc == CL_OK ? "" : cl_strerror(rc),
            rc == CL_OK ? "" : "; remove its directory instead)");
    *asked = rc == CL_OK;
}

/* Asks the next open to rebuild the tree (a stored record was found wrong). */
static void request_rebuild(cl_ledger *l, const char *what, uint64_t seqno)
{
    char why[PATH_MAX_LEN + 160];
    snprintf(why, sizeof why,
             "the %s of seqno %" PRIu64
             " does not reproduce its signed root (a damaged record in %s, or a damaged chunk)",
             what, seqno, l->merkle_dir);
    ask_rebuild(l, &l->rebuild_asked, l->merkle_dir, REBUILD_FILE, "rebuild\n", "the Merkle store",
                why);
}

#define INDEX_MARKER "dirty"      /* index/dirty: see "the index marker" below */
#define INDEX_DAMAGED "damaged\n" /* its content once a read found the index wrong */

/* The index is derived state (index.h). A read that finds it wrong (CL_ECORRUPT: rows out of order
 * or ending early, a page LMDB cannot read; or what the caller found: a durable seqno without a
 * location, a location holding another frame) is answered with CL_ECORRUPT, never with a short or
 * wrong result, and makes the next open rebuild it from the chunks: index/dirty is rewritten to
 * name no boot, and close leaves it. Other errors (CL_EDB: the LMDB reader table full, say; no
 * memory) say nothing about the rows: they pass through and ask for nothing. */
static int index_damage(cl_ledger *l, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int index_damage(cl_ledger *l, int rc, const char *fmt, ...)
{
    if (rc != CL_ECORRUPT)
        return rc;
    l->index_faults++;
    char what[160], why[PATH_MAX_LEN + 200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(why, sizeof why, "the index in %s %s", l->index_dir, what);
    ask_rebuild(l, &l->index_damaged, l->index_dir, INDEX_MARKER, INDEX_DAMAGED, "the index", why);
    return CL_ECORRUPT;
}

/* ---- reading ----------------------------------------------------------------------------------
 */

static int chunk_for(const cl_ledger *l, uint64_t start, cl_chunk_name *out)
{
    if (l->open_chunk != NULL && start == l->open_start) {
        cl_chunk_name c = {start, 0, 0};
        *out = c;
        return CL_OK;
    }
    size_t lo = 0, hi = l->nchunks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->chunks[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    CL_ENSURE(lo < l->nchunks && l->chunks[lo].start == start, CL_ECORRUPT);
    *out = l->chunks[lo];
    return CL_OK;
}

/* The chunk whose seqnos include `seqno` (the open chunk from its start on); CL_ENOENT past the
 * ledger's chunks. */
static int chunk_of_seqno(const cl_ledger *l, uint64_t seqno, cl_chunk_name *out)
{
    if (l->open_start != 0 && seqno >= l->open_start) {
        *out = (cl_chunk_name){l->open_start, 0, 0};
        return CL_OK;
    }
    size_t lo = 0, hi = l->nchunks; /* the first chunk that starts after seqno */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->chunks[mid].start <= seqno)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || l->chunks[lo - 1].end < seqno)
        return CL_ENOENT;
    *out = l->chunks[lo - 1];
    return CL_OK;
}

static int read_file_for(cl_ledger *l, uint64_t start, cl_file **f)
{
    if (l->open_chunk != NULL && start == l->open_start) {
        *f = l->open_chunk;
        return CL_OK;
    }
    read_slot *victim = &l->rcache[0];
    for (int i = 0; i < READ_CACHE; i++) {
        if (l->rcache[i].f != NULL && l->rcache[i].start == start) {
            l->rcache[i].stamp = ++l->rstamp;
            *f = l->rcache[i].f;
            return CL_OK;
        }
        if (l->rcache[i].stamp < victim->stamp)
            victim = &l->rcache[i];
    }
    cl_chunk_name c;
    char path[PATH_MAX_LEN];
    CL_TRY(chunk_for(l, start, &c));
    CL_TRY(chunk_path(l, &c, path));
    cl_file_close(victim->f);
    victim->f = NULL;
    CL_TRY(cl_fs_open(l->fs, path, CL_FS_RDONLY, 0, &victim->f));
    victim->start = start;
    victim->stamp = ++l->rstamp;
    *f = victim->f;
    return CL_OK;
}

/* The index entry of a durable seqno. A read of an entry asks for it twice in a row (its view for
 * the transaction's state, then its frame), so the last answer is kept; entries of durable seqnos
 * change only by truncation, which forgets it. */
static int loc_of(cl_ledger *l, uint64_t seqno, cl_index_loc *loc)
{
    if (seqno != l->loc_seqno) {
        l->loc_seqno = 0;
        int rc = cl_index_get_entry(l->idx, seqno, &l->loc_memo);
        if (rc < 0) { /* every durable seqno is indexed, with a 40-byte record */
            memset(loc, 0, sizeof *loc);
            return index_damage(l, rc == CL_ENOENT ? CL_ECORRUPT : rc,
                                "has no usable location for seqno %" PRIu64, seqno);
        }
        l->loc_seqno = seqno;
    }
    *loc = l->loc_memo;
    return CL_OK;
}

/* 1 when the chunk whose seqnos include seqno holds a whole, checksummed frame of it (whatever
 * chunk the index named), with its file offset in *off (may be NULL). O(chunk): the index's
 * error paths only. */
static int chunk_holds(cl_ledger *l, uint64_t seqno, uint64_t *off)
{
    cl_chunk_name c;
    char path[PATH_MAX_LEN];
    cl_chunk_reader r;
    if (chunk_of_seqno(l, seqno, &c) != CL_OK || chunk_path(l, &c, path) != CL_OK ||
        cl_chunk_reader_open(&r, l->fs, path) != CL_OK)
        return 0;
    int found = 0;
    for (;;) {
        cl_entry_view e;
        uint64_t at;
        if (cl_chunk_reader_next(&r, &e, &at) != CL_OK || e.seqno > seqno)
            break;
        if (e.seqno == seqno) {
            found = 1;
            if (off != NULL)
                *off = at;
            break;
        }
    }
    cl_chunk_reader_close(&r);
    return found;
}

/* Reads and decodes the frame of a durable seqno into buf; e borrows buf. */
static int read_frame(cl_ledger *l, uint64_t seqno, cl_buf *buf, cl_entry_view *e)
{
    CL_ENSURE(seqno >= 1 && seqno <= l->durable_seqno, CL_ERANGE);
    cl_index_loc loc;
    CL_TRY(loc_of(l, seqno, &loc));
    /* The location sizes an allocation and names a chunk: a length no frame can have, or a chunk
     * the ledger does not have (read_file_for's only CL_ECORRUPT), is the index's damage (the
     * chunks are the source of truth). */
    if (loc.length > CL_ENTRY_MAX_FRAME)
        return index_damage(l, CL_ECORRUPT, "gives an impossible location for seqno %" PRIu64,
                            seqno);
    cl_file *f;
    int rc = read_file_for(l, loc.chunk_start, &f);
    if (rc == CL_ECORRUPT)
        return index_damage(l, rc, "gives an impossible location for seqno %" PRIu64, seqno);
    CL_TRY(rc);
    cl_buf_reset(buf);
    CL_TRY(cl_buf_reserve(buf, loc.length));
    cl_cursor c;
    rc = cl_file_read_exact(f, buf->data, loc.length, loc.offset);
    if (rc == CL_OK) {
        buf->len = loc.length;
        cl_cursor_init(&c, buf->data, buf->len);
        rc = cl_entry_decode(&c, e);
    }
    /* A whole, checksummed frame of another seqno: the location is wrong, not the chunk. So is a
     * row whose view or type is not the frame's (the view decides a transaction's state). */
    if (rc == CL_OK && (e->seqno != seqno || cl_cursor_left(&c) != 0))
        return index_damage(l, CL_ECORRUPT, "points to another frame for seqno %" PRIu64, seqno);
    if (rc == CL_OK && (e->view != loc.view || e->type != loc.type))
        return index_damage(l, CL_ECORRUPT,
                            "records another view or type than the frame of seqno %" PRIu64, seqno);
    if (rc == CL_ETRUNC || rc == CL_ECORRUPT || rc == CL_EFORMAT) {
        /* Bytes that are no whole frame: the location is wrong when the seqno's chunk holds the
         * frame (elsewhere, or the index named another chunk; O(chunk), on this error path
         * only), the chunk is damaged otherwise. */
        if (chunk_holds(l, seqno, NULL))
            return index_damage(l, CL_ECORRUPT, "points off the frame of seqno %" PRIu64, seqno);
        cl_logf(CL_LOG_ERROR,
                "ledger: the frame of seqno %" PRIu64
                " cannot be read from the chunk that starts at"
                " %" PRIu64 " (%s): run cledger verify-ledger",
                seqno, loc.chunk_start, cl_errname(rc));
        return CL_ECORRUPT;
    }
    return rc;
}

static int decrypt_priv(cl_ledger *l, const cl_entry_view *e, cl_buf *plain)
{
    cl_buf_reset(plain);
    CL_TRY(cl_buf_reserve(plain, e->priv_len));
    if (!(e->flags & CL_ENTRY_F_ENCRYPTED)) {
        CL_TRY(cl_buf_append(plain, e->priv, e->priv_len));
        return CL_OK;
    }
    const secret_rec *s = secret_for(l, e->seqno);
    CL_ENSURE(s != NULL, CL_ENOSECRET);
    cl_buf aad = CL_BUF_INIT;
    int rc = cl_entry_aad(e, &aad);
    if (rc == CL_OK)
        rc = cl_aead_decrypt(s->key, e->iv, aad.data, aad.len, e->priv, e->priv_len, e->tag,
                             plain->data);
    cl_buf_free(&aad);
    CL_TRY(rc);
    plain->len = e->priv_len;
    return CL_OK;
}

/* Every collection scan of the index goes through here, so damage it finds (rows out of order,
 * ending early, a broken chain) is answered and asks for a rebuild wherever the scan is made. */
static int idx_scan(cl_ledger *l, const char *coll, size_t len, uint64_t from, uint64_t to,
                    size_t limit, cl_index_seqno_cb cb, void *arg, uint64_t *next)
{
    int rc = cl_index_collection_scan(l->idx, coll, len, from, to, limit, cb, arg, next);
    if (rc >= 0)
        return rc;
    return index_damage(l, rc, "gave a collection scan that fails from seqno %" PRIu64, from);
}

int cl_ledger_read_listed(cl_ledger *l, uint64_t seqno, const char *coll, size_t len,
                          cl_ledger_entry *out)
{
    CL_TRY(cl_ledger_read(l, seqno, out));
    /* the collection the entry is listed under: its own, or its table's */
    char tc[TABLE_COLL_LEN + 1];
    const char *own = out->type == CL_ENTRY_USER ? out->collection : NULL;
    size_t own_len = out->collection_len;
    if (out->type == CL_ENTRY_INTERNAL) {
        table_coll(out->table, tc);
        own = tc;
        own_len = TABLE_COLL_LEN;
    }
    if (own != NULL && own_len == len && memcmp(own, coll, len) == 0)
        return CL_OK;
    cl_ledger_entry_free(out);
    return index_damage(l, CL_ECORRUPT, "lists under another collection seqno %" PRIu64, seqno);
}

void cl_ledger_entry_free(cl_ledger_entry *e)
{
    if (e->contents != NULL)
        cl_wipe(e->contents, e->contents_len);
    cl_free(e->contents);
    cl_free(e->collection);
    cl_free(e->key);
    cl_free(e->value);
    cl_wipe(e->claims_key, sizeof e->claims_key);
    memset(e, 0, sizeof *e);
}

int cl_ledger_read(cl_ledger *l, uint64_t seqno, cl_ledger_entry *out)
{
    memset(out, 0, sizeof *out);
    cl_entry_view e;
    cl_buf plain = CL_BUF_SECRET;
    int rc;
    CL_GUARD(read_frame(l, seqno, &l->scratch, &e));
    out->seqno = seqno;
    out->view = e.view;
    out->type = e.type;
    memcpy(out->claims_digest, e.claims_digest, 32);
    if (e.type == CL_ENTRY_USER) {
        cl_user_pub up;
        cl_user_priv pv;
        CL_GUARD(cl_user_pub_decode(e.pub, e.pub_len, &up));
        CL_GUARD(decrypt_priv(l, &e, &plain));
        CL_GUARD(cl_user_priv_decode(plain.data, plain.len, &pv));
        out->collection = cl_strndup((const char *)up.collection, up.collection_len);
        out->collection_len = up.collection_len;
        out->contents = cl_malloc(pv.contents_len + 1);
        CL_GUARD_IF(out->collection == NULL || out->contents == NULL, CL_ENOMEM);
        memcpy(out->contents, pv.contents, pv.contents_len);
        out->contents[pv.contents_len] = 0;
        out->contents_len = pv.contents_len;
        memcpy(out->claims_key, pv.claims_key, 32);
    } else if (e.type == CL_ENTRY_INTERNAL) {
        cl_internal_pub ip;
        CL_GUARD(cl_internal_pub_decode(e.pub, e.pub_len, &ip));
        out->table = ip.table;
        out->op = ip.op;
        out->key = cl_strndup((const char *)ip.key, ip.key_len);
        out->value = cl_strndup((const char *)ip.value, ip.value_len);
        CL_GUARD_IF(out->key == NULL || out->value == NULL, CL_ENOMEM);
        out->key_len = ip.key_len;
        out->value_len = ip.value_len;
    }
out:
    cl_buf_free(&plain);
    if (rc < 0)
        cl_ledger_entry_free(out);
    return rc;
}

int cl_ledger_view_of(cl_ledger *l, uint64_t seqno, uint64_t *view)
{
    CL_ENSURE(seqno >= 1 && seqno <= l->durable_seqno, CL_ERANGE);
    cl_index_loc loc;
    CL_TRY(loc_of(l, seqno, &loc));
    *view = loc.view;
    return CL_OK;
}

int cl_ledger_view_checked(cl_ledger *l, uint64_t seqno, uint64_t *view)
{
    CL_ENSURE(seqno >= 1 && seqno <= l->durable_seqno, CL_ERANGE);
    cl_index_loc loc;
    CL_TRY(loc_of(l, seqno, &loc));
    /* The frame's first bytes: u32 length, version, type, u16 flags, u64 view, u64 seqno. */
    uint8_t h[24];
    cl_file *f = NULL;
    if (loc.length >= sizeof h && loc.length <= CL_ENTRY_MAX_FRAME &&
        read_file_for(l, loc.chunk_start, &f) == CL_OK &&
        cl_file_read_exact(f, h, sizeof h, loc.offset) == CL_OK &&
        (uint64_t)cl_load_u32(h) + 4 == loc.length && h[5] == loc.type &&
        cl_load_u64(h + 8) == loc.view && cl_load_u64(h + 16) == seqno) {
        *view = loc.view;
        return CL_OK;
    }
    /* Something differs: the whole frame's read tells the index's damage from the chunk's. */
    cl_buf b = CL_BUF_INIT;
    cl_entry_view e;
    int rc = read_frame(l, seqno, &b, &e);
    cl_buf_free(&b);
    if (rc == CL_OK) /* whole and matching after all: the first read failed (EIO, say) */
        rc = CL_EIO;
    return rc;
}

int cl_ledger_commit_evidence(cl_ledger *l, uint64_t seqno, char *out, size_t cap)
{
    uint64_t view;
    CL_TRY(cl_ledger_view_of(l, seqno, &view));
    return commit_evidence(l, view, seqno, out, cap);
}

/* The payload of a signature frame read from a chunk. A signature signs the tree up to and
 * including itself, so its tree size is its own seqno; a whole, checksummed frame that says
 * otherwise is a damaged chunk (CL_ECORRUPT, logged): no derived state can mend it. */
static int sig_of(const cl_entry_view *e, cl_sig_pub *sp)
{
    CL_ENSURE(e->type == CL_ENTRY_SIGNATURE, CL_EINVAL);
    int rc = cl_sig_pub_decode(e->pub, e->pub_len, sp);
    if (rc == CL_OK && sp->tree_size != e->seqno)
        rc = CL_ECORRUPT;
    if (rc < 0)
        cl_logf(CL_LOG_ERROR, "ledger: the signature at seqno %" PRIu64 " %s: %s", e->seqno,
                rc == CL_ECORRUPT ? "signs another tree size" : "is unreadable", cl_strerror(rc));
    return rc == CL_OK ? CL_OK : CL_ECORRUPT;
}

typedef struct {
    uint64_t found;
} first_cb_arg;

static int first_cb(void *arg, uint64_t seqno)
{
    ((first_cb_arg *)arg)->found = seqno;
    return 1;
}

int cl_ledger_receipt(cl_ledger *l, uint64_t seqno, json_t **out)
{
    CL_ENSURE(seqno >= 1 && seqno <= l->durable_seqno, CL_ERANGE);
    cl_entry_view e;
    cl_receipt r;
    cl_receipt_init(&r);
    cl_buf sigbuf = CL_BUF_INIT;
    int rc;
    CL_GUARD(read_frame(l, seqno, &l->scratch, &e));
    CL_GUARD_IF(e.type == CL_ENTRY_SIGNATURE, CL_EINVAL);
    first_cb_arg fa = {0};
    CL_GUARD(idx_scan(l, SIG_COLLECTION, SIG_COLLECTION_LEN, seqno + 1, l->signed_seqno, 1,
                      first_cb, &fa, NULL));
    CL_GUARD_IF(fa.found == 0, CL_ENOTSIGNED);

    cl_entry_write_set_digest(&e, r.write_set_digest);
    memcpy(r.claims_digest, e.claims_digest, 32);
    char ce[128];
    CL_GUARD(commit_evidence(l, e.view, seqno, ce, sizeof ce));
    CL_GUARD(cl_receipt_set_commit_evidence(&r, ce, strlen(ce)));

    cl_merkle_step steps[CL_MERKLE_MAX_PATH];
    size_t nsteps = 0;
    CL_GUARD(cl_merkle_path(l->tree, seqno, fa.found, steps, &nsteps));
    for (size_t i = 0; i < nsteps; i++)
        CL_GUARD(cl_receipt_add_proof_step(&r, steps[i].hash, steps[i].is_left));

    cl_entry_view se;
    cl_sig_pub sp;
    CL_GUARD(read_frame(l, fa.found, &sigbuf, &se));
    if (se.type != CL_ENTRY_SIGNATURE)
        CL_GUARD(index_damage(l, CL_ECORRUPT,
                              "lists among the signatures the entry at seqno %" PRIu64, fa.found));
    CL_GUARD(sig_of(&se, &sp));
    /* The proof comes from the stored tree (no checksum): it must lead from this entry's leaf to
     * the root the signature signs, or the receipt would not verify (see check_tree). */
    {
        uint8_t leaf[32], root[32];
        cl_entry_leaf(r.write_set_digest, e.ce_digest, e.claims_digest, leaf);
        CL_GUARD(cl_merkle_path_root(leaf, steps, nsteps, root));
        if (!cl_ct_equal(root, sp.root, 32)) {
            request_rebuild(l, "receipt proof", seqno);
            CL_GUARD(CL_ECORRUPT);
        }
    }
    CL_GUARD(cl_receipt_set_signature(&r, sp.sig, sp.sig_len));
    r.has_node_id = 1;
    memcpy(r.node_id, sp.node_id, 32);

    /* The signing node's current certificate (endorsed by the current service identity). */
    char mk[80], hex[65];
    cl_hex_encode(sp.node_id, 32, hex);
    snprintf(mk, sizeof mk, "node:%s", hex);
    /* Every node that signed has its row, holding {"cert": PEM}: a row missing, empty or
     * unreadable is the index's damage (the row is derived from the node's internal record). */
    size_t vlen = 0;
    rc = cl_index_get_meta(l->idx, mk, NULL, 0, &vlen);
    if (rc == CL_OK || rc == CL_EOVERFLOW) {
        cl_buf_reset(&l->scratch2);
        rc = cl_buf_reserve(&l->scratch2, vlen);
        if (rc == CL_OK)
            rc = cl_index_get_meta(l->idx, mk, l->scratch2.data, vlen, &vlen);
    }
    json_t *nj = NULL;
    if (rc == CL_OK)
        rc = cl_json_parse((const char *)l->scratch2.data, vlen, 1u << 20, &nj, NULL, 0);
    const char *pem = NULL;
    size_t pemlen = 0;
    if (rc == CL_OK)
        rc = cl_json_get_str(nj, "cert", &pem, &pemlen);
    if (rc == CL_OK)
        rc = cl_receipt_set_cert(&r, pem, pemlen);
    json_decref(nj);
    if (rc < 0 && rc != CL_ENOMEM && rc != CL_EDB) /* the row's content, whatever the check */
        rc = CL_ECORRUPT;
    CL_GUARD(index_damage(
        l, rc, "has no readable certificate for the node that signed seqno %" PRIu64, fa.found));
    CL_GUARD(cl_receipt_to_json(&r, out));
out:
    cl_receipt_clear(&r);
    cl_buf_free(&sigbuf);
    return rc;
}

/* Reads a durable signature entry's signed root and tree size. */
static int read_signature(cl_ledger *l, uint64_t seqno, cl_buf *buf, cl_sig_pub *sp)
{
    cl_entry_view e;
    CL_ENSURE(seqno >= 1 && seqno <= l->signed_seqno, CL_EINVAL);
    CL_TRY(read_frame(l, seqno, buf, &e));
    return sig_of(&e, sp); /* CL_EINVAL when seqno is not a signature */
}

int cl_ledger_signed_raft_index(cl_ledger *l, uint64_t *raft_index)
{
    *raft_index = 0;
    if (l->signed_seqno == 0)
        return CL_OK;
    cl_buf b = CL_BUF_INIT;
    cl_sig_pub sp;
    int rc = read_signature(l, l->signed_seqno, &b, &sp);
    if (rc == CL_OK)
        *raft_index = sp.raft_index;
    cl_buf_free(&b);
    return rc;
}

int cl_ledger_consistency(cl_ledger *l, uint64_t from, uint64_t to, json_t **out)
{
    CL_ENSURE(from <= to, CL_EINVAL);
    cl_sig_pub a, b;
    cl_buf ba = CL_BUF_INIT, bb = CL_BUF_INIT;
    uint8_t(*proof)[32] = NULL;
    json_t *j = NULL, *arr = NULL;
    int rc;
    CL_GUARD(read_signature(l, from, &ba, &a));
    CL_GUARD(read_signature(l, to, &bb, &b));
    /* The stored tree must agree with what was signed; a mismatch is corruption. */
    uint8_t ra[32], rb[32];
    CL_GUARD(cl_merkle_root_at(l->tree, a.tree_size, ra));
    CL_GUARD(cl_merkle_root_at(l->tree, b.tree_size, rb));
    if (!cl_ct_equal(ra, a.root, 32) || !cl_ct_equal(rb, b.root, 32)) {
        request_rebuild(l, "root", cl_ct_equal(ra, a.root, 32) ? to : from);
        CL_GUARD(CL_ECORRUPT);
    }
    proof = cl_malloc(CL_MERKLE_MAX_CONSISTENCY * sizeof *proof);
    CL_GUARD_IF(proof == NULL, CL_ENOMEM);
    size_t n = 0;
    CL_GUARD(cl_merkle_consistency(l->tree, a.tree_size, b.tree_size, proof, &n));
    if (cl_merkle_verify_consistency(a.tree_size, b.tree_size, a.root, b.root,
                                     (const uint8_t(*)[32])proof, n) != CL_OK) {
        request_rebuild(l, "consistency proof", to);
        CL_GUARD(CL_ECORRUPT);
    }
    char hex[65];
    j = json_object();
    arr = json_array();
    CL_GUARD_IF(j == NULL || arr == NULL, CL_ENOMEM);
    for (size_t i = 0; i < n; i++) {
        cl_hex_encode(proof[i], 32, hex);
        CL_GUARD_IF(json_array_append_new(arr, json_string(hex)) != 0, CL_ENOMEM);
    }
    int bad = json_object_set_new(j, "fromTreeSize", json_integer((json_int_t)a.tree_size));
    bad |= json_object_set_new(j, "toTreeSize", json_integer((json_int_t)b.tree_size));
    cl_hex_encode(a.root, 32, hex);
    bad |= json_object_set_new(j, "fromRoot", json_string(hex));
    cl_hex_encode(b.root, 32, hex);
    bad |= json_object_set_new(j, "toRoot", json_string(hex));
    bad |= json_object_set_new(j, "proof", arr);
    arr = NULL;
    CL_GUARD_IF(bad != 0, CL_ENOMEM);
    *out = j;
    j = NULL;
out:
    json_decref(arr);
    json_decref(j);
    cl_free(proof);
    cl_buf_free(&ba);
    cl_buf_free(&bb);
    return rc;
}

/* ---- sealed consensus commands --------------------------------------------------------------- */

/* Two formats. v2 (written since 2026-11-25): u64 (appliesFrom | 2 << 56) || salt[16] || IV[12]
 * || tag[16] || ciphertext, under HMAC-SHA256(secret, SEAL_KDF || salt): a key of its own per
 * process and secret (never the key that encrypts ledger entries), IV = counter (u64 LE) || 0[4],
 * so no IV repeats under a key. v1 (read only): u64 appliesFrom || random IV[12] || tag[16] ||
 * ciphertext under the secret itself: random 96-bit IVs under one key are safe for about 2^32
 * commands (NIST SP 800-38D), some days of writes at full rate. appliesFrom never reaches 2^56,
 * so the top byte tells the formats apart. */
#define SEAL_AAD_V1 "cledger command v1"
#define SEAL_AAD_V2 "cledger command v2"
#define SEAL_KDF "cledger command seal key v2"
#define SEAL_HDR_V1 (8 + CL_AEAD_IV_LEN + CL_AEAD_TAG_LEN)
#define SEAL_HDR_V2 (8 + 16 + CL_AEAD_IV_LEN + CL_AEAD_TAG_LEN)
#define SEAL_V2 (2ull << 56)

static int seal_derive(const secret_rec *s, const uint8_t salt[16], struct seal_key *k)
{
    if (k->key == NULL && (k->key = cl_secret_alloc(32)) == NULL)
        return CL_ENOMEM;
    uint8_t msg[sizeof SEAL_KDF - 1 + 16];
    memcpy(msg, SEAL_KDF, sizeof SEAL_KDF - 1);
    memcpy(msg + sizeof SEAL_KDF - 1, salt, 16);
    int rc = cl_hmac_sha256(s->key, 32, msg, sizeof msg, k->key);
    if (rc < 0) {
        cl_secret_free(k->key, 32);
        k->key = NULL;
        return rc;
    }
    memcpy(k->salt, salt, 16);
    k->from = s->applies_from;
    return CL_OK;
}

int cl_ledger_seal(cl_ledger *l, const void *in, size_t len, cl_buf *out)
{
    CL_ENSURE(l->nsecrets > 0, CL_ENOSECRET);
    const secret_rec *s = &l->secrets[l->nsecrets - 1];
    CL_ENSURE(s->applies_from < (1ull << 56), CL_EOVERFLOW);
    if (l->seal.key == NULL || l->seal.from != s->applies_from || l->seal_ctr == UINT64_MAX) {
        uint8_t salt[16];
        CL_TRY(cl_random(salt, sizeof salt));
        CL_TRY(seal_derive(s, salt, &l->seal));
        l->seal_ctr = 0;
    }
    uint8_t hdr[SEAL_HDR_V2];
    cl_store_u64(hdr, s->applies_from | SEAL_V2);
    memcpy(hdr + 8, l->seal.salt, 16);
    uint8_t *iv = hdr + 24;
    cl_store_u64(iv, l->seal_ctr);
    memset(iv + 8, 0, CL_AEAD_IV_LEN - 8);
    cl_buf_reset(out);
    CL_TRY(cl_buf_reserve(out, SEAL_HDR_V2 + len));
    l->seal_ctr++; /* spent, whatever happens next */
    CL_TRY(cl_aead_encrypt(l->seal.key, iv, (const uint8_t *)SEAL_AAD_V2, strlen(SEAL_AAD_V2), in,
                           len, out->data + SEAL_HDR_V2, iv + CL_AEAD_IV_LEN));
    memcpy(out->data, hdr, SEAL_HDR_V2);
    out->len = SEAL_HDR_V2 + len;
    return CL_OK;
}

int cl_ledger_unseal(cl_ledger *l, const void *in, size_t len, cl_buf *out)
{
    CL_ENSURE(len >= 8, CL_EFORMAT);
    const uint8_t *p = in;
    uint64_t w = cl_load_u64(p);
    uint64_t version = w >> 56, from = w & ((1ull << 56) - 1);
    CL_ENSURE(version == 0 || version == 2, CL_EFORMAT);
    size_t hl = version == 0 ? SEAL_HDR_V1 : SEAL_HDR_V2;
    CL_ENSURE(len >= hl, CL_EFORMAT);
    const secret_rec *s = NULL;
    for (size_t i = 0; i < l->nsecrets; i++)
        if (l->secrets[i].applies_from == from)
            s = &l->secrets[i];
    CL_ENSURE(s != NULL, CL_ENOSECRET);
    const uint8_t *key = s->key, *iv = p + 8;
    const char *aad = SEAL_AAD_V1;
    if (version == 2) {
        const uint8_t *salt = p + 8;
        iv = p + 24;
        aad = SEAL_AAD_V2;
        if (l->seal.key != NULL && l->seal.from == from && memcmp(l->seal.salt, salt, 16) == 0) {
            key = l->seal.key;
        } else {
            if (l->unseal.key == NULL || l->unseal.from != from ||
                memcmp(l->unseal.salt, salt, 16) != 0)
                CL_TRY(seal_derive(s, salt, &l->unseal));
            key = l->unseal.key;
        }
    }
    cl_buf_reset(out);
    CL_TRY(cl_buf_reserve(out, len - hl + 1));
    CL_TRY(cl_aead_decrypt(key, iv, (const uint8_t *)aad, strlen(aad), p + hl, len - hl,
                           iv + CL_AEAD_IV_LEN, out->data));
    out->len = len - hl;
    return CL_OK;
}

/* ---- collections and tables ---------------------------------------------------------------- */

int cl_ledger_collection_scan(cl_ledger *l, const char *coll, size_t len, uint64_t from,
                              uint64_t to, size_t limit, int (*cb)(void *arg, uint64_t seqno),
                              void *arg, uint64_t *next)
{
    CL_ENSURE(len >= 1 && (uint8_t)coll[0] != 0x01, CL_EINVAL);
    if (to > l->durable_seqno)
        to = l->durable_seqno;
    if (next)
        *next = 0;
    if (from > to)
        return CL_OK;
    return idx_scan(l, coll, len, from, to, limit, cb, arg, next);
}

int cl_ledger_collection_last(cl_ledger *l, const char *coll, size_t len, uint64_t *seqno)
{
    CL_ENSURE(len >= 1 && (uint8_t)coll[0] != 0x01, CL_EINVAL);
    cl_index_coll_stat st;
    int rc = cl_index_collection_stat(l->idx, coll, len, &st);
    if (rc == CL_ENOENT) {
        *seqno = 0;
        return CL_OK;
    }
    CL_TRY(index_damage(l, rc, "has an unreadable statistics row"));
    *seqno = st.last;
    return CL_OK;
}

typedef struct {
    int (*cb)(void *arg, const char *coll, size_t len);
    void *arg;
} coll_list_arg;

static int coll_list_cb(void *arg, const char *coll, size_t len, uint64_t count)
{
    coll_list_arg *a = arg;
    if (len > 0 && (uint8_t)coll[0] == 0x01)
        return 0; /* internal */
    return a->cb(a->arg, coll, len);
}

int cl_ledger_collections(cl_ledger *l, int (*cb)(void *arg, const char *coll, size_t len),
                          void *arg)
{
    coll_list_arg a = {cb, arg};
    int rc = cl_index_collections_list(l->idx, coll_list_cb, &a);
    return rc < 0 ? index_damage(l, rc, "gave a collection list that fails") : rc;
}

typedef struct {
    size_t n;
} count_arg;

static int count_internal_cb(void *arg, const char *coll, size_t len, uint64_t count)
{
    if (len > 0 && (uint8_t)coll[0] == 0x01)
        ((count_arg *)arg)->n++;
    return 0;
}

int cl_ledger_collection_count(cl_ledger *l, size_t *n)
{
    size_t all = 0;
    CL_TRY(index_damage(l, cl_index_collection_count(l->idx, &all), "has no collection count"));
    /* Internal collections sort first (0x01) and are few: count them and subtract. */
    count_arg a = {0};
    CL_TRY(index_damage(l, cl_index_collections_list(l->idx, count_internal_cb, &a),
                        "gave a collection list that fails"));
    *n = all - a.n;
    return CL_OK;
}

typedef struct {
    uint64_t seq[256];
    size_t n;
} seq_batch;

static int batch_cb(void *arg, uint64_t seqno)
{
    seq_batch *b = arg;
    b->seq[b->n++] = seqno;
    return 0;
}

/* cl_ledger_table_scan of the table's writes at seqnos in [from, to] (to <= the durable seqno). */
static int table_scan_range(cl_ledger *l, uint8_t table, uint64_t from, uint64_t to,
                            int (*cb)(void *arg, const cl_ledger_entry *e), void *arg)
{
    CL_ENSURE(table >= CL_TABLE_USERS && table <= CL_TABLE_MAX && from >= 1, CL_EINVAL);
    if (to > l->durable_seqno)
        to = l->durable_seqno;
    char coll[TABLE_COLL_LEN + 1];
    table_coll(table, coll);
    /* The index is not re-entrant: collect a bounded batch of seqnos, then read them. */
    seq_batch *b = cl_malloc(sizeof *b);
    CL_ENSURE(b != NULL, CL_ENOMEM);
    int rc = CL_OK, stop = 0;
    while (rc == CL_OK && !stop && from != 0) {
        b->n = 0;
        uint64_t next = 0;
        rc = idx_scan(l, coll, TABLE_COLL_LEN, from, to, 256, batch_cb, b, &next);
        for (size_t i = 0; rc == CL_OK && !stop && i < b->n; i++) {
            cl_ledger_entry e;
            rc = cl_ledger_read_listed(l, b->seq[i], coll, TABLE_COLL_LEN, &e);
            if (rc == CL_OK) {
                int r = cb(arg, &e);
                cl_ledger_entry_free(&e);
                if (r < 0)
                    rc = r;
                else if (r > 0)
                    stop = 1;
            }
        }
        from = next;
    }
    cl_free(b);
    return rc;
}

int cl_ledger_table_scan(cl_ledger *l, uint8_t table,
                         int (*cb)(void *arg, const cl_ledger_entry *e), void *arg)
{
    return table_scan_range(l, table, 1, UINT64_MAX, cb, arg);
}

/* ---- index meta rows of identity writes, after a cut -------------------------------------------
 *
 * index_internal_meta mirrors every node record into the meta row node:<id> and every service
 * record into service_version. cl_index_truncate_from leaves meta rows alone, so a cut that
 * removes such records puts back, in the same index transaction, what the records that stay say:
 * the last one of each node (no row when none stays) and the last service record's version
 * (identity_meta_batch). Cost: the two tables' writes (one per node and rotation), only when the
 * cut holds an identity write; finding that out is two index lookups. */
typedef struct {
    char (*ids)[65]; /* node ids (hex) whose rows are to be derived again, distinct */
    size_t n, cap;
    int service; /* service_version too */
} identity_cut;

static int cut_node_cb(void *arg, const cl_ledger_entry *e)
{
    identity_cut *ic = arg;
    if (e->key_len != 64)
        return 0; /* index_internal_meta refused such a record: it has no row */
    for (size_t i = 0; i < ic->n; i++)
        if (memcmp(ic->ids[i], e->key, 64) == 0)
            return 0;
    if (ic->n == ic->cap) {
        size_t cap = ic->cap ? 2 * ic->cap : 4;
        char(*v)[65] = cl_realloc(ic->ids, cap * sizeof *v);
        if (v == NULL)
            return CL_ENOMEM;
        ic->ids = v;
        ic->cap = cap;
    }
    memcpy(ic->ids[ic->n], e->key, 64);
    ic->ids[ic->n++][64] = '\0';
    return 0;
}

static int any_cb(void *arg, uint64_t seqno)
{
    (void)seqno;
    *(int *)arg = 1;
    return 1;
}

/* Whether table has a write at a seqno >= from, by the index (one lookup). */
static int table_has_from(cl_ledger *l, uint8_t table, uint64_t from, int *has)
{
    char coll[TABLE_COLL_LEN + 1];
    table_coll(table, coll);
    *has = 0;
    return idx_scan(l, coll, TABLE_COLL_LEN, from, UINT64_MAX, 1, any_cb, has, NULL);
}

/* The identity writes at seqnos >= from (the index's rows for them; their entries must be
 * readable when all_nodes is 0). all_nodes: the entries are gone (open found the index ahead of
 * the chunks), so every node with a record before `from` has its row derived again; a node whose
 * only records were cut keeps a row no signature of the ledger names. */
static int identity_writes_from(cl_ledger *l, uint64_t from, int all_nodes, identity_cut *ic)
{
    int nodes = 0;
    CL_TRY(table_has_from(l, CL_TABLE_NODES, from, &nodes));
    CL_TRY(table_has_from(l, CL_TABLE_SERVICE, from, &ic->service));
    if (!nodes)
        return CL_OK;
    if (all_nodes)
        return table_scan_range(l, CL_TABLE_NODES, 1, from - 1, cut_node_cb, ic);
    return table_scan_range(l, CL_TABLE_NODES, from, UINT64_MAX, cut_node_cb, ic);
}

typedef struct {
    const identity_cut *ic;
    char **node_value; /* per id: the value of its last PUT up to the cut (heap), or NULL */
    size_t *node_len;
    char version[24]; /* the last service record's key */
    size_t version_len;
} identity_rows;

static int rows_node_cb(void *arg, const cl_ledger_entry *e)
{
    identity_rows *r = arg;
    if (e->op != CL_OP_PUT || e->key_len != 64)
        return 0;
    for (size_t i = 0; i < r->ic->n; i++) {
        if (memcmp(r->ic->ids[i], e->key, 64) != 0)
            continue;
        char *v = cl_malloc(e->value_len + 1);
        if (v == NULL)
            return CL_ENOMEM;
        memcpy(v, e->value, e->value_len);
        cl_free(r->node_value[i]);
        r->node_value[i] = v;
        r->node_len[i] = e->value_len;
    }
    return 0;
}

static int rows_service_cb(void *arg, const cl_ledger_entry *e)
{
    identity_rows *r = arg;
    if (e->op == CL_OP_PUT && e->key_len < sizeof r->version) {
        memcpy(r->version, e->key, e->key_len);
        r->version[e->key_len] = '\0';
        r->version_len = e->key_len;
    }
    return 0;
}

/* The meta rows of ic as the writes at seqnos <= upto leave them, as a batch for
 * cl_index_truncate_from_then (*out NULL when ic is empty); *version: the service version they
 * give (0 when ic leaves it alone). */
static int identity_meta_batch(cl_ledger *l, const identity_cut *ic, uint64_t upto,
                               cl_index_batch **out, uint64_t *version)
{
    *out = NULL;
    *version = 0;
    if (ic->n == 0 && !ic->service)
        return CL_OK;
    identity_rows r = {ic, NULL, NULL, {0}, 0};
    cl_index_batch *b = NULL;
    int rc = CL_OK;
    r.node_value = cl_calloc(ic->n + 1, sizeof *r.node_value);
    r.node_len = cl_calloc(ic->n + 1, sizeof *r.node_len);
    CL_GUARD_IF(r.node_value == NULL || r.node_len == NULL, CL_ENOMEM);
    if (ic->n > 0)
        CL_GUARD(table_scan_range(l, CL_TABLE_NODES, 1, upto, rows_node_cb, &r));
    if (ic->service)
        CL_GUARD(table_scan_range(l, CL_TABLE_SERVICE, 1, upto, rows_service_cb, &r));
    CL_GUARD(cl_index_batch_begin(l->idx, &b));
    for (size_t i = 0; i < ic->n; i++) {
        char mk[CL_INDEX_META_KEY_MAX];
        snprintf(mk, sizeof mk, "node:%s", ic->ids[i]);
        if (r.node_value[i] != NULL)
            CL_GUARD(cl_index_put_meta(b, mk, r.node_value[i], r.node_len[i]));
        else
            CL_GUARD(cl_index_del_meta(b, mk));
    }
    if (ic->service) {
        if (r.version_len > 0)
            CL_GUARD(cl_index_put_meta(b, "service_version", r.version, r.version_len));
        else
            CL_GUARD(cl_index_del_meta(b, "service_version"));
        *version = r.version_len > 0 ? strtoull(r.version, NULL, 10) : 0;
        if (*version == 0)
            *version = 1;
    }
    *out = b;
    b = NULL;
out:
    cl_index_batch_abort(b);
    for (size_t i = 0; r.node_value != NULL && i < ic->n; i++)
        cl_free(r.node_value[i]);
    cl_free(r.node_value);
    cl_free(r.node_len);
    return rc;
}

/* ---- open / create / recovery -----------------------------------------------------------------
 */

/* The index is derived state: whatever makes it untrustworthy, it is closed, its files removed,
 * and the next cl_index_open starts it empty, to be replayed from the chunks. */
static int lose_index(cl_ledger *l, const char *why, const char *detail)
{
    cl_logf(CL_LOG_WARN, "ledger: %s (%s); rebuilding it from the chunks", why, detail);
    cl_index_close(l->idx);
    l->idx = NULL;
    l->loc_seqno = 0;
    return cl_index_remove_files(l->index_dir);
}

/* ---- the index marker ---------------------------------------------------------------------
 * The index is committed without syncs (index.h). A process that dies loses none of it: the
 * commits are in the page cache. An operating-system crash or a power cut may leave it torn, and
 * not only in ways an LMDB call reports: a page the disk never got reads back as an older page,
 * which is a valid B-tree page with stale rows, so no check short of a rebuild can tell. So while
 * a ledger is open, index/dirty names the boot it was opened in (written and synced before the
 * index takes a commit), and a clean close syncs the index and removes the marker. An open that
 * finds the marker of another boot (the machine stopped while the index was open) removes the
 * index and rebuilds it from the chunks; the same boot (only the process died) keeps it, so a
 * kill -9 costs no O(ledger) rebuild. A boot id that cannot be read counts as another boot. */

static void current_boot_id(const cl_ledger_opts *o, char *out, size_t cap)
{
    out[0] = 0;
    if (o->boot_id != NULL) {
        snprintf(out, cap, "%s", o->boot_id);
        return;
    }
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (f == NULL)
        return;
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = 0;
    fclose(f);
    out[strcspn(out, "\n")] = 0;
}

/* index/dirty names this boot: written before the index takes a commit. */
static int write_index_marker(cl_ledger *l, const cl_ledger_opts *o)
{
    char path[PATH_MAX_LEN], boot[64], want[80];
    current_boot_id(o, boot, sizeof boot);
    CL_TRY(path_join(path, l->index_dir, INDEX_MARKER));
    int n = snprintf(want, sizeof want, "boot %s\n", boot);
    CL_TRY(cl_fs_mkdir(l->fs, l->index_dir, 0700));
    /* The directory sync inside also makes the removals before it durable. */
    return cl_fs_write_atomic(l->fs, path, want, (size_t)n, 0600);
}

/* What index/dirty says. */
typedef enum { MARKER_ABSENT, MARKER_THIS_BOOT, MARKER_OTHER_BOOT, MARKER_DAMAGED } marker_state;

static int index_marker_read(cl_ledger *l, const cl_ledger_opts *o, marker_state *out)
{
    char path[PATH_MAX_LEN], boot[64], want[80];
    current_boot_id(o, boot, sizeof boot);
    CL_TRY(path_join(path, l->index_dir, INDEX_MARKER));
    int n = snprintf(want, sizeof want, "boot %s\n", boot);
    uint8_t *b = NULL;
    size_t len = 0;
    int rc = cl_fs_read_all(l->fs, path, 256, &b, &len);
    if (rc == CL_ENOENT) {
        *out = MARKER_ABSENT;
        return CL_OK;
    }
    CL_TRY(rc);
    if (boot[0] != 0 && len == (size_t)n && memcmp(b, want, len) == 0)
        *out = MARKER_THIS_BOOT;
    else if (len == strlen(INDEX_DAMAGED) && memcmp(b, INDEX_DAMAGED, len) == 0)
        *out = MARKER_DAMAGED;
    else
        *out = MARKER_OTHER_BOOT;
    cl_free(b);
    return CL_OK;
}

static int index_marker_set(cl_ledger *l, const cl_ledger_opts *o)
{
    marker_state m;
    CL_TRY(index_marker_read(l, o, &m));
    if (m == MARKER_THIS_BOOT)
        return CL_OK;
    if (m != MARKER_ABSENT) {
        int damaged = m == MARKER_DAMAGED;
        CL_TRY(lose_index(l,
                          damaged ? "a read found the index damaged"
                                  : "the index was open when the operating system last stopped",
                          damaged ? "index/dirty says so" : "index/dirty names another boot"));
    }
    return write_index_marker(l, o);
}

/* After a clean close has synced the index. */
static int index_marker_clear(cl_ledger *l)
{
    char path[PATH_MAX_LEN];
    CL_TRY(path_join(path, l->index_dir, INDEX_MARKER));
    int rc = cl_fs_unlink(l->fs, path);
    if (rc != CL_OK && rc != CL_ENOENT)
        return rc;
    return cl_fs_sync_dir(l->fs, l->index_dir);
}

static int alloc_ledger(const cl_ledger_opts *o, cl_ledger **out)
{
    CL_ENSURE(o != NULL && o->dir != NULL, CL_EINVAL);
    cl_ledger *l = cl_calloc(1, sizeof *l);
    CL_ENSURE(l != NULL, CL_ENOMEM);
    l->fs = o->fs ? o->fs : cl_fs_posix();
    l->chunk_size = o->chunk_size ? o->chunk_size : DEFAULT_CHUNK;
    int rc = CL_OK;
    if (snprintf(l->dir, PATH_MAX_LEN, "%s", o->dir) >= PATH_MAX_LEN ||
        path_join(l->ledger_dir, o->dir, "ledger") < 0 ||
        path_join(l->node_dir, o->dir, "node") < 0 ||
        path_join(l->merkle_dir, o->dir, "merkle") < 0 ||
        path_join(l->index_dir, o->dir, "index") < 0)
        rc = CL_EOVERFLOW;
    if (rc < 0) {
        cl_free(l);
        return rc;
    }
    *out = l;
    return CL_OK;
}

static void free_ledger(cl_ledger *l)
{
    if (l == NULL)
        return;
    cl_index_batch_abort(l->batch);
    if (l->tree)
        cl_merkle_close(l->tree);
    if (l->idx)
        cl_index_close(l->idx);
    cl_file_close(l->open_chunk);
    for (int i = 0; i < READ_CACHE; i++)
        cl_file_close(l->rcache[i].f);
    cl_key_free(l->node_key);
    cl_key_free(l->service_key);
    cl_cert_free(l->node_cert);
    cl_cert_free(l->service_cert);
    cl_free(l->node_cert_pem);
    cl_free(l->service_cert_pem);
    secrets_free(l);
    cl_free(l->chunks);
    cl_secret_free(l->rpool, RPOOL);
    cl_buf_wipe_free(&l->pending);
    cl_buf_wipe_free(&l->scratch);
    cl_buf_wipe_free(&l->scratch2);
    cl_buf_wipe_free(&l->scratch3);
    cl_free(l);
}

void cl_ledger_abandon(cl_ledger *l)
{
    if (l == NULL)
        return;
    /* Drop what was never written, as a dead process would. */
    cl_buf_reset(&l->pending);
    cl_index_batch_abort(l->batch);
    l->batch = NULL;
    free_ledger(l);
}

int cl_ledger_close(cl_ledger *l)
{
    if (l == NULL)
        return CL_OK;
    int rc = CL_OK;
    if (!l->failed) {
        rc = cl_ledger_sync_hard(l);
        if (rc == CL_OK)
            rc = cl_merkle_sync(l->tree);
        if (rc == CL_OK)
            rc = cl_index_sync(l->idx);
        if (rc == CL_OK && !l->index_damaged)
            rc = index_marker_clear(l);
    }
    free_ledger(l);
    return rc;
}

static int load_pem_cert(cl_ledger *l, const char *dir, const char *name, cl_cert **c, char **pem)
{
    char path[PATH_MAX_LEN];
    CL_TRY(path_join(path, dir, name));
    uint8_t *b = NULL;
    size_t n = 0;
    CL_TRY(named(cl_fs_read_all(l->fs, path, 1u << 20, &b, &n), path));
    int rc = cl_cert_from_pem((const char *)b, n, c);
    if (rc == CL_OK)
        *pem = (char *)b;
    else
        cl_free(b);
    return named(rc, path);
}

static int load_identity(cl_ledger *l)
{
    char path[PATH_MAX_LEN];
    CL_TRY(path_join(path, l->node_dir, "node_key.pem"));
    CL_TRY(named(cl_key_load_private_pem(path, &l->node_key), path));
    CL_TRY(path_join(path, l->node_dir, "service_key.pem"));
    CL_TRY(named(cl_key_load_private_pem(path, &l->service_key), path));
    CL_TRY(load_pem_cert(l, l->node_dir, "node_cert.pem", &l->node_cert, &l->node_cert_pem));
    CL_TRY(load_pem_cert(l, l->dir, "service_cert.pem", &l->service_cert, &l->service_cert_pem));
    CL_TRY(cl_key_spki_sha256(l->node_key, l->node_id));
    return CL_OK;
}

typedef struct {
    cl_ledger *l;
    int rc;
    int open_chunks;
} list_arg;

static int list_cb(void *arg, const char *name)
{
    list_arg *a = arg;
    cl_chunk_name c;
    if (cl_chunk_parse_name(name, &c) != CL_OK)
        return 0; /* not a chunk (e.g. a .tmp); ignored */
    if (!c.committed) {
        if (a->open_chunks++ > 0 || a->l->open_start != 0) {
            a->rc = CL_ECORRUPT;
            return 1;
        }
        a->l->open_start = c.start;
        return 0;
    }
    a->rc = chunks_push(a->l, &c);
    return a->rc < 0;
}

static int cmp_chunk(const void *a, const void *b)
{
    const cl_chunk_name *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Scans the open chunk, cuts a torn tail, and sets last/durable/signed seqnos. */
/* node/ledger_type must say what the first chunk's header says (written at creation and never
 * again): a type file emptied or replaced must not turn a private ledger public, whose next entries
 * would be written in plaintext. A first chunk that holds no more than its header (a crash while
 * the ledger was created) says nothing. */
static int ledger_type_check(cl_ledger *l)
{
    if (l->nchunks == 0 && l->open_start == 0)
        return CL_OK;
    cl_chunk_name c = l->nchunks ? l->chunks[0] : (cl_chunk_name){l->open_start, 0, 0};
    char path[PATH_MAX_LEN];
    CL_TRY(chunk_path(l, &c, path));
    cl_file *f = NULL;
    CL_TRY(cl_fs_open(l->fs, path, CL_FS_RDONLY, 0, &f));
    uint8_t h[CL_CHUNK_HEADER_LEN];
    size_t got = 0;
    uint64_t start = 0;
    int priv = 0;
    const char *why = NULL;
    int rc = cl_file_pread(f, h, sizeof h, 0, &got);
    cl_file_close(f);
    CL_TRY(rc);
    if (got < sizeof h && l->nchunks == 0)
        return CL_OK;
    if (got < sizeof h || cl_chunk_header_decode(h, got, &start, &priv, &why) != CL_OK) {
        cl_logf(CL_LOG_ERROR, "ledger: %s: %s", path, why != NULL ? why : "chunk header truncated");
        return CL_ECORRUPT;
    }
    if (priv != l->private_ledger) {
        cl_logf(CL_LOG_ERROR,
                "ledger: node/ledger_type says %s but the chunks (%s) were written by a %s ledger; "
                "the type is fixed at creation: restore node/ledger_type",
                l->private_ledger ? "private" : "public", path, priv ? "private" : "public");
        return CL_ECORRUPT;
    }
    return CL_OK;
}

/* What open finds on the way and checks later in the same open (never kept in cl_ledger). */
typedef struct {
    uint8_t sig_root[32];        /* root of the open chunk's last signature (recover_open_chunk) */
    int sig_seen;                /* the open chunk has a signature */
    uint64_t last_secret_record; /* seqno of the last secret's record (check_secret; 0: none) */
} open_findings;

/* Whether the open chunk may end in a torn write, from index/dirty (the index marker below): not
 * when the marker names this boot (only the process died since the ledger was last open, and a
 * process that dies in the middle of a write leaves a prefix of it: the page cache holds every
 * byte written) or when there is none beside the index (a clean close synced the chunk before
 * removing it). A marker of another boot (the machine stopped), a damaged one, or no index at all
 * (removed by hand): a power cut may have left any block of the unsynced tail unwritten, so a
 * whole frame that fails its check may be torn. */
static int torn_writes_possible(cl_ledger *l, const cl_ledger_opts *o)
{
    marker_state m;
    if (index_marker_read(l, o, &m) != CL_OK)
        return 1;
    if (m == MARKER_ABSENT)
        return cl_fs_exists(l->fs, l->index_dir) != 1;
    return m != MARKER_THIS_BOOT;
}

/* Scans the open chunk: whole consecutive frames are kept, a torn tail is cut. A whole frame that
 * fails its check (its length field in range, its CRC or contents wrong) when no torn write is
 * possible (torn_writes_possible) is damage: refused, nothing cut. Before 2026-11-25 it was cut
 * with everything after it, whole frames of acknowledged entries included. */
static int recover_open_chunk(cl_ledger *l, const cl_ledger_opts *o, open_findings *of)
{
    uint64_t expect = l->nchunks ? l->chunks[l->nchunks - 1].end + 1 : 1;
    l->last_seqno = expect - 1;
    l->signed_seqno = l->last_seqno; /* a committed chunk ends with a signature */
    if (l->open_start == 0)
        return CL_OK;
    if (l->open_start != expect) {
        cl_logf(CL_LOG_ERROR, "ledger: open chunk starts at %" PRIu64 ", expected %" PRIu64,
                l->open_start, expect);
        return CL_ECORRUPT;
    }
    cl_chunk_name c = {l->open_start, 0, 0};
    char path[PATH_MAX_LEN];
    CL_TRY(chunk_path(l, &c, path));
    int torn_ok = torn_writes_possible(l, o);
    cl_chunk_reader r;
    CL_TRY(cl_chunk_reader_open(&r, l->fs, path));
    int rc = CL_OK;
    uint8_t h[CL_CHUNK_HEADER_LEN];
    size_t got = 0;
    uint64_t good = 0; /* bytes of valid content */
    const char *why = NULL;
    CL_GUARD(cl_file_pread(r.f, h, sizeof h, 0, &got));
    uint64_t start = 0;
    int priv = 0;
    int hrc = got < sizeof h ? CL_ETRUNC : cl_chunk_header_decode(h, got, &start, &priv, &why);
    int header_ok = hrc == CL_OK && start == l->open_start && priv == l->private_ledger;
    if (!header_ok && r.file_size <= sizeof h) {
        /* Crashed while creating the chunk (its header is synced before anything else is
         * written, see open_new_chunk): nothing in it was ever durable. */
        good = 0;
        why = NULL;
    } else {
        CL_GUARD(hrc);
        CL_GUARD_IF(!header_ok, CL_ECORRUPT);
        good = CL_CHUNK_HEADER_LEN;
        for (;;) {
            cl_entry_view e;
            uint64_t off;
            rc = cl_chunk_reader_next(&r, &e, &off);
            if (rc == CL_ENOENT) {
                rc = CL_OK;
                break;
            }
            if (rc == CL_ECORRUPT && !torn_ok) {
                cl_logf(
                    CL_LOG_ERROR,
                    "ledger: %s is damaged at offset %" PRIu64 " (entry %" PRIu64
                    "): a whole frame fails its check, and no torn write can explain it (the "
                    "ledger was last open in this boot, or closed cleanly). Nothing was cut; "
                    "run cledger verify-ledger. To give up entry %" PRIu64
                    " and all after it (%" PRIu64 " bytes), truncate the file to %" PRIu64 " bytes",
                    path, r.off, l->last_seqno + 1, l->last_seqno + 1, r.file_size - r.off, r.off);
                goto out;
            }
            if (rc == CL_ETRUNC || rc == CL_ECORRUPT) {
                cl_logf(CL_LOG_WARN,
                        "ledger: cutting a torn tail of %" PRIu64 " bytes at offset %" PRIu64
                        " of %s (after seqno %" PRIu64 ")",
                        r.file_size - r.off, r.off, path, l->last_seqno);
                rc = CL_OK;
                break;
            }
            CL_GUARD(rc);
            CL_GUARD_IF(e.seqno != l->last_seqno + 1, CL_ECORRUPT);
            l->last_seqno = e.seqno;
            if (e.type == CL_ENTRY_SIGNATURE) {
                cl_sig_pub sp;
                CL_GUARD(sig_of(&e, &sp));
                memcpy(of->sig_root, sp.root, 32);
                of->sig_seen = 1;
                l->signed_seqno = e.seqno;
            }
            good = off + e.frame_len;
        }
    }
    uint64_t size = r.file_size;
    cl_chunk_reader_close(&r);
    CL_TRY(cl_fs_open(l->fs, path, CL_FS_RDWR, 0, &l->open_chunk));
    if (good < CL_CHUNK_HEADER_LEN) {
        uint8_t nh[CL_CHUNK_HEADER_LEN];
        cl_chunk_header_encode(l->open_start, l->private_ledger, nh);
        CL_TRY(cl_file_truncate(l->open_chunk, 0));
        CL_TRY(cl_file_pwrite(l->open_chunk, nh, sizeof nh, 0));
        good = CL_CHUNK_HEADER_LEN;
        size = good + 1; /* force the sync below */
    }
    if (size != good) {
        CL_TRY(cl_file_truncate(l->open_chunk, good));
        CL_TRY(cl_file_sync(l->open_chunk));
    }
    l->open_durable = good;
    l->kicked = good;
    return CL_OK;
out:
    cl_chunk_reader_close(&r);
    if (why != NULL)
        cl_logf(CL_LOG_ERROR, "ledger: %s: %s", path, why);
    return rc;
}

/* While open brings the index up to date, every failure of the index, its damage (CL_ECORRUPT) or
 * another LMDB error (CL_EDB), is CL_EDB: open_derived then removes it and rebuilds it once from
 * the chunks. Damage found in the chunks or the tree stays CL_ECORRUPT and fails the open. */
static int idx_at_open(int rc) { return rc == CL_ECORRUPT ? CL_EDB : rc; }

/* Logs a committed chunk that holds fewer seqnos than its name says (cut at a frame boundary, so
 * every frame left is whole); CL_ECORRUPT. */
static int chunk_ends_early(const char *path, uint64_t seen, uint64_t end)
{
    cl_logf(CL_LOG_ERROR,
            "ledger: %s ends at seqno %" PRIu64 ", but its name says %" PRIu64
            ": run cledger verify-ledger",
            path, seen, end);
    return CL_ECORRUPT;
}

static void unreadable_frame(const char *path, uint64_t off, int rc)
{
    cl_logf(CL_LOG_ERROR, "ledger: %s: unreadable entry frame at offset %" PRIu64 ": %s", path, off,
            cl_strerror(rc));
}

/* Replays entries from seqno `from` to the end into the tree (if it is behind) and the index (if
 * it is behind), reading the chunk files sequentially. */
static int replay(cl_ledger *l, uint64_t from, uint64_t tree_from, uint64_t index_from)
{
    size_t ci = 0;
    while (ci < l->nchunks && l->chunks[ci].end < from)
        ci++;
    int rc = CL_OK;
    cl_index_batch *b = NULL;
    uint64_t n_in_batch = 0;
    for (;; ci++) {
        cl_chunk_name c;
        if (ci < l->nchunks)
            c = l->chunks[ci];
        else if (ci == l->nchunks && l->open_start != 0) {
            c.start = l->open_start;
            c.end = 0;
            c.committed = 0;
        } else
            break;
        char path[PATH_MAX_LEN];
        CL_TRY(chunk_path(l, &c, path));
        cl_chunk_reader r;
        CL_TRY(cl_chunk_reader_open(&r, l->fs, path));
        uint64_t seen = 0; /* the last seqno read from this chunk */
        for (;;) {
            cl_entry_view e;
            uint64_t off;
            rc = cl_chunk_reader_next(&r, &e, &off);
            if (rc == CL_ENOENT) {
                rc = CL_OK;
                /* a committed chunk holds every seqno its name says (frames cut off at a frame
                 * boundary read as a shorter, whole chunk) */
                if (c.end != 0 && seen < c.end && seen < l->last_seqno)
                    rc = chunk_ends_early(path, seen, c.end);
                break;
            }
            if (rc < 0) { /* open cut the open chunk's torn tail: this is damage */
                unreadable_frame(path, r.off, rc);
                break;
            }
            if (e.seqno > l->last_seqno)
                break;
            seen = e.seqno;
            if (e.seqno < from)
                continue;
            if (e.seqno >= tree_from) {
                uint8_t wsd[32], leaf[32];
                cl_entry_write_set_digest(&e, wsd);
                cl_entry_leaf(wsd, e.ce_digest, e.claims_digest, leaf);
                if ((rc = cl_merkle_append(l->tree, leaf)) < 0)
                    break;
            }
            if (e.seqno >= index_from) {
                if (b == NULL && (rc = cl_index_batch_begin(l->idx, &b)) < 0)
                    break;
                cl_index_loc loc = {c.start, off, (uint32_t)e.frame_len, e.view, e.type, 0};
                rc = cl_index_put_entry(b, e.seqno, &loc);
                if (rc == CL_OK && e.type == CL_ENTRY_USER) {
                    cl_user_pub up;
                    rc = cl_user_pub_decode(e.pub, e.pub_len, &up);
                    if (rc == CL_OK)
                        rc = cl_index_put_collection(b, (const char *)up.collection,
                                                     up.collection_len, e.seqno);
                } else if (rc == CL_OK && e.type == CL_ENTRY_SIGNATURE) {
                    rc = cl_index_put_collection(b, SIG_COLLECTION, SIG_COLLECTION_LEN, e.seqno);
                } else if (rc == CL_OK && e.type == CL_ENTRY_INTERNAL) {
                    cl_internal_pub ip;
                    rc = cl_internal_pub_decode(e.pub, e.pub_len, &ip);
                    if (rc == CL_OK)
                        rc = index_internal_meta(b, &ip, e.seqno);
                }
                if (rc < 0)
                    break;
                if (++n_in_batch == 10000) {
                    rc = idx_at_open(cl_index_batch_commit(b));
                    b = NULL;
                    n_in_batch = 0;
                    if (rc < 0)
                        break;
                }
            }
        }
        cl_chunk_reader_close(&r);
        if (rc < 0)
            break;
    }
    if (b != NULL) {
        if (rc == CL_OK)
            rc = idx_at_open(cl_index_batch_commit(b));
        else
            cl_index_batch_abort(b);
    }
    return rc;
}

/* Opens the index (rebuilding it when it cannot be opened) and brings the tree and the index up
 * to the chunks: both are cut back when ahead and replayed when behind. */
static int derive(cl_ledger *l, const cl_ledger_opts *o)
{
    static const uint8_t zero[32];
    size_t map = o->index_map_size ? o->index_map_size : (64u << 20);
    int rc = cl_index_open(l->index_dir, map, &l->idx);
    if (rc == CL_EDB || rc == CL_ECORRUPT || rc == CL_EUNSUPPORTED) {
        CL_TRY(lose_index(l, rc == CL_EUNSUPPORTED ? "index of another format" : "index unreadable",
                          cl_errname(rc)));
        rc = cl_index_open(l->index_dir, map, &l->idx);
    }
    CL_TRY(rc);
    uint64_t want = l->last_seqno + 1; /* leaves, with leaf 0 */
    /* Only the leaves the last durable signature vouches for are kept (check_tree compares their
     * root with the signed one); the unsigned tail, at most the open chunk, is hashed again. */
    uint64_t keep = l->signed_seqno ? l->signed_seqno : 1;
    if (cl_merkle_size(l->tree) > keep)
        CL_TRY(cl_merkle_truncate(l->tree, keep));
    if (cl_merkle_size(l->tree) == 0)
        CL_TRY(cl_merkle_append(l->tree, zero));
    uint64_t tree_from = cl_merkle_size(l->tree);
    uint64_t ilast = 0;
    CL_TRY(idx_at_open(cl_index_last_seqno(l->idx, &ilast)));
    if (ilast > l->last_seqno) {
        /* The entries the index is ahead by are gone: the identity rows they wrote are derived
         * again from the records that stay (identity_writes_from). */
        identity_cut ic = {NULL, 0, 0, 0};
        cl_index_batch *mb = NULL;
        uint64_t version = 0;
        rc = identity_writes_from(l, l->last_seqno + 1, 1, &ic);
        if (rc == CL_OK)
            rc = identity_meta_batch(l, &ic, l->last_seqno, &mb, &version);
        cl_free(ic.ids);
        if (rc == CL_OK) {
            l->loc_seqno = 0; /* the location cache, which those reads set */
            rc = cl_index_truncate_from_then(l->idx, l->last_seqno + 1, mb);
        } else {
            cl_index_batch_abort(mb);
        }
        CL_TRY(idx_at_open(rc));
        ilast = l->last_seqno;
    }
    uint64_t index_from = ilast + 1;
    uint64_t from = tree_from < index_from ? tree_from : index_from;
    if (from <= l->last_seqno) {
        cl_logf(CL_LOG_INFO,
                "ledger: replaying seqnos %" PRIu64 "..%" PRIu64 " into the tree/index", from,
                l->last_seqno);
        CL_TRY(replay(l, from, tree_from, index_from));
    }
    if (cl_merkle_size(l->tree) != want) {
        cl_logf(CL_LOG_ERROR,
                "ledger: the chunks in %s hold %" PRIu64 " entries where %" PRIu64
                " were expected: run cledger verify-ledger",
                l->ledger_dir, cl_merkle_size(l->tree) - 1, want - 1);
        return CL_ECORRUPT;
    }
    return CL_OK;
}

/* During open: the index failed (rc), so it is removed and built again from the chunks under
 * this boot's marker (a "damaged" one written meanwhile is overtaken). */
static int rederive_index(cl_ledger *l, const cl_ledger_opts *o, const char *why, int rc)
{
    CL_TRY(lose_index(l, why, cl_errname(rc)));
    l->index_damaged = 0;
    CL_TRY(write_index_marker(l, o));
    return derive(l, o);
}

/* The index is derived state, opened without syncs (index.h): after a power cut it may be torn in
 * ways that open does not notice. The marker above catches every such case; besides, any LMDB
 * error while it is brought up to date makes it "lost": its files are removed and it is rebuilt
 * from the chunks, once. */
static int open_derived(cl_ledger *l, const cl_ledger_opts *o)
{
    CL_TRY(cl_merkle_open(l->fs, l->merkle_dir, &l->tree));
    CL_TRY(index_marker_set(l, o));
    int rc = derive(l, o);
    if (rc != CL_EDB)
        return rc;
    return rederive_index(l, o, "the index failed while it was brought up to date", rc);
}

/* ---- the Merkle store check ---------------------------------------------------------------
 * The tree's level files carry no checksum (merkle.h): every record is derivable from the chunks.
 * A damaged record on the frontier of the last signed size would make every later signature sign
 * a wrong root, and every receipt through it fail, served with 200. So open compares the root the
 * stored tree gives for that size with the root the last durable signature signed, read from the
 * chunks (not through the index, which is derived state too), and rebuilds the whole tree from the
 * chunks on a mismatch: O(log n) reads when it matches, O(ledger) only then. Records off that
 * frontier feed only proofs of older entries, and those are checked before they are served
 * (cl_ledger_receipt, cl_ledger_consistency): a proof that does not reproduce its signed root is
 * refused with CL_ECORRUPT, and merkle/rebuild, written then, makes the next open rebuild. */
/* The root the last signature of the last committed chunk (its final frame) signs. */
static int committed_sig_root(cl_ledger *l, uint8_t root[32])
{
    const cl_chunk_name *c = &l->chunks[l->nchunks - 1];
    char path[PATH_MAX_LEN];
    CL_TRY(chunk_path(l, c, path));
    cl_chunk_reader r;
    CL_TRY(cl_chunk_reader_open(&r, l->fs, path));
    uint64_t last = 0;
    int rc, is_sig = 0;
    for (;;) {
        cl_entry_view e;
        uint64_t off;
        rc = cl_chunk_reader_next(&r, &e, &off);
        if (rc < 0)
            break;
        last = e.seqno;
        is_sig = e.type == CL_ENTRY_SIGNATURE;
        if (is_sig) {
            cl_sig_pub sp;
            if ((rc = sig_of(&e, &sp)) < 0)
                break;
            memcpy(root, sp.root, 32);
        }
    }
    cl_chunk_reader_close(&r);
    if (rc == CL_ENOENT)
        rc = last == c->end && last == l->signed_seqno && is_sig ? CL_OK : CL_ECORRUPT;
    if (rc < 0)
        cl_logf(CL_LOG_ERROR, "ledger: %s does not end with a readable signature: %s", path,
                cl_strerror(rc));
    return rc;
}

static int rebuild_tree(cl_ledger *l)
{
    static const uint8_t zero[32];
    CL_TRY(cl_merkle_truncate(l->tree, 0));
    CL_TRY(cl_merkle_append(l->tree, zero));
    CL_TRY(replay(l, 1, 1, l->last_seqno + 1));
    CL_ENSURE(cl_merkle_size(l->tree) == l->last_seqno + 1, CL_ECORRUPT);
    return cl_merkle_sync(l->tree);
}

static int check_tree(cl_ledger *l, const open_findings *of)
{
    char flag[PATH_MAX_LEN];
    CL_TRY(rebuild_path(l, flag));
    int asked = cl_fs_exists(l->fs, flag);
    CL_TRY(asked < 0 ? asked : CL_OK);
    if (l->signed_seqno == 0 && !asked)
        return CL_OK;
    uint8_t want[32], root[32];
    if (l->signed_seqno != 0) {
        if (of->sig_seen)
            memcpy(want, of->sig_root, 32);
        else
            CL_TRY(committed_sig_root(l, want));
    }
    if (!asked) {
        CL_TRY(cl_merkle_root_at(l->tree, l->signed_seqno, root));
        if (cl_ct_equal(root, want, 32))
            return CL_OK;
    }
    cl_logf(CL_LOG_WARN,
            "ledger: %s: rebuilding the Merkle store in %s from the chunks (%" PRIu64 " entries)",
            asked ? "a damaged record was found while serving a proof"
                  : "the stored tree does not reproduce the root of the last signature",
            l->merkle_dir, l->last_seqno);
    CL_TRY(rebuild_tree(l));
    if (l->signed_seqno != 0) {
        CL_TRY(cl_merkle_root_at(l->tree, l->signed_seqno, root));
        if (!cl_ct_equal(root, want, 32)) {
            cl_logf(CL_LOG_ERROR,
                    "ledger: the chunks in %s do not reproduce the root signed at seqno %" PRIu64
                    ": run cledger verify-ledger",
                    l->ledger_dir, l->signed_seqno);
            return CL_ECORRUPT;
        }
    }
    if (asked) {
        int rc = cl_fs_unlink(l->fs, flag);
        CL_TRY(rc == CL_ENOENT ? CL_OK : rc);
        CL_TRY(cl_fs_sync_dir(l->fs, l->merkle_dir));
    }
    return CL_OK;
}

/* ---- the ledger secrets check ---------------------------------------------------------------
 * node/ledger_secrets is covered by no signature. A file from another ledger (a backup of the
 * wrong node, a copy mix-up) has the right shape and was used: entries were written under keys
 * this ledger's history does not know, and commit evidence changed under receipts already handed
 * out. Every secret has a ledger-secret record, the first SECRETS-table write at or after the seqno
 * it applies from (at that seqno for a rotation, the third genesis entry for the first secret),
 * encrypted under that secret (AES-GCM authenticates the key), whose private part is the previous
 * secret and whose value names the seqno it applies from. Open decrypts each record with the file's
 * secret and compares both, reading the chunks directly (the index is not trusted yet): a few
 * frames per secret, in the chunk that holds its record. A ledger that ends before a secret's
 * record has nothing encrypted under it (trim_secrets drops it). */

/* CL_OK (or CL_ENOENT when the ledger ends before the record); CL_ECORRUPT, logged, otherwise. */
static int check_secret(cl_ledger *l, size_t i, cl_buf *plain, open_findings *of)
{
    const secret_rec *sec = &l->secrets[i];
    cl_chunk_name c;
    char path[PATH_MAX_LEN], want[64];
    if (chunk_of_seqno(l, sec->applies_from, &c) != CL_OK)
        return CL_ENOENT;
    CL_TRY(chunk_path(l, &c, path));
    int wn = applies_from_value(sec->applies_from, want);
    cl_chunk_reader r;
    CL_TRY(cl_chunk_reader_open(&r, l->fs, path));
    int rc;
    uint64_t at = 0;
    const char *why = NULL;
    for (;;) {
        cl_entry_view e;
        uint64_t off;
        cl_internal_pub ip;
        rc = cl_chunk_reader_next(&r, &e, &off);
        if (rc < 0 || e.seqno > l->last_seqno) {
            rc = rc < 0 && rc != CL_ENOENT && rc != CL_ETRUNC ? rc : CL_ENOENT;
            break;
        }
        if (e.seqno < sec->applies_from)
            continue;
        at = e.seqno;
        if (e.seqno > sec->applies_from + 2) { /* genesis: service, node, then the secret */
            why = "is missing: no ledger-secret record where the file says it applies from";
            rc = CL_ECORRUPT;
            break;
        }
        if (e.type != CL_ENTRY_INTERNAL || cl_internal_pub_decode(e.pub, e.pub_len, &ip) != CL_OK ||
            ip.table != CL_TABLE_SECRETS)
            continue;
        size_t prev_len = i > 0 ? 32 : 0;
        if (!(e.flags & CL_ENTRY_F_ENCRYPTED) || decrypt_priv(l, &e, plain) != CL_OK)
            why = "does not decrypt with it";
        else if (plain->len != prev_len ||
                 (i > 0 && !cl_ct_equal(plain->data, l->secrets[i - 1].key, 32)))
            why = "holds another previous secret than the file's";
        else if (ip.value_len != (size_t)wn || memcmp(ip.value, want, (size_t)wn) != 0)
            why = "names another first seqno than the file's";
        rc = why == NULL ? CL_OK : CL_ECORRUPT;
        if (rc == CL_OK)
            of->last_secret_record = at;
        break;
    }
    cl_chunk_reader_close(&r);
    cl_buf_reset(plain); /* secret: wiped */
    if (rc == CL_ECORRUPT)
        cl_logf(CL_LOG_ERROR,
                "ledger: %s/ledger_secrets does not belong to this ledger: the record of secret "
                "%zu (seqno %" PRIu64 ") %s; restore this node's own file",
                l->node_dir, i + 1, at, why);
    return rc;
}

static int check_secrets(cl_ledger *l, open_findings *of)
{
    cl_buf plain = CL_BUF_SECRET;
    int rc = CL_OK;
    for (size_t i = 0; rc == CL_OK && i < l->nsecrets; i++) {
        if (l->secrets[i].applies_from > l->last_seqno)
            break; /* trim_secrets drops it */
        rc = check_secret(l, i, &plain, of);
        if (rc == CL_ENOENT)
            rc = CL_OK;
    }
    cl_buf_free(&plain);
    return rc;
}

/* The first secrets-table record after the last one the file's secrets account for (*found, 0:
 * none). The row the index lists is read back and held to the table. */
static int later_secret(cl_ledger *l, const open_findings *of, uint64_t *found)
{
    char coll[TABLE_COLL_LEN + 1];
    table_coll(CL_TABLE_SECRETS, coll);
    first_cb_arg fa = {0};
    *found = 0;
    CL_TRY(idx_scan(l, coll, TABLE_COLL_LEN, of->last_secret_record + 1, l->durable_seqno, 1,
                    first_cb, &fa, NULL));
    if (fa.found == 0)
        return CL_OK;
    cl_ledger_entry e;
    CL_TRY(cl_ledger_read_listed(l, fa.found, coll, TABLE_COLL_LEN, &e));
    cl_ledger_entry_free(&e);
    *found = fa.found;
    return CL_OK;
}

/* The other way round from check_secrets: a ledger-secret record after the last secret's means
 * the file lacks the newer secrets (an older copy): the entries under them would not decrypt, and
 * new ones would be written under a superseded key. O(1) index reads, once the index is up to
 * date. The question goes to the index; when the index fails to answer (damage, or any LMDB error),
 * it is rebuilt from the chunks here and asked again, as anywhere else in open (its log line's "the
 * next start rebuilds" is then overtaken by this one). A damaged chunk fails the open. */
static int check_no_later_secret(cl_ledger *l, const cl_ledger_opts *o, const open_findings *of)
{
    if (of->last_secret_record == 0 || of->last_secret_record >= l->durable_seqno)
        return CL_OK;
    uint64_t found;
    unsigned faults = l->index_faults;
    int rc = later_secret(l, of, &found);
    if (rc == CL_EDB || (rc == CL_ECORRUPT && l->index_faults != faults)) {
        CL_TRY(rederive_index(l, o, "the index failed while the secrets file was checked", rc));
        rc = later_secret(l, of, &found);
    }
    CL_TRY(rc);
    if (found == 0)
        return CL_OK;
    cl_logf(CL_LOG_ERROR,
            "ledger: %s/ledger_secrets holds %zu secrets, and none of them is the one the ledger "
            "records at seqno %" PRIu64 ": the file is an older copy or another ledger's; restore "
            "this node's current file",
            l->node_dir, l->nsecrets, found);
    return CL_ECORRUPT;
}

/* ---- the committed chunks' ends --------------------------------------------------------------
 * Open reads the chunks only from the last signature on. A committed chunk is synced before it
 * gets its committed name and is never written again, so its file ends exactly where the frame of
 * the last seqno its name says ends, and the index records where that is. Open compares the two for
 * every committed chunk: one open, size and close of the file and one index read each, O(number of
 * chunks), where a chunk holds 5 MiB of entries. So a chunk cut at a frame boundary (every frame
 * left is whole), cut inside a frame, or grown past its last frame is refused at open, named,
 * instead of failing the reads that reach the missing frames. A mismatch is settled by reading
 * that one chunk through: if it holds exactly the seqnos its name says and ends with the last of
 * them, it is the index that is wrong, and the index is rebuilt from the chunks, once. */

/* Reads committed chunk c (at path) on through r. CL_OK when its frames are whole to the end of the
 * file, each seqno from c->start on following the one before, and the last is c->end; otherwise
 * logs what is wrong and returns CL_ECORRUPT (or a read error). */
static int chunk_whole(cl_chunk_reader *r, const cl_chunk_name *c, const char *path)
{
    uint64_t seen = c->start - 1; /* the last seqno read */
    cl_entry_view e;
    uint64_t off = 0;
    int rc;
    while ((rc = cl_chunk_reader_next(r, &e, &off)) == CL_OK && e.seqno == seen + 1)
        seen = e.seqno;
    if (rc == CL_ENOENT)
        return seen == c->end ? CL_OK : chunk_ends_early(path, seen, c->end);
    if (rc == CL_OK) {
        cl_logf(CL_LOG_ERROR,
                "ledger: %s: the frame at offset %" PRIu64 " holds seqno %" PRIu64
                " after seqno %" PRIu64 ": run cledger verify-ledger",
                path, off, e.seqno, seen);
        return CL_ECORRUPT;
    }
    if (rc != CL_ETRUNC && rc != CL_ECORRUPT && rc != CL_EFORMAT && rc != CL_EUNSUPPORTED)
        return rc;
    unreadable_frame(path, r->off, rc);
    return CL_ECORRUPT;
}

/* 1 when the index puts the frame of c's last seqno at the end of c's file of `size` bytes, 0 when
 * it does not or cannot answer (damage or any other LMDB error), <0 on another failure. */
static int index_ends_chunk(cl_ledger *l, const cl_chunk_name *c, uint64_t size)
{
    cl_index_loc loc;
    int rc = cl_index_get_entry(l->idx, c->end, &loc);
    if (rc == CL_ENOENT || rc == CL_ECORRUPT || rc == CL_EDB)
        return 0;
    CL_TRY(rc);
    return loc.chunk_start == c->start && loc.offset + loc.length == size;
}

static int check_chunk_ends(cl_ledger *l, const cl_ledger_opts *o)
{
    int rebuilt = 0;
    for (size_t i = 0; i < l->nchunks;) {
        const cl_chunk_name *c = &l->chunks[i];
        char path[PATH_MAX_LEN];
        CL_TRY(chunk_path(l, c, path));
        cl_chunk_reader r;
        CL_TRY(cl_chunk_reader_open(&r, l->fs, path));
        int ends = index_ends_chunk(l, c, r.file_size);
        int rc = ends == 0 ? chunk_whole(&r, c, path) : ends;
        cl_chunk_reader_close(&r);
        CL_TRY(rc);
        if (ends == 1) {
            i++;
            continue;
        }
        if (rebuilt) { /* a fresh index from whole chunks that still disagrees */
            cl_logf(CL_LOG_ERROR,
                    "ledger: the index rebuilt from the chunks does not end %s where its last "
                    "frame ends",
                    path);
            return CL_ECORRUPT;
        }
        char why[PATH_MAX_LEN + 80];
        snprintf(why, sizeof why, "the index does not end %s where its last frame ends", path);
        CL_TRY(rederive_index(l, o, why, CL_ECORRUPT));
        rebuilt = 1; /* the same chunk again, against the rebuilt index */
    }
    return CL_OK;
}

/* Drop secrets whose ledger record never became durable (crash between saving the secret file
 * and syncing the record). */
static int trim_secrets(cl_ledger *l)
{
    size_t keep = l->nsecrets;
    while (keep > 1 && l->secrets[keep - 1].applies_from > l->last_seqno)
        keep--;
    if (keep == l->nsecrets)
        return CL_OK;
    seal_forget(l); /* a later secret may take a dropped one's appliesFrom */
    for (size_t i = keep; i < l->nsecrets; i++) {
        cl_secret_free(l->secrets[i].key, 32);
        cl_secret_free(l->secrets[i].commit_key, sizeof(cl_hmac_key));
    }
    l->nsecrets = keep;
    return secrets_save(l);
}

int cl_ledger_open(const cl_ledger_opts *o, cl_ledger **out)
{
    cl_ledger *l = NULL;
    CL_TRY(alloc_ledger(o, &l));
    int rc;
    open_findings of = {{0}, 0, 0};
    CL_GUARD(load_identity(l));
    CL_GUARD(secrets_load(l));
    list_arg la = {l, CL_OK, 0};
    CL_GUARD(cl_fs_list(l->fs, l->ledger_dir, list_cb, &la));
    CL_GUARD(la.rc);
    if (l->nchunks > 1) /* l->chunks is NULL without committed chunks: qsort(NULL) is UB */
        qsort(l->chunks, l->nchunks, sizeof *l->chunks, cmp_chunk);
    for (size_t i = 0; i < l->nchunks; i++) {
        uint64_t expect = i ? l->chunks[i - 1].end + 1 : 1;
        CL_GUARD_IF(l->chunks[i].start != expect, CL_ECORRUPT);
    }
    /* Private-ledger flag: node/ledger_type, which must agree with the chunk headers (fixed at
     * creation; ledger_type_check). */
    {
        char path[PATH_MAX_LEN];
        CL_GUARD(path_join(path, l->node_dir, "ledger_type"));
        uint8_t *b = NULL;
        size_t n = 0;
        CL_GUARD(named(cl_fs_read_all(l->fs, path, 256, &b, &n), path));
        /* "public|private\n" [ "chunk_size N\n" ] */
        int is_priv = n >= 8 && memcmp(b, "private\n", 8) == 0;
        int is_pub = n >= 7 && memcmp(b, "public\n", 7) == 0;
        if (!is_priv && !is_pub) {
            cl_logf(CL_LOG_ERROR, "ledger: %s is damaged: it says neither public nor private",
                    path);
            cl_free(b);
            CL_GUARD(CL_ECORRUPT);
        }
        l->private_ledger = is_priv;
        const char *cs = strstr((const char *)b, "chunk_size ");
        if (o->chunk_size == 0 && cs != NULL) {
            uint64_t v = strtoull(cs + 11, NULL, 10);
            if (v >= 1024)
                l->chunk_size = v;
        }
        cl_free(b);
    }
    CL_GUARD(ledger_type_check(l));
    CL_GUARD(recover_open_chunk(l, o, &of));
    l->durable_seqno = l->last_seqno;
    l->pending_signed = l->signed_seqno;
    CL_GUARD(check_secrets(l, &of));
    CL_GUARD(trim_secrets(l));
    CL_GUARD(open_derived(l, o));
    CL_GUARD(check_no_later_secret(l, o, &of));
    CL_GUARD(check_chunk_ends(l, o));
    CL_GUARD(check_tree(l, &of));
    {
        /* It reads the service table through the index: damage found there (not noticed while
         * the index was brought up to date) rebuilds the index once, as above. */
        unsigned faults = l->index_faults;
        rc = resolve_staged_identity(l);
        if (rc == CL_ECORRUPT && l->index_faults != faults) {
            CL_GUARD(
                rederive_index(l, o, "the index failed while open read the service identity", rc));
            rc = resolve_staged_identity(l);
        }
        CL_GUARD(rc);
    }
    {
        size_t vl = 0;
        char ver[24] = {0};
        if (cl_index_get_meta(l->idx, "service_version", ver, sizeof ver - 1, &vl) == CL_OK)
            l->service_version = strtoull(ver, NULL, 10);
        if (l->service_version == 0)
            l->service_version = 1;
    }
    *out = l;
    return CL_OK;
out:
    cl_logf(CL_LOG_ERROR, "ledger: cannot open %s: %s", o->dir, cl_strerror(rc));
    free_ledger(l);
    return rc;
}

int cl_ledger_create(const cl_ledger_opts *o, cl_ledger **out)
{
    cl_ledger *l = NULL;
    CL_TRY(alloc_ledger(o, &l));
    int rc;
    char path[PATH_MAX_LEN];
    uint8_t key[32];
    cl_curve curve = o->curve ? o->curve : CL_CURVE_P256;
    CL_GUARD_IF(cl_fs_exists(l->fs, l->node_dir) == 1, CL_EEXIST);
    CL_GUARD(cl_fs_mkdir(l->fs, l->dir, 0700));
    CL_GUARD(cl_fs_mkdir(l->fs, l->node_dir, 0700));
    CL_GUARD(cl_fs_mkdir(l->fs, l->ledger_dir, 0700));
    l->private_ledger = o->private_ledger != 0;
    l->service_version = 1;
    /* Service identity and node identity. */
    CL_GUARD(cl_key_generate(curve, &l->service_key));
    CL_GUARD(cl_cert_self_signed_ca(
        l->service_key, o->service_cn ? o->service_cn : "cledger service", 3650, &l->service_cert));
    size_t len = 0;
    CL_GUARD(cl_cert_to_pem(l->service_cert, &l->service_cert_pem, &len));
    CL_GUARD(cl_key_generate(curve, &l->node_key));
    CL_GUARD(cl_key_spki_sha256(l->node_key, l->node_id));
    CL_GUARD(issue_node_cert(l));
    CL_GUARD(path_join(path, l->node_dir, "node_key.pem"));
    CL_GUARD(cl_key_save_private_pem(l->node_key, path));
    CL_GUARD(write_identity_files(l));
    CL_GUARD(path_join(path, l->node_dir, "ledger_type"));
    char type[96];
    int tn = snprintf(type, sizeof type, "%s\nchunk_size %" PRIu64 "\n",
                      l->private_ledger ? "private" : "public", l->chunk_size);
    CL_GUARD(cl_fs_write_atomic(l->fs, path, type, (size_t)tn, 0600));
    /* First ledger secret, from seqno 1. */
    CL_GUARD(cl_random(key, 32));
    rc = secret_add(l, 1, key);
    cl_wipe(key, 32);
    CL_GUARD(rc);
    CL_GUARD(secrets_save(l));
    CL_GUARD(open_derived(l, o));
    /* Genesis: service identity, this node, the first secret, and a signature over them. */
    uint64_t view = 2;
    CL_GUARD(append_service_record(l, view, NULL));
    CL_GUARD(append_node_record(l, view));
    CL_GUARD(append_secret_record(l, view));
    CL_GUARD(cl_ledger_sign(l, view, NULL));
    CL_GUARD(cl_ledger_sync(l));
    *out = l;
    return CL_OK;
out:
    cl_logf(CL_LOG_ERROR, "ledger: cannot create %s: %s", o->dir, cl_strerror(rc));
    free_ledger(l);
    return rc;
}

/* Where the frame of seqno + 1 starts in the open chunk, so that truncating there keeps exactly
 * seqnos up to seqno. The index's location is used when it holds that frame (read_frame checks
 * its seqno and checksum) and the frame of seqno (or the chunk header) ends right there. The
 * index is derived state: a location it got wrong must not cut committed entries out of the
 * chunk, the source of truth. So on any mismatch the index is marked damaged (rebuilt at the next
 * open) and the frame is looked for in the open chunk itself (chunk_holds: O(open chunk), on that
 * error path only; open checked that the chunk's frames are whole and consecutive); a chunk
 * without it is refused. */
static int cut_point(cl_ledger *l, uint64_t seqno, uint64_t *off)
{
    cl_index_loc next, prev;
    cl_buf b = CL_BUF_INIT;
    cl_entry_view e;
    int rc = read_frame(l, seqno + 1, &b, &e);
    cl_buf_free(&b);
    if (rc == CL_OK)
        rc = loc_of(l, seqno + 1, &next);
    if (rc == CL_OK && next.chunk_start == l->open_start) {
        if (seqno + 1 == l->open_start
                ? next.offset == CL_CHUNK_HEADER_LEN
                : loc_of(l, seqno, &prev) == CL_OK && prev.chunk_start == l->open_start &&
                      prev.offset + prev.length == next.offset) {
            *off = next.offset;
            return CL_OK;
        }
    }
    if (rc != CL_OK && rc != CL_ECORRUPT)
        return rc;
    (void)index_damage(l, CL_ECORRUPT, "does not locate the end of seqno %" PRIu64, seqno);
    if (chunk_holds(l, seqno + 1, off))
        return CL_OK;
    cl_logf(CL_LOG_ERROR,
            "ledger: the open chunk that starts at %" PRIu64 " holds no whole frame of seqno"
            " %" PRIu64 ": not truncated; run cledger verify-ledger",
            l->open_start, seqno + 1);
    return CL_ECORRUPT;
}

int cl_ledger_truncate(cl_ledger *l, uint64_t seqno)
{
    CL_ENSURE(!l->failed, CL_ECLOSED);
    CL_ENSURE(seqno >= l->signed_seqno && seqno <= l->last_seqno, CL_ESTATE);
    if (seqno == l->last_seqno)
        return CL_OK;
    /* Make everything durable first, then cut the file: simple and always correct. */
    l->loc_seqno = 0;
    CL_TRY(cl_ledger_sync(l));
    uint64_t cut = 0;
    identity_cut ic = {NULL, 0, 0, 0};
    cl_index_batch *mb = NULL;
    uint64_t version = 0;
    int rc;
    CL_GUARD_IF(l->open_chunk == NULL || seqno + 1 < l->open_start, CL_ESTATE);
    CL_GUARD(identity_writes_from(l, seqno + 1, 0, &ic));
    CL_GUARD(identity_meta_batch(l, &ic, seqno, &mb, &version));
    CL_GUARD(cut_point(l, seqno, &cut));
    l->loc_seqno = 0;
    CL_GUARD(cl_file_truncate(l->open_chunk, cut));
    CL_GUARD(cl_file_sync(l->open_chunk));
    l->open_durable = cut;
    l->kicked = cut;
    {
        cl_index_batch *b = mb;
        mb = NULL;
        CL_GUARD(cl_index_truncate_from_then(l->idx, seqno + 1, b));
    }
    if (version != 0)
        l->service_version = version;
    CL_GUARD(cl_merkle_truncate(l->tree, seqno + 1));
    l->last_seqno = l->durable_seqno = seqno;
    l->last_view = 0; /* read again by the next append */
    /* A secret whose record was cut goes with it, as at open (trim_secrets). Kept, it encrypted
     * the next entry at the record's seqno with the record's IV: the record holds the previous
     * secret under it, so a known write gave that secret away, and the entries under it had no
     * record, so the ledger no longer opened (found in a review, 2026-11-25). A crash before the
     * file is saved is repaired by the next open's trim. */
    CL_GUARD(trim_secrets(l));
out:
    cl_index_batch_abort(mb);
    cl_free(ic.ids);
    return rc < 0 ? poisoned(l, rc) : rc;
}

uint64_t cl_ledger_last_seqno(const cl_ledger *l) { return l->last_seqno; }
uint64_t cl_ledger_durable_seqno(const cl_ledger *l) { return l->durable_seqno; }
uint64_t cl_ledger_signed_seqno(const cl_ledger *l) { return l->signed_seqno; }
int cl_ledger_is_private(const cl_ledger *l) { return l->private_ledger; }
const char *cl_ledger_service_cert_pem(const cl_ledger *l) { return l->service_cert_pem; }

int cl_ledger_check(cl_ledger *l)
{
    CL_ENSURE(cl_merkle_size(l->tree) == l->last_seqno + 1, CL_ECORRUPT);
    CL_TRY(cl_merkle_check(l->tree));
    uint64_t ilast = 0;
    CL_TRY(cl_index_last_seqno(l->idx, &ilast));
    CL_ENSURE(ilast == l->durable_seqno || l->last_seqno != l->durable_seqno, CL_ECORRUPT);
    for (size_t i = 0; i < l->nchunks; i++) {
        uint64_t expect = i ? l->chunks[i - 1].end + 1 : 1;
        CL_ENSURE(l->chunks[i].start == expect, CL_ECORRUPT);
    }
    /* Spot-check I4 on the last durable entry: its leaf equals the stored one. */
    if (l->durable_seqno >= 1) {
        cl_entry_view e;
        cl_buf b = CL_BUF_INIT;
        int rc = read_frame(l, l->durable_seqno, &b, &e);
        if (rc == CL_OK) {
            uint8_t wsd[32], leaf[32], stored[32];
            cl_entry_write_set_digest(&e, wsd);
            cl_entry_leaf(wsd, e.ce_digest, e.claims_digest, leaf);
            rc = cl_merkle_leaf(l->tree, l->durable_seqno, stored);
            if (rc == CL_OK && !cl_ct_equal(leaf, stored, 32))
                rc = CL_ECORRUPT;
        }
        cl_buf_free(&b);
        CL_TRY(rc);
    }
    return CL_OK;
}
