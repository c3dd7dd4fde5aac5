/*
 * wsload: a WebSocket load generator for the asgi_chat benchmark.
 *
 * One thread, non-blocking sockets, epoll (level-triggered). An RFC 6455 client:
 * HTTP/1.1 upgrade handshake (Sec-WebSocket-Accept checked with SHA-1), masked
 * client frames, text / binary / continuation / close / ping / pong frames, pings
 * answered with pongs, and an optional permessage-deflate offer (RFC 7692) with
 * zlib inflate of received messages and deflate of sent ones.
 *
 * Modes (see usage()):
 *   fanout  N receivers + 1 sender on /ws/{id}; the sender keeps at most W messages
 *           in flight; a message is "done" when every healthy (reading, still open)
 *           receiver has received its "Client #S says: ..." copy.
 *           Optionally K of the receivers are "stalled": they never read after the
 *           handshake.
 *   echo    K clients on /ws, each in lock-step request/response.
 *   idle    N connections on /ws/{id}, opened with a bounded number of handshakes
 *           in flight, then held open (pings answered) until told to exit.
 *   resume  (asgi-chat.v1 only) N clients join a room and disconnect; a sender says M
 *           lines; then the N clients reconnect at once, each joining with "since" its
 *           old position, and each must receive exactly offsets +1..+M, once, in order.
 *
 * --proto v1 (fanout, idle; implied by resume): the asgi-chat.v1 protocol on /chat/ws
 * (subprotocol asgi-chat.v1): every connection says hello as "u<id>" and joins the room
 * --room; a connection counts as open once its "joined" arrived. The sender's lines are
 * "say" frames; receivers take the sequence number and send time from the "text" of each
 * "msg" frame and ignore the others (welcome, joined, presence, ack).
 * --hello-file F: the hello of connection i is line (--hello-from + i) of F, as is (a
 * token's hello, say), instead of {"type":"hello","user":"u<id>"}; a resuming client says
 * its predecessor's. --stop-at welcome (idle): no join; a connection is ready at its welcome.
 *
 * Every message sent carries its send time (CLOCK_MONOTONIC, ns) in its text:
 *   "<seq> <t_ns> <filler...>"; receivers compute latency = now - t_ns. Each fan-out
 * receiver keeps a bitmap of the sequence numbers it has received: a gap counts as
 * lost until the missing message arrives (then it is out of order instead), and a
 * message that arrives twice is a duplicate (checked after the measured phase too).
 *
 * Output: JSON lines on stdout: {"event":"start"} when the measured phase begins,
 * {"event":"end"} when it ends, then {"event":"result", ...}. Afterwards the
 * process holds its connections open and reads commands on stdin: "status"
 * prints {"event":"status",...}; "quit" or EOF exits. Everything is bounded in
 * time (--deadline, --no-progress, --hold).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------ utils */

static uint64_t g_now; /* CLOCK_MONOTONIC ns, refreshed after every epoll_wait and read */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wsload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) die("out of memory (%zu bytes)", n);
    return q;
}

/* ------------------------------------------------------ SHA-1 and base64 */

typedef struct {
    uint32_t h[5];
    uint64_t len;
    unsigned char buf[64];
    size_t n;
} sha1_ctx;

#define ROL(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

static void sha1_block(sha1_ctx *s, const unsigned char *p) {
    uint32_t w[80], a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = ROL(a, 5) + f + e + k + w[i];
        e = d, d = c, c = ROL(b, 30), b = a, a = t;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e;
}

static void sha1(const void *data, size_t n, unsigned char out[20]) {
    sha1_ctx s = {{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, 0, {0}, 0};
    const unsigned char *p = data;
    s.len = n * 8;
    while (n >= 64) sha1_block(&s, p), p += 64, n -= 64;
    unsigned char last[128] = {0};
    memcpy(last, p, n);
    last[n] = 0x80;
    size_t total = n + 9 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; i++) last[total - 1 - i] = (unsigned char)(s.len >> (8 * i));
    sha1_block(&s, last);
    if (total == 128) sha1_block(&s, last + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(s.h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s.h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s.h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s.h[i];
    }
}

static void base64(const unsigned char *in, size_t n, char *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0, o = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = t[v >> 18], out[o++] = t[(v >> 12) & 63], out[o++] = t[(v >> 6) & 63], out[o++] = t[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = t[v >> 18], out[o++] = t[(v >> 12) & 63], out[o++] = '=', out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = t[v >> 18], out[o++] = t[(v >> 12) & 63], out[o++] = t[(v >> 6) & 63], out[o++] = '=';
    }
    out[o] = 0;
}

/* ------------------------------------------------------------- histogram */
/* Log-linear: exact below 128 ns, then 64 sub-buckets per power of two (<1.6 %). */

#define HBUCKETS 4096
typedef struct {
    uint64_t b[HBUCKETS];
    uint64_t n, max, sum;
} hist_t;

static int hidx(uint64_t v) {
    if (v < 128) return (int)v;
    int e = 63 - __builtin_clzll(v) - 6;
    int i = e * 64 + (int)(v >> e);
    return i < HBUCKETS ? i : HBUCKETS - 1;
}

static void hadd(hist_t *h, uint64_t v) {
    h->b[hidx(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max) h->max = v;
}

static double hpct(const hist_t *h, double q) { /* returns ms */
    if (!h->n) return -1;
    uint64_t want = (uint64_t)(q * (double)h->n);
    if (want < 1) want = 1;
    uint64_t acc = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += h->b[i];
        if (acc >= want) {
            if (i < 128) return (double)i / 1e6;
            int e = i / 64 - 1;
            uint64_t lo = (uint64_t)(i - e * 64) << e;
            return ((double)lo + (double)(1ull << e) / 2) / 1e6;
        }
    }
    return (double)h->max / 1e6;
}

/* --------------------------------------------------------------- options */

static struct {
    const char *mode, *host, *origin, *room, *hello_file;
    int proto, missed, until_joined, stop_welcome, hello_from;
    int port, deflate, compress_send, receivers, stalled, window, size, clients, connections, concurrency,
        id_base, verbose;
    long max_messages;
    double duration, no_progress, deadline, hold, drain;
} opt = {
    .mode = "fanout",
    .host = "127.0.0.1",
    .origin = NULL,
    .room = "bench",
    .proto = 0,
    .missed = 100,
    .until_joined = 0,
    .hello_file = NULL,
    .stop_welcome = 0,
    .hello_from = 0,
    .port = 8000,
    .deflate = 0,
    .compress_send = 1,
    .receivers = 100,
    .stalled = 0,
    .window = 32,
    .size = 64,
    .clients = 1,
    .connections = 1000,
    .concurrency = 256,
    .id_base = 1,
    .verbose = 0,
    .max_messages = 100000000,
    .duration = 5,
    .no_progress = 3,
    .deadline = 60,
    .hold = 120,
    .drain = 3,
};

/* ------------------------------------------------------------ connection */

enum role { R_RECV, R_SEND, R_STALL, R_ECHO, R_IDLE, R_GONE, R_BACK };
enum cstate { S_NEW, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSING, S_DONE };

typedef struct conn {
    int fd, idx, id;
    enum role role;
    enum cstate st;
    uint32_t events;
    char key[32];
    unsigned char *rbuf, *wbuf, *mbuf;
    size_t rlen, rcap, wlen, woff, wcap, mlen, mcap;
    int mop;
    bool mcomp, in_frag, close_sent, opened, reset, eof, failed;
    bool holds_slot; /* counts in g_connect_inflight (until its handshake, or with --until-joined its joined) */
    /* permessage-deflate as negotiated */
    bool pmd, srv_no_ctx, cli_no_ctx, inf_ok, def_ok;
    int cli_bits;
    z_stream inf, def;
    /* stats */
    long long next_seq, got, lost, ooo, dup, late, other, stall_msgs;
    uint64_t *seen; /* fan-out: bit s set once message s has arrived (duplicate detection) */
    size_t seen_words;
    int close_code; /* -1: none received */
    bool warmed, accounted;
    /* echo */
    long long echo_seq;
    bool echo_wait;
    /* asgi-chat.v1 */
    bool joined, resumed, welcomed;
    char epoch[72];
    long long offset, gaps; /* joined's offset (resume: where the client left); gap frames seen */
} conn;

static int g_ep;
static conn *g_conns;
static int g_nconns;
static struct sockaddr_in g_addr;
static char g_filler[65536];

/* global counters */
static long long g_opened, g_failed, g_closed_open, g_connect_inflight, g_next_connect, g_connect_target;
static long long g_close_codes[5000]; /* counts indexed by close code (0..4999) */
static long long g_resets, g_eofs_without_close, g_handshake_bad_accept, g_protocol_errors, g_pmd_negotiated;
static char g_ext_header[256];

enum phase { P_CONNECT, P_WARMUP, P_MEASURE, P_DRAIN, P_HOLD, P_EXIT };
static enum phase g_phase = P_CONNECT;
static uint64_t g_t0, g_deadline_ns, g_connect_start, g_connect_end, g_measure_start, g_measure_end, g_phase_t;
static double g_cpu_start, g_cpu_end;
static bool g_timed_out, g_stdin_open;
static const char *g_error;

static hist_t g_lat;

/* fan-out state */
static long long g_sent, g_done_base, g_deliveries, g_healthy_total, g_healthy_open, g_warm_count,
    g_warm_sent, g_max_inflight, g_sender_you_wrote, g_sender_own, g_left_msgs;
static int g_sender_port; /* the sender's local TCP port: tells the orchestrator which server process has it */
static int *g_ring, g_ringsz;
static uint64_t g_last_progress, g_last_delivery, g_warm_t;
static conn *g_sender;

/* echo state */
static long long g_roundtrips;

/* asgi-chat.v1 state */
static long long g_joined, g_acks, g_presence, g_gap_frames, g_resumed, g_res_gone_done, g_v1_errors;
static long long g_welcomed, g_unauthorized;
/* --hello-file: one hello frame per line, sent as is */
static char **g_hellos;
static size_t *g_hello_len;
static long long g_nhellos;

static void conn_fail(conn *c, bool reset);
static void advance_done(void);
static void account_closed(conn *c);
static void on_open(conn *c);
static void on_text(conn *c, const unsigned char *d, size_t n);

static void set_events(conn *c, uint32_t ev) {
    if (c->st == S_DONE || c->events == ev) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl MOD: %s", strerror(errno));
    c->events = ev;
}

static uint32_t wanted_events(conn *c) {
    uint32_t ev = 0;
    bool reading = !(c->role == R_STALL && c->st == S_OPEN && g_phase != P_DRAIN && g_phase != P_HOLD);
    if (c->st == S_CONNECTING) return EPOLLOUT;
    if (reading) ev |= EPOLLIN;
    if (c->wlen > c->woff) ev |= EPOLLOUT;
    return ev;
}

static void ensure(unsigned char **buf, size_t *cap, size_t need) {
    if (*cap >= need) return;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    *buf = xrealloc(*buf, n);
    *cap = n;
}

static void flush(conn *c) {
    while (c->woff < c->wlen) {
        ssize_t k = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (k > 0) {
            c->woff += (size_t)k;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (k < 0 && errno == EINTR) continue;
        conn_fail(c, true);
        return;
    }
    if (c->woff == c->wlen) c->woff = c->wlen = 0;
    set_events(c, wanted_events(c));
}

/* The connection no longer counts against --concurrency (handshakes, or joins, in flight). */
static void release_slot(conn *c) {
    if (!c->holds_slot) return;
    c->holds_slot = false;
    g_connect_inflight--;
}

/* Append one masked frame to the output buffer. */
static void queue_frame(conn *c, int op, bool rsv1, const unsigned char *p, size_t n) {
    ensure(&c->wbuf, &c->wcap, c->wlen + n + 14);
    unsigned char *h = c->wbuf + c->wlen;
    size_t hl;
    h[0] = (unsigned char)(0x80 | (rsv1 ? 0x40 : 0) | op);
    if (n < 126) {
        h[1] = (unsigned char)(0x80 | n);
        hl = 2;
    } else if (n < 65536) {
        h[1] = 0x80 | 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    uint32_t m = (uint32_t)rnd();
    unsigned char mk[4];
    memcpy(mk, &m, 4);
    memcpy(h + hl, mk, 4);
    hl += 4;
    unsigned char *o = h + hl;
    for (size_t i = 0; i < n; i++) o[i] = p[i] ^ mk[i & 3];
    c->wlen += hl + n;
}

static unsigned char *g_zbuf;
static size_t g_zcap;

/* Send a text message, compressed when permessage-deflate was negotiated. */
static void send_text(conn *c, const char *s, size_t n) {
    if (c->pmd && opt.compress_send) {
        if (!c->def_ok) {
            int bits = c->cli_bits < 9 ? 9 : c->cli_bits;
            if (deflateInit2(&c->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                die("deflateInit2 failed");
            c->def_ok = true;
        }
        ensure(&g_zbuf, &g_zcap, deflateBound(&c->def, n) + 64);
        c->def.next_in = (Bytef *)s;
        c->def.avail_in = (uInt)n;
        c->def.next_out = g_zbuf;
        c->def.avail_out = (uInt)g_zcap;
        if (deflate(&c->def, Z_SYNC_FLUSH) != Z_OK || c->def.avail_in) die("deflate failed");
        size_t out = g_zcap - c->def.avail_out;
        if (out >= 4 && !memcmp(g_zbuf + out - 4, "\x00\x00\xff\xff", 4)) out -= 4;
        if (c->cli_no_ctx) deflateReset(&c->def);
        queue_frame(c, 1, true, g_zbuf, out);
    } else {
        queue_frame(c, 1, false, (const unsigned char *)s, n);
    }
}

static void send_close(conn *c, int code) {
    if (c->close_sent || c->st == S_DONE) return;
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    queue_frame(c, 8, false, p, code ? 2 : 0);
    c->close_sent = true;
    flush(c);
}

/* ------------------------------------------------------------ receiving */

static unsigned char *g_ibuf;
static size_t g_icap;

static bool inflate_chunk(conn *c, const unsigned char *in, size_t n, size_t *produced) {
    z_stream *z = &c->inf;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    for (;;) {
        if (g_icap - *produced < 4096) ensure(&g_ibuf, &g_icap, g_icap ? g_icap * 2 : 65536);
        z->next_out = g_ibuf + *produced;
        z->avail_out = (uInt)(g_icap - *produced);
        int r = inflate(z, Z_SYNC_FLUSH);
        *produced = g_icap - z->avail_out;
        if (r == Z_STREAM_END) return true;
        if (r == Z_BUF_ERROR) {
            if (z->avail_out == 0) continue;
            return z->avail_in == 0;
        }
        if (r != Z_OK) return false;
        if (z->avail_in == 0 && z->avail_out != 0) return true;
    }
}

static void deliver(conn *c, int op, bool comp, const unsigned char *p, size_t n) {
    if (comp) {
        if (!c->pmd) {
            g_protocol_errors++;
            return;
        }
        if (!c->inf_ok) {
            if (inflateInit2(&c->inf, -15) != Z_OK) die("inflateInit2 failed");
            c->inf_ok = true;
        }
        size_t produced = 0;
        static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
        if (!inflate_chunk(c, p, n, &produced) || !inflate_chunk(c, tail, 4, &produced)) {
            g_protocol_errors++;
            return;
        }
        if (c->srv_no_ctx) inflateReset(&c->inf);
        p = g_ibuf;
        n = produced;
    }
    if (op == 1) on_text(c, p, n);
    else c->other++;
}

/* Parse as many complete frames as the read buffer holds. */
static void parse_frames(conn *c) {
    size_t off = 0;
    while (c->st == S_OPEN || c->st == S_CLOSING) {
        size_t avail = c->rlen - off;
        if (avail < 2) break;
        unsigned char *p = c->rbuf + off;
        bool fin = p[0] & 0x80, rsv1 = p[0] & 0x40;
        int op = p[0] & 0x0f;
        bool masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 2; i < 10; i++) len = len << 8 | p[i];
            hl = 10;
        }
        if (masked) hl += 4;
        if (avail < hl + len) {
            ensure(&c->rbuf, &c->rcap, hl + len + 4096); /* the frame starts at 0 after compaction */
            break;
        }
        unsigned char *pl = p + hl;
        if (masked) { /* servers must not mask; tolerate but count it */
            g_protocol_errors++;
            for (uint64_t i = 0; i < len; i++) pl[i] ^= p[hl - 4 + (i & 3)];
        }
        off += hl + len;
        if (op >= 8) {
            if (op == 9) { /* ping -> pong */
                if (!c->close_sent) {
                    queue_frame(c, 10, false, pl, len);
                    flush(c);
                }
            } else if (op == 8) {
                int code = len >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
                c->close_code = code;
                if (code >= 0 && code < 5000) g_close_codes[code]++;
                if (c->st == S_OPEN) {
                    account_closed(c);
                    c->st = S_CLOSING; /* keep reading until the server's EOF */
                }
                if (!c->close_sent) send_close(c, len >= 2 ? code : 0);
                break;
            }
            continue;
        }
        if (op == 1 || op == 2) {
            if (c->in_frag) g_protocol_errors++;
            if (fin) {
                deliver(c, op, rsv1, pl, len);
                continue;
            }
            c->mop = op;
            c->mcomp = rsv1;
            c->in_frag = true;
            c->mlen = 0;
        } else if (op != 0 || !c->in_frag) {
            g_protocol_errors++;
            continue;
        }
        ensure(&c->mbuf, &c->mcap, c->mlen + len);
        memcpy(c->mbuf + c->mlen, pl, len);
        c->mlen += len;
        if (fin) {
            c->in_frag = false;
            deliver(c, c->mop, c->mcomp, c->mbuf, c->mlen);
        }
    }
    if (c->st == S_DONE) return;
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static bool header_value(const char *hdrs, const char *name, char *out, size_t outsz) {
    size_t nl = strlen(name);
    const char *p = hdrs;
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            if (l >= outsz) l = outsz - 1;
            memcpy(out, v, l);
            out[l] = 0;
            return true;
        }
    }
    return false;
}

static void parse_handshake(conn *c) {
    unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->rlen > 16384) conn_fail(c, false);
        return;
    }
    size_t hlen = (size_t)(end - c->rbuf) + 4;
    char *h = malloc(hlen + 1);
    memcpy(h, c->rbuf, hlen);
    h[hlen] = 0;
    if (strncmp(h, "HTTP/1.1 101", 12) != 0) {
        if (opt.verbose) fprintf(stderr, "wsload: handshake refused: %.80s\n", h);
        free(h);
        conn_fail(c, false);
        return;
    }
    char v[256], expect[64];
    unsigned char dig[20];
    char cat[128];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
    sha1(cat, strlen(cat), dig);
    base64(dig, 20, expect);
    if (!header_value(h, "Sec-WebSocket-Accept", v, sizeof v) || strcmp(v, expect) != 0) {
        g_handshake_bad_accept++;
        free(h);
        conn_fail(c, false);
        return;
    }
    if (header_value(h, "Sec-WebSocket-Extensions", v, sizeof v) && strstr(v, "permessage-deflate")) {
        if (!opt.deflate) g_protocol_errors++;
        c->pmd = true;
        g_pmd_negotiated++;
        if (!g_ext_header[0]) snprintf(g_ext_header, sizeof g_ext_header, "%s", v);
        c->srv_no_ctx = strstr(v, "server_no_context_takeover") != NULL;
        c->cli_no_ctx = strstr(v, "client_no_context_takeover") != NULL;
        c->cli_bits = 15;
        char *b = strstr(v, "client_max_window_bits=");
        if (b) c->cli_bits = atoi(b + strlen("client_max_window_bits="));
    }
    free(h);
    memmove(c->rbuf, c->rbuf + hlen, c->rlen - hlen);
    c->rlen -= hlen;
    c->st = S_OPEN;
    c->opened = true;
    g_opened++;
    if (!(opt.until_joined && opt.proto && c->role == R_IDLE)) release_slot(c);
    set_events(c, wanted_events(c));
    on_open(c);
    if (c->st == S_OPEN && c->rlen && !(c->role == R_STALL)) parse_frames(c);
}

static void on_readable(conn *c) {
    for (int i = 0; i < 8 && c->st != S_DONE; i++) {
        ensure(&c->rbuf, &c->rcap, c->rlen + 4096);
        size_t space = c->rcap - c->rlen;
        ssize_t k = recv(c->fd, c->rbuf + c->rlen, space, 0);
        if (k > 0) {
            c->rlen += (size_t)k;
            g_now = mono_ns();
            if (c->st == S_HANDSHAKE) parse_handshake(c);
            else parse_frames(c);
            if ((size_t)k < space) break;
            continue;
        }
        if (k == 0) {
            c->eof = true;
            conn_fail(c, false);
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        conn_fail(c, true);
        return;
    }
}

/* ----------------------------------------------------------- connecting */

static void start_connect(conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s (raise ulimit -n)", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->st = S_CONNECTING;
    c->close_code = -1;
    g_connect_inflight++;
    c->holds_slot = true;
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) < 0 && errno != EINPROGRESS) {
        c->events = 0;
        struct epoll_event e = {.events = 0, .data.ptr = c};
        epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e);
        conn_fail(c, true);
        return;
    }
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl ADD: %s", strerror(errno));
    c->events = EPOLLOUT;
}

static void on_connected(conn *c) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        if (opt.verbose) fprintf(stderr, "wsload: connect: %s\n", strerror(err));
        conn_fail(c, true);
        return;
    }
    unsigned char k[16];
    for (int i = 0; i < 16; i++) k[i] = (unsigned char)rnd();
    base64(k, 16, c->key);
    char req[1024];
    char path[64];
    if (c->role == R_ECHO) snprintf(path, sizeof path, "/ws");
    else if (opt.proto) snprintf(path, sizeof path, "/chat/ws");
    else snprintf(path, sizeof path, "/ws/%d", c->id);
    char origin[300] = "";
    if (opt.origin) snprintf(origin, sizeof origin, "Origin: %s\r\n", opt.origin);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     path, opt.host, opt.port, c->key, origin,
                     opt.proto && c->role != R_ECHO ? "Sec-WebSocket-Protocol: asgi-chat.v1\r\n" : "",
                     opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
    c->st = S_HANDSHAKE;
    ensure(&c->wbuf, &c->wcap, (size_t)n);
    memcpy(c->wbuf, req, (size_t)n);
    c->wlen = (size_t)n;
    c->woff = 0;
    flush(c);
}

static void launch_connections(void) {
    while (g_next_connect < g_connect_target && g_connect_inflight < opt.concurrency) {
        conn *c = &g_conns[g_next_connect++];
        if (!g_connect_start) g_connect_start = g_now;
        start_connect(c);
    }
}

/* ----------------------------------------------------------- scenarios */

static void emit(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void begin_measure(void) {
    g_phase = P_MEASURE;
    g_measure_start = g_now;
    g_last_progress = g_now;
    g_cpu_start = cpu_seconds();
    memset(&g_lat, 0, sizeof g_lat);
    emit("{\"event\":\"start\"}");
}

static void end_measure(bool timed_out) {
    g_measure_end = g_now;
    g_cpu_end = cpu_seconds();
    g_timed_out = timed_out;
    emit("{\"event\":\"end\"}");
}

/* -- fan-out bookkeeping: ring[seq % R] counts healthy receivers that have seq */

static void advance_done(void) {
    while (g_done_base < g_sent && (g_healthy_open <= 0 || g_ring[g_done_base % g_ringsz] >= g_healthy_open))
        g_done_base++;
}

/* Marks message seq as arrived on c; returns whether it had arrived before (a duplicate). */
static bool seen_before(conn *c, long long seq) {
    size_t w = (size_t)seq / 64;
    if (w >= c->seen_words) {
        size_t n = c->seen_words ? c->seen_words : 16;
        while (n <= w) n *= 2;
        c->seen = xrealloc(c->seen, n * sizeof *c->seen);
        memset(c->seen + c->seen_words, 0, (n - c->seen_words) * sizeof *c->seen);
        c->seen_words = n;
    }
    uint64_t bit = 1ull << (seq % 64);
    bool was = (c->seen[w] & bit) != 0;
    c->seen[w] |= bit;
    return was;
}

/* A measured message seq reached receiver c. A gap counts as lost until the missing message
 * arrives (then it is out of order instead); a message that arrives again is a duplicate. */
static void fan_record(conn *c, long long seq, uint64_t t) {
    if (seq < 0 || seq >= g_sent) { /* a seq never sent: corrupt */
        g_protocol_errors++;
        return;
    }
    if (seen_before(c, seq)) {
        c->dup++;
        return;
    }
    if (seq < c->next_seq) { /* late: its window slot was released when the gap was seen */
        c->ooo++;
        if (c->lost > 0) c->lost--;
        c->got++;
        g_deliveries++;
        hadd(&g_lat, g_now > t ? g_now - t : 0);
        g_last_progress = g_last_delivery = g_now;
        return;
    }
    if (seq > c->next_seq) c->lost += seq - c->next_seq;
    for (long long s = c->next_seq > g_done_base ? c->next_seq : g_done_base; s <= seq; s++) g_ring[s % g_ringsz]++;
    c->next_seq = seq + 1;
    c->got++;
    g_deliveries++;
    hadd(&g_lat, g_now > t ? g_now - t : 0);
    g_last_progress = g_last_delivery = g_now;
    advance_done();
}

static bool parse_ll(const unsigned char **p, const unsigned char *e, long long *out) {
    const unsigned char *q = *p;
    long long v = 0;
    if (q >= e || *q < '0' || *q > '9') return false;
    while (q < e && *q >= '0' && *q <= '9') v = v * 10 + (*q++ - '0');
    *out = v;
    *p = q;
    return true;
}

/* "Client #<id> says: <body>" -> id, body */
static bool parse_chat(const unsigned char *d, size_t n, long long *from, const unsigned char **body,
                       bool *left) {
    const unsigned char *e = d + n, *p = d + 8;
    if (n < 8 || memcmp(d, "Client #", 8)) return false;
    if (!parse_ll(&p, e, from)) return false;
    if ((size_t)(e - p) >= 7 && !memcmp(p, " says: ", 7)) {
        *body = p + 7;
        *left = false;
        return true;
    }
    if ((size_t)(e - p) >= 14 && !memcmp(p, " left the chat", 14)) {
        *left = true;
        return true;
    }
    return false;
}

/* -- asgi-chat.v1: every frame is one flat JSON object whose first key is "type" */

static void fan_ready(conn *c);

static bool frame_is(const unsigned char *d, size_t n, const char *type) {
    char k[48];
    int kl = snprintf(k, sizeof k, "{\"type\":\"%s\"", type);
    return n >= (size_t)kl && !memcmp(d, k, (size_t)kl);
}

/* The value after "key": (its first occurrence), or NULL. */
static const unsigned char *json_field(const unsigned char *d, size_t n, const char *key) {
    char k[48];
    int kl = snprintf(k, sizeof k, "\"%s\":", key);
    const unsigned char *p = memmem(d, n, k, (size_t)kl);
    return p ? p + kl : NULL;
}

/* A resuming client's msg: exact means offsets since+1, since+2, ... each once, in order. */
static void resume_record(conn *c, const unsigned char *d, size_t n) {
    const unsigned char *p = json_field(d, n, "offset");
    long long off = 0;
    if (!p || !parse_ll(&p, d + n, &off)) {
        g_protocol_errors++;
        return;
    }
    if (off == c->next_seq) c->got++, c->next_seq++;
    else if (off < c->next_seq) c->dup++;
    else c->lost += off - c->next_seq, c->ooo++, c->got++, c->next_seq = off + 1;
    if (c->next_seq > c->offset + opt.missed + 1) c->late++; /* beyond what was missed */
    g_deliveries++;
    g_last_progress = g_now;
    if (!c->warmed && c->next_seq > c->offset + opt.missed) {
        c->warmed = true;
        g_res_gone_done++;
        hadd(&g_lat, g_now - g_measure_start); /* per client: seconds from the start until it has all */
    }
}

static void on_text_v1(conn *c, const unsigned char *d, size_t n) {
    if (g_phase == P_MEASURE && !strcmp(opt.mode, "resume")) g_last_progress = g_now;
    if (frame_is(d, n, "msg")) {
        const unsigned char *body = json_field(d, n, "text"), *e = d + n;
        if (!body || body >= e || *body != '"') {
            g_protocol_errors++;
            return;
        }
        body++;
        const unsigned char *q = memchr(body, '"', (size_t)(e - body));
        if (!q) {
            g_protocol_errors++;
            return;
        }
        e = q;
        switch (c->role) {
        case R_BACK:
            resume_record(c, d, n);
            return;
        case R_SEND:
            g_sender_own++;
            return;
        case R_RECV:
            break;
        default:
            c->other++;
            return;
        }
        long long seq = 0, t = 0;
        if (body < e && *body == 'w') {
            if (!c->warmed) {
                c->warmed = true;
                g_warm_count++;
            }
            return;
        }
        if (g_phase < P_MEASURE) return;
        if (!parse_ll(&body, e, &seq) || body >= e || *body++ != ' ' || !parse_ll(&body, e, &t)) {
            g_protocol_errors++;
            return;
        }
        if (g_phase == P_MEASURE) fan_record(c, seq, (uint64_t)t);
        else if (seq < 0 || seq >= g_sent) g_protocol_errors++;
        else if (seen_before(c, seq)) c->dup++;
        else c->late++;
        return;
    }
    if (frame_is(d, n, "joined")) {
        if (c->joined) {
            c->other++;
            return;
        }
        c->joined = true;
        g_joined++;
        release_slot(c);
        if (c->role == R_BACK) {
            g_resumed++;
            return;
        }
        const unsigned char *p = json_field(d, n, "epoch"), *e = d + n;
        if (p && p < e && *p == '"') {
            p++;
            const unsigned char *q = memchr(p, '"', (size_t)(e - p));
            if (q && (size_t)(q - p) < sizeof c->epoch) memcpy(c->epoch, p, (size_t)(q - p)), c->epoch[q - p] = 0;
        }
        p = json_field(d, n, "offset");
        long long off = 0;
        if (p && parse_ll(&p, e, &off)) c->offset = off;
        if (!strcmp(opt.mode, "fanout")) fan_ready(c);
        return;
    }
    if (frame_is(d, n, "presence")) g_presence++;
    else if (frame_is(d, n, "ack")) g_acks++;
    else if (frame_is(d, n, "gap")) g_gap_frames++, c->gaps++;
    else if (frame_is(d, n, "error")) {
        if (opt.verbose && g_v1_errors < 5) fprintf(stderr, "wsload: %.*s\n", (int)(n < 200 ? n : 200), d);
        g_v1_errors++;
        if (memmem(d, n, "\"unauthorized\"", 14)) g_unauthorized++;
    } else if (frame_is(d, n, "welcome") && !c->welcomed) {
        c->welcomed = true;
        g_welcomed++;
        if (opt.stop_welcome) release_slot(c); /* --stop-at welcome: ready */
    } else c->other++;
}

static void on_text(conn *c, const unsigned char *d, size_t n) {
    if (opt.proto && c->role != R_ECHO) {
        on_text_v1(c, d, n);
        return;
    }
    const unsigned char *e = d + n, *body = NULL;
    long long from = 0, seq = 0, t = 0;
    bool left = false;
    switch (c->role) {
    case R_RECV:
    case R_SEND:
        if (c->role == R_SEND && n >= 11 && !memcmp(d, "You wrote: ", 11)) {
            g_sender_you_wrote++;
            return;
        }
        if (!parse_chat(d, n, &from, &body, &left)) {
            c->other++;
            return;
        }
        if (left) {
            g_left_msgs++;
            return;
        }
        if (g_sender == NULL || from != g_sender->id) {
            c->other++;
            return;
        }
        if (body < e && *body == 'w') {
            if (!c->warmed && c->role == R_RECV) {
                c->warmed = true;
                g_warm_count++;
            }
            return;
        }
        if (c->role == R_SEND) {
            g_sender_own++;
            return;
        }
        if (g_phase < P_MEASURE) return;
        if (!parse_ll(&body, e, &seq) || body >= e || *body++ != ' ' || !parse_ll(&body, e, &t)) {
            g_protocol_errors++;
            return;
        }
        if (g_phase == P_MEASURE) fan_record(c, seq, (uint64_t)t);
        else if (seq < 0 || seq >= g_sent) g_protocol_errors++;
        else if (seen_before(c, seq)) c->dup++; /* after the end too: a late duplicate still counts */
        else c->late++;                         /* a first arrival after the measured phase */
        return;
    case R_STALL:
        c->stall_msgs++;
        return;
    case R_ECHO: {
        static const char pre[] = "Message text was: ";
        if (n < sizeof pre - 1 || memcmp(d, pre, sizeof pre - 1)) {
            c->other++;
            return;
        }
        const unsigned char *p = d + sizeof pre - 1;
        if (!parse_ll(&p, e, &seq) || p >= e || *p++ != ' ' || !parse_ll(&p, e, &t)) {
            g_protocol_errors++;
            return;
        }
        if (!c->echo_wait || seq != c->echo_seq) {
            c->ooo++;
            return;
        }
        c->echo_wait = false;
        c->got++;
        if (g_phase == P_MEASURE) {
            g_roundtrips++;
            hadd(&g_lat, g_now > (uint64_t)t ? g_now - (uint64_t)t : 0);
            g_last_progress = g_now;
        }
        return;
    }
    case R_IDLE:
    case R_GONE:
    case R_BACK:
        c->other++;
        return;
    }
}

static char g_msg[1 << 20];

static size_t build_msg(long long seq, uint64_t t) {
    int k = snprintf(g_msg, sizeof g_msg, "%lld %llu ", seq, (unsigned long long)t);
    size_t n = (size_t)k;
    if ((size_t)opt.size > n) {
        size_t want = (size_t)opt.size - n, off = (size_t)(seq * 131) % (sizeof g_filler - want - 1);
        memcpy(g_msg + n, g_filler + off, want);
        n += want;
    }
    return n;
}

static char g_say[(1 << 20) + 512];

/* One line of the sender: as is (tutorial chat) or in a v1 say (the text needs no escaping). */
static void send_line(conn *c, const char *text, size_t n) {
    if (!opt.proto) {
        send_text(c, text, n);
        return;
    }
    int k = snprintf(g_say, sizeof g_say, "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"%.*s\"}", opt.room,
                     (int)n, text);
    send_text(c, g_say, (size_t)k);
}

static void echo_send(conn *c) {
    if (c->st != S_OPEN || c->echo_wait) return;
    c->echo_seq++;
    size_t n = build_msg(c->echo_seq, mono_ns());
    c->echo_wait = true;
    send_text(c, g_msg, n);
    flush(c);
}

/* A fan-out connection is registered (tutorial: open; v1: joined). */
static void fan_ready(conn *c) {
    static long long ready;
    ready++;
    if (ready == opt.receivers && c->role != R_SEND) {
        /* every receiver is registered: now the sender, last in any broadcast list */
        g_connect_target = g_nconns;
    } else if (c->role == R_SEND) {
        g_phase = P_WARMUP;
        g_connect_end = g_now;
        struct sockaddr_in me;
        socklen_t l = sizeof me;
        if (getsockname(c->fd, (struct sockaddr *)&me, &l) == 0) g_sender_port = ntohs(me.sin_port);
    }
}

static void on_open(conn *c) {
    if (c->role == R_STALL) set_events(c, wanted_events(c));
    if (opt.proto && c->role != R_ECHO) { /* hello and join; registered once "joined" arrives */
        char buf[256];
        int k;
        if (g_nhellos) {
            long long i = opt.hello_from + (c->role == R_BACK ? c->idx - opt.receivers - 1 : c->idx);
            send_text(c, g_hellos[i % g_nhellos], g_hello_len[i % g_nhellos]);
        } else {
            k = snprintf(buf, sizeof buf, "{\"type\":\"hello\",\"user\":\"u%d\"}", c->id);
            send_text(c, buf, (size_t)k);
        }
        if (opt.stop_welcome) {
            flush(c);
            return;
        }
        if (c->role == R_BACK)
            k = snprintf(buf, sizeof buf,
                         "{\"type\":\"join\",\"room\":\"%s\",\"since\":{\"epoch\":\"%s\",\"offset\":%lld}}",
                         opt.room, c->epoch, c->offset);
        else k = snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"%s\"}", opt.room);
        send_text(c, buf, (size_t)k);
        flush(c);
        return;
    }
    if (!strcmp(opt.mode, "fanout")) {
        fan_ready(c);
    } else if (!strcmp(opt.mode, "echo")) {
        if (g_opened == opt.clients) {
            g_connect_end = g_now;
            begin_measure();
            for (int i = 0; i < g_nconns; i++) echo_send(&g_conns[i]);
        }
    }
}

/* The server closed an open connection (close frame, EOF or reset): account for it once. */
static void account_closed(conn *c) {
    if (c->accounted) return;
    c->accounted = true;
    g_closed_open++;
    if (c->role == R_RECV && g_ring && g_healthy_open > 0) {
        long long hi = c->next_seq < g_sent ? c->next_seq : g_sent;
        for (long long s = g_done_base; s < hi; s++) g_ring[s % g_ringsz]--;
        g_healthy_open--;
        advance_done();
    }
}

/* The TCP connection is gone (EOF, error) or must be dropped: close the socket. */
static void conn_fail(conn *c, bool reset) {
    if (c->st == S_DONE) return;
    if (c->st == S_CONNECTING || c->st == S_HANDSHAKE) {
        g_failed++;
        c->failed = true;
    } else if (c->st == S_OPEN) {
        if (c->holds_slot) g_failed++, c->failed = true; /* --until-joined: gone before its joined */
        if (reset) g_resets++;
        else if (c->close_code < 0) g_eofs_without_close++;
        account_closed(c);
    }
    release_slot(c);
    if (reset) c->reset = true;
    close(c->fd);
    c->st = S_DONE;
}

/* --------------------------------------------------------------- results */

static void print_common(char *buf, size_t sz) {
    char codes[1024] = "";
    size_t o = 0;
    for (int i = 0; i < 5000; i++)
        if (g_close_codes[i])
            o += (size_t)snprintf(codes + o, sizeof codes - o, "%s\"%d\":%lld", o ? "," : "", i, g_close_codes[i]);
    double wall = (double)(g_measure_end - g_measure_start) / 1e9;
    double cpu = g_cpu_end - g_cpu_start;
    snprintf(buf, sz,
             "\"deflate_offered\":%s,\"deflate_negotiated\":%lld,\"extension_header\":\"%s\",\"opened\":%lld,"
             "\"failed\":%lld,\"closed_by_server\":%lld,\"close_codes\":{%s},\"resets\":%lld,"
             "\"eof_without_close\":%lld,\"bad_accept\":%lld,\"protocol_errors\":%lld,\"timed_out\":%s,"
             "\"measure_s\":%.6f,\"client_cpu_s\":%.6f,\"client_cpu_pct\":%.2f,\"lat_p50_ms\":%.4f,"
             "\"lat_p99_ms\":%.4f,\"lat_max_ms\":%.4f,\"lat_mean_ms\":%.4f,\"samples\":%llu%s%s",
             opt.deflate ? "true" : "false", g_pmd_negotiated, g_ext_header, g_opened, g_failed, g_closed_open,
             codes, g_resets, g_eofs_without_close, g_handshake_bad_accept, g_protocol_errors,
             g_timed_out ? "true" : "false", wall, cpu, wall > 0 ? 100 * cpu / wall : 0, hpct(&g_lat, 0.50),
             hpct(&g_lat, 0.99), (double)g_lat.max / 1e6, g_lat.n ? (double)g_lat.sum / (double)g_lat.n / 1e6 : -1,
             (unsigned long long)g_lat.n, g_error ? ",\"error\":\"" : "", g_error ? g_error : "");
    if (g_error) strncat(buf, "\"", sz - strlen(buf) - 1);
}

static void print_result(void) {
    char common[4096];
    print_common(common, sizeof common);
    double wall = (double)(g_measure_end - g_measure_start) / 1e9;
    if (!strcmp(opt.mode, "fanout")) {
        long long lost = 0, ooo = 0, dup = 0, closed_healthy = 0, stall_msgs = 0;
        char stall[512] = "";
        size_t so = 0;
        for (int i = 0; i < g_nconns; i++) {
            conn *c = &g_conns[i];
            lost += c->lost;
            ooo += c->ooo;
            dup += c->dup;
            if (c->role == R_RECV && c->close_code >= 0) closed_healthy++;
            if (c->role == R_RECV && c->st == S_DONE && c->close_code < 0) closed_healthy++;
            if (c->role == R_STALL) {
                stall_msgs += c->stall_msgs;
                const char *state = c->close_code >= 0 ? "closed"
                                    : c->reset         ? "reset"
                                    : c->eof           ? "eof"
                                    : c->st == S_DONE  ? "gone"
                                                       : "open";
                so += (size_t)snprintf(stall + so, sizeof stall - so, "%s{\"state\":\"%s\",\"code\":%d,\"msgs\":%lld}",
                                       so ? "," : "", state, c->close_code, c->stall_msgs);
            }
        }
        double active = g_last_delivery > g_measure_start ? (double)(g_last_delivery - g_measure_start) / 1e9 : 0;
        long long planned = opt.max_messages < 100000000 ? opt.max_messages : g_sent;
        double expected = (double)g_healthy_total * (double)planned;
        emit("{\"event\":\"result\",\"mode\":\"fanout\",\"receivers\":%d,\"stalled\":%d,\"healthy\":%lld,"
             "\"window\":%d,\"size\":%d,\"sent\":%lld,\"planned\":%lld,\"done\":%lld,\"deliveries\":%lld,"
             "\"delivered_fraction\":%.6f,\"deliveries_per_s\":%.1f,\"active_s\":%.6f,\"messages_per_s\":%.1f,"
             "\"max_inflight\":%lld,\"lost\":%lld,\"out_of_order\":%lld,\"duplicates\":%lld,\"healthy_closed\":%lld,"
             "\"sender_you_wrote\":%lld,\"sender_own_copies\":%lld,\"left_msgs\":%lld,\"stalled_conns\":[%s],"
             "\"stalled_msgs\":%lld,\"sender_port\":%d,\"connect_s\":%.6f,%s}",
             opt.receivers, opt.stalled, g_healthy_total, opt.window, opt.size, g_sent, planned, g_done_base,
             g_deliveries, expected > 0 ? (double)g_deliveries / expected : 0,
             active > 0 ? (double)g_deliveries / active : 0, active,
             wall > 0 ? (double)g_done_base / wall : 0, g_max_inflight, lost, ooo, dup, closed_healthy,
             g_sender_you_wrote, g_sender_own, g_left_msgs, stall, stall_msgs, g_sender_port,
             (double)(g_connect_end - g_connect_start) / 1e9, common);
    } else if (!strcmp(opt.mode, "resume")) {
        long long exact = 0, done = 0, dup = 0, ooo = 0, lost = 0, gaps = 0, extra = 0, closed = 0;
        for (int i = opt.receivers + 1; i < g_nconns; i++) {
            conn *c = &g_conns[i];
            done += c->warmed;
            exact += c->warmed && !c->dup && !c->ooo && !c->lost && !c->gaps && !c->late &&
                     c->got == opt.missed;
            dup += c->dup, ooo += c->ooo, lost += c->lost, gaps += c->gaps, extra += c->late;
            closed += c->close_code >= 0 || c->st == S_DONE;
        }
        emit("{\"event\":\"result\",\"mode\":\"resume\",\"clients\":%d,\"missed\":%d,\"resumed\":%lld,"
             "\"recovered\":%lld,\"recovered_exact\":%lld,\"replayed\":%lld,\"duplicates\":%lld,"
             "\"out_of_order\":%lld,\"lost\":%lld,\"gap_frames\":%lld,\"extra\":%lld,\"resumers_closed\":%lld,"
             "\"seconds\":%.6f,\"connect_s\":%.6f,\"presence_frames\":%lld,\"v1_errors\":%lld,%s}",
             opt.receivers, opt.missed, g_resumed, done, exact, g_deliveries, dup, ooo, lost, gaps, extra, closed,
             wall, g_connect_end > g_connect_start ? (double)(g_connect_end - g_connect_start) / 1e9 : -1.0,
             g_presence, g_v1_errors, common);
    } else if (!strcmp(opt.mode, "echo")) {
        long long ooo = 0;
        for (int i = 0; i < g_nconns; i++) ooo += g_conns[i].ooo;
        emit("{\"event\":\"result\",\"mode\":\"echo\",\"clients\":%d,\"size\":%d,\"roundtrips\":%lld,"
             "\"roundtrips_per_s\":%.1f,\"out_of_order\":%lld,\"connect_s\":%.6f,%s}",
             opt.clients, opt.size, g_roundtrips, wall > 0 ? (double)g_roundtrips / wall : 0, ooo,
             (double)(g_connect_end - g_connect_start) / 1e9, common);
    } else {
        double cs = (double)(g_connect_end - g_connect_start) / 1e9;
        emit("{\"event\":\"result\",\"mode\":\"idle\",\"connections\":%d,\"concurrency\":%d,\"until_joined\":%d,"
             "\"connect_s\":%.6f,\"connections_per_s\":%.1f,\"joined\":%lld,\"presence_frames\":%lld,"
             "\"v1_errors\":%lld,\"stop_at\":\"%s\",\"welcomed\":%lld,\"unauthorized\":%lld,%s}",
             opt.connections, opt.concurrency, opt.until_joined, cs, cs > 0 ? (double)g_opened / cs : 0, g_joined,
             g_presence, g_v1_errors, opt.stop_welcome ? "welcome" : "joined", g_welcomed, g_unauthorized, common);
    }
}

static void print_status(void) {
    long long open = 0, other = 0, lost = 0, ooo = 0, dup = 0, late = 0;
    for (int i = 0; i < g_nconns; i++) {
        conn *c = &g_conns[i];
        if (c->st == S_OPEN) open++;
        other += c->other;
        lost += c->lost, ooo += c->ooo, dup += c->dup, late += c->late;
    }
    char codes[1024] = "";
    size_t o = 0;
    for (int i = 0; i < 5000; i++)
        if (g_close_codes[i])
            o += (size_t)snprintf(codes + o, sizeof codes - o, "%s\"%d\":%lld", o ? "," : "", i, g_close_codes[i]);
    emit("{\"event\":\"status\",\"open\":%lld,\"closed_by_server\":%lld,\"resets\":%lld,\"close_codes\":{%s},"
         "\"other_msgs\":%lld,\"left_msgs\":%lld,\"lost\":%lld,\"out_of_order\":%lld,\"duplicates\":%lld,"
         "\"late_msgs\":%lld,\"joined\":%lld,\"presence_frames\":%lld,\"v1_errors\":%lld,\"welcomed\":%lld}",
         open, g_closed_open, g_resets, codes, other, g_left_msgs, lost, ooo, dup, late, g_joined, g_presence,
         g_v1_errors, g_welcomed);
}

static uint64_t g_hold_end;

static void enter_hold(void) {
    print_result();
    g_phase = P_HOLD;
    g_hold_end = g_now + (uint64_t)(opt.hold * 1e9);
    for (int i = 0; i < g_nconns; i++) {
        conn *c = &g_conns[i];
        if (c->role == R_STALL && c->st == S_OPEN) set_events(c, wanted_events(c));
    }
    int fl = fcntl(0, F_GETFL);
    if (fl >= 0) fcntl(0, F_SETFL, fl | O_NONBLOCK);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, 0, &e) < 0) g_phase = P_EXIT; /* /dev/null, a file: nothing to wait for */
    else g_stdin_open = true;
}

static void on_stdin(void) {
    static char buf[4096];
    static size_t len;
    for (;;) {
        ssize_t k = read(0, buf + len, sizeof buf - len - 1);
        if (k == 0) {
            g_phase = P_EXIT;
            return;
        }
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            g_phase = P_EXIT;
            return;
        }
        len += (size_t)k;
        buf[len] = 0;
        char *nl;
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = 0;
            if (!strcmp(buf, "status")) print_status();
            else if (!strcmp(buf, "quit")) g_phase = P_EXIT;
            size_t rest = len - (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, rest);
            len = rest;
            buf[len] = 0;
        }
        if (len >= sizeof buf - 1) len = 0;
    }
}

/* resume: N clients join and leave, the sender says M lines, then the N reconnect at once. */
static void resume_setup(void) {
    static int step;
    static uint64_t t;
    int n = opt.receivers;
    if (g_failed) {
        g_error = "connection failed";
        g_measure_start = g_measure_end = g_now;
        enter_hold();
        return;
    }
    if (step == 0 && g_joined >= n) {
        g_connect_target = n + 1; /* the sender */
        step = 1;
    } else if (step == 1 && g_sender->joined) {
        for (int i = 0; i < n; i++) send_close(&g_conns[i], 1000); /* they leave the room */
        step = 2;
        t = g_now;
    } else if (step == 2) {
        int gone = 0;
        for (int i = 0; i < n; i++) gone += g_conns[i].st == S_DONE;
        if (gone < n && g_now - t < 10000000000ull) return;
        for (long long k = 0; k < opt.missed; k++) { /* what they miss */
            char line[64];
            int len = snprintf(line, sizeof line, "r %lld", k);
            send_line(g_sender, line, (size_t)len);
        }
        flush(g_sender);
        g_sent = opt.missed;
        step = 3;
        t = g_now;
    } else if (step == 3 && g_acks >= opt.missed) {
        for (int i = 0; i < n; i++) { /* each resumes where its predecessor left */
            conn *b = &g_conns[n + 1 + i];
            memcpy(b->epoch, g_conns[i].epoch, sizeof b->epoch);
            b->offset = g_conns[i].offset;
            b->next_seq = b->offset + 1;
        }
        step = 4;
        begin_measure();
        g_connect_start = g_now;
        g_connect_end = 0;
        g_connect_target = g_nconns;
        launch_connections();
    } else if (step == 3 && g_now - t > 30000000000ull) {
        g_error = "the sender's says were not acknowledged";
        g_measure_start = g_measure_end = g_now;
        enter_hold();
    }
}

static void tick(void) {
    if (g_phase < P_HOLD && g_now > g_deadline_ns) {
        g_error = "deadline exceeded";
        if (g_phase == P_MEASURE) end_measure(true);
        else if (g_phase != P_DRAIN) g_measure_start = g_measure_end = g_now;
        enter_hold();
        return;
    }
    switch (g_phase) {
    case P_CONNECT:
        launch_connections();
        if (!strcmp(opt.mode, "resume")) {
            resume_setup();
            return;
        }
        long long ready = !opt.proto ? g_opened : opt.stop_welcome ? g_welcomed : g_joined;
        if (!strcmp(opt.mode, "idle") && ready + g_failed >= opt.connections) {
            g_connect_end = g_now;
            g_measure_start = g_connect_start;
            g_measure_end = g_connect_end;
            g_cpu_end = cpu_seconds();
            emit("{\"event\":\"end\"}");
            enter_hold();
        } else if (g_failed && strcmp(opt.mode, "idle")) {
            g_error = "connection failed";
            g_measure_start = g_measure_end = g_now;
            enter_hold();
        }
        return;
    case P_WARMUP:
        if (g_warm_count >= g_healthy_total) {
            begin_measure();
        } else if (!g_warm_sent || g_now - g_warm_t > 1000000000ull) {
            if (g_warm_sent > 30) {
                g_error = "receivers did not get the warm-up message";
                g_measure_start = g_measure_end = g_now;
                enter_hold();
                return;
            }
            char w[32];
            int n = snprintf(w, sizeof w, "w %lld", g_warm_sent++);
            g_warm_t = g_now;
            send_line(g_sender, w, (size_t)n);
            flush(g_sender);
            return;
        } else {
            return;
        }
        __attribute__((fallthrough)); /* into the first sends */
    case P_MEASURE:
        if (!strcmp(opt.mode, "fanout")) {
            uint64_t send_end = g_measure_start + (uint64_t)(opt.duration * 1e9);
            bool sending = g_now < send_end && g_sender->st == S_OPEN;
            int batch = 0;
            while (sending && g_sent < opt.max_messages && g_sent - g_done_base < opt.window) {
                g_ring[g_sent % g_ringsz] = 0;
                size_t n = build_msg(g_sent, mono_ns());
                send_line(g_sender, g_msg, n);
                g_sent++;
                batch++;
                g_last_progress = g_now;
            }
            if (batch) flush(g_sender);
            if (g_sent - g_done_base > g_max_inflight) g_max_inflight = g_sent - g_done_base;
            bool finished = (g_sent >= opt.max_messages || g_now >= send_end) && g_done_base >= g_sent;
            bool stuck = g_now - g_last_progress > (uint64_t)(opt.no_progress * 1e9);
            if (finished || stuck || g_healthy_open <= 0 || g_sender->st != S_OPEN) {
                end_measure(stuck);
                if (opt.stalled) {
                    g_phase = P_DRAIN;
                    g_phase_t = g_now;
                    for (int i = 0; i < g_nconns; i++)
                        if (g_conns[i].role == R_STALL) set_events(&g_conns[i], wanted_events(&g_conns[i]));
                } else {
                    enter_hold();
                }
            }
        } else if (!strcmp(opt.mode, "resume")) {
            launch_connections();
            if (!g_connect_end && g_resumed >= opt.receivers) g_connect_end = g_now;
            bool stuck = g_now - g_last_progress > (uint64_t)(opt.no_progress * 1e9);
            if (g_res_gone_done >= opt.receivers || stuck || g_failed) {
                end_measure(stuck);
                enter_hold();
            }
        } else if (!strcmp(opt.mode, "echo")) {
            uint64_t send_end = g_measure_start + (uint64_t)(opt.duration * 1e9);
            bool waiting = false;
            for (int i = 0; i < g_nconns; i++) {
                conn *c = &g_conns[i];
                if (c->st != S_OPEN) continue;
                if (c->echo_wait) waiting = true;
                else if (g_now < send_end) echo_send(c), waiting = true;
            }
            bool stuck = g_now - g_last_progress > (uint64_t)(opt.no_progress * 1e9);
            if (!waiting || stuck) {
                end_measure(stuck);
                enter_hold();
            }
        }
        return;
    case P_DRAIN: {
        bool all = true;
        for (int i = 0; i < g_nconns; i++)
            if (g_conns[i].role == R_STALL && g_conns[i].st == S_OPEN) all = false;
        if (all || g_now - g_phase_t > (uint64_t)(opt.drain * 1e9)) enter_hold();
        return;
    }
    case P_HOLD:
        if (g_now > g_hold_end) g_phase = P_EXIT;
        return;
    case P_EXIT:
        return;
    }
}

static int next_timeout_ms(void) {
    switch (g_phase) {
    case P_MEASURE:
    case P_WARMUP:
    case P_DRAIN:
        return 5;
    case P_CONNECT:
        return 50;
    default:
        return 200;
    }
}

/* --hello-file: every non-empty line is one hello frame, sent as is (no newline). */
static void load_hellos(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    long long have = 0;
    while ((k = getline(&line, &cap, f)) >= 0) {
        while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r')) k--;
        if (k == 0) continue;
        if (k > 16384) die("%s: a hello longer than 16384 bytes", path);
        if (g_nhellos == have) {
            have = have ? 2 * have : 1024;
            g_hellos = xrealloc(g_hellos, (size_t)have * sizeof *g_hellos);
            g_hello_len = xrealloc(g_hello_len, (size_t)have * sizeof *g_hello_len);
        }
        g_hellos[g_nhellos] = xrealloc(NULL, (size_t)k);
        memcpy(g_hellos[g_nhellos], line, (size_t)k);
        g_hello_len[g_nhellos++] = (size_t)k;
    }
    free(line);
    fclose(f);
    if (!g_nhellos) die("%s: no hello in it", path);
}

static void usage(void) {
    fprintf(stderr,
            "usage: wsload --mode fanout|echo|idle|resume --port P [options]\n"
            "  --host H             server address (127.0.0.1)\n"
            "  --deflate 0|1        offer permessage-deflate (client_max_window_bits)\n"
            "  --compress-send 0|1  compress our frames when deflate is negotiated (1)\n"
            "  --receivers N        fanout: receivers (100)\n"
            "  --stalled K          fanout: receivers that never read after the handshake (0)\n"
            "  --window W           fanout: messages in flight (32)\n"
            "  --max-messages M     fanout: stop after M messages\n"
            "  --duration S         fanout/echo: seconds of sending (5)\n"
            "  --size B             message text size in bytes (64)\n"
            "  --clients K          echo: clients (1)\n"
            "  --connections N      idle: connections (1000)\n"
            "  --concurrency C      handshakes in flight while connecting (256)\n"
            "  --until-joined 0|1   idle, v1: a connection stays in flight until ready (joined), not its handshake (0)\n"
            "  --stop-at joined|welcome  idle, v1: ready at the join's joined, or at the hello's welcome (no join)\n"
            "  --hello-file F       v1: connection i says line (--hello-from + i) of F as its hello (tokens)\n"
            "  --hello-from K       v1: the first line of --hello-file used (0)\n"
            "  --id-base I          first client id (1)\n"
            "  --no-progress S      give up after S seconds without a delivery (3)\n"
            "  --deadline S         hard limit for the whole run (60)\n"
            "  --hold S             how long to hold connections after the result (120)\n"
            "  --drain S            fanout: seconds to read the stalled receivers afterwards (3)\n"
            "  --origin O           send an Origin header\n"
            "  --proto tutorial|v1  fanout/idle: the tutorial chat on /ws/{id} or asgi-chat.v1 on /chat/ws\n"
            "  --room R             v1: the room every connection joins (bench)\n"
            "  --missed M           resume: lines said while the N clients are away (100)\n"
            "  (--mode resume: --receivers N clients; always asgi-chat.v1)\n");
    exit(2);
}

int main(int argc, char **argv) {
    static struct option lo[] = {
        {"mode", 1, 0, 'm'},         {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},
        {"deflate", 1, 0, 'd'},      {"compress-send", 1, 0, 'C'}, {"receivers", 1, 0, 'r'},
        {"stalled", 1, 0, 's'},      {"window", 1, 0, 'w'},      {"max-messages", 1, 0, 'M'},
        {"duration", 1, 0, 'D'},     {"size", 1, 0, 'z'},        {"clients", 1, 0, 'c'},
        {"connections", 1, 0, 'n'},  {"concurrency", 1, 0, 'k'}, {"id-base", 1, 0, 'i'},
        {"no-progress", 1, 0, 'P'},  {"deadline", 1, 0, 'T'},    {"hold", 1, 0, 'h'},
        {"drain", 1, 0, 'R'},        {"origin", 1, 0, 'o'},      {"verbose", 0, 0, 'v'},
        {"proto", 1, 0, 'x'},        {"room", 1, 0, 'Q'},        {"missed", 1, 0, 'X'},
        {"until-joined", 1, 0, 'J'}, {"stop-at", 1, 0, 'W'},   {"hello-file", 1, 0, 'F'},
        {"hello-from", 1, 0, 'K'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': opt.mode = optarg; break;
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'd': opt.deflate = atoi(optarg); break;
        case 'C': opt.compress_send = atoi(optarg); break;
        case 'r': opt.receivers = atoi(optarg); break;
        case 's': opt.stalled = atoi(optarg); break;
        case 'w': opt.window = atoi(optarg); break;
        case 'M': opt.max_messages = atol(optarg); break;
        case 'D': opt.duration = atof(optarg); break;
        case 'z': opt.size = atoi(optarg); break;
        case 'c': opt.clients = atoi(optarg); break;
        case 'n': opt.connections = atoi(optarg); break;
        case 'k': opt.concurrency = atoi(optarg); break;
        case 'i': opt.id_base = atoi(optarg); break;
        case 'P': opt.no_progress = atof(optarg); break;
        case 'T': opt.deadline = atof(optarg); break;
        case 'h': opt.hold = atof(optarg); break;
        case 'R': opt.drain = atof(optarg); break;
        case 'o': opt.origin = optarg; break;
        case 'v': opt.verbose = 1; break;
        case 'x':
            if (!strcmp(optarg, "v1")) opt.proto = 1;
            else if (!strcmp(optarg, "tutorial")) opt.proto = 0;
            else usage();
            break;
        case 'Q': opt.room = optarg; break;
        case 'X': opt.missed = atoi(optarg); break;
        case 'J': opt.until_joined = atoi(optarg); break;
        case 'W':
            if (!strcmp(optarg, "welcome")) opt.stop_welcome = 1;
            else if (!strcmp(optarg, "joined")) opt.stop_welcome = 0;
            else usage();
            break;
        case 'F': opt.hello_file = optarg; break;
        case 'K': opt.hello_from = atoi(optarg); break;
        default: usage();
        }
    }
    if (strcmp(opt.mode, "fanout") && strcmp(opt.mode, "echo") && strcmp(opt.mode, "idle") &&
        strcmp(opt.mode, "resume"))
        usage();
    if (!strcmp(opt.mode, "resume")) opt.proto = 1;
    if (opt.proto && (opt.stalled || strlen(opt.room) > 64 || opt.missed < 1)) usage();
    if (opt.window < 1 || opt.size < 1 || opt.size > (int)sizeof g_msg - 64 || opt.concurrency < 1) usage();
    if (opt.stop_welcome && (!opt.proto || strcmp(opt.mode, "idle"))) usage();
    if ((opt.hello_file && !opt.proto) || opt.hello_from < 0) usage();
    if (opt.hello_file) load_hellos(opt.hello_file);
    signal(SIGPIPE, SIG_IGN);
    g_rng ^= mono_ns() ^ ((uint64_t)getpid() << 32);

    /* Text-like filler: lowercase words and spaces, so deflate has realistic work. */
    for (size_t i = 0; i < sizeof g_filler;) {
        size_t wl = 2 + rnd() % 8;
        for (size_t j = 0; j < wl && i < sizeof g_filler; j++) g_filler[i++] = (char)('a' + rnd() % 26);
        if (i < sizeof g_filler) g_filler[i++] = ' ';
    }

    memset(&g_addr, 0, sizeof g_addr);
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &g_addr.sin_addr) != 1) die("bad host %s (IPv4 address expected)", opt.host);

    if (!strcmp(opt.mode, "fanout")) {
        if (opt.stalled < 0 || opt.stalled >= opt.receivers) usage();
        g_nconns = opt.receivers + 1;
        g_connect_target = opt.receivers; /* the sender connects once all receivers are open */
        g_healthy_total = g_healthy_open = opt.receivers - opt.stalled;
        g_ringsz = opt.window * 2;
        g_ring = calloc((size_t)g_ringsz, sizeof *g_ring);
    } else if (!strcmp(opt.mode, "resume")) {
        g_nconns = 2 * opt.receivers + 1; /* N that leave, the sender, N that come back */
        g_connect_target = opt.receivers;
    } else if (!strcmp(opt.mode, "echo")) {
        g_nconns = g_connect_target = opt.clients;
    } else {
        g_nconns = g_connect_target = opt.connections;
    }
    g_conns = calloc((size_t)g_nconns, sizeof *g_conns);
    for (int i = 0; i < g_nconns; i++) {
        conn *c = &g_conns[i];
        c->idx = i;
        c->id = opt.id_base + i;
        c->fd = -1;
        c->close_code = -1;
        if (!strcmp(opt.mode, "resume")) {
            c->role = i < opt.receivers ? R_GONE : i == opt.receivers ? R_SEND : R_BACK;
            if (c->role == R_BACK) c->id = opt.id_base + (i - opt.receivers - 1); /* the same user again */
        } else if (!strcmp(opt.mode, "fanout"))
            c->role = i == opt.receivers ? R_SEND : i < opt.stalled ? R_STALL : R_RECV;
        else c->role = !strcmp(opt.mode, "echo") ? R_ECHO : R_IDLE;
    }
    if (!strcmp(opt.mode, "fanout") || !strcmp(opt.mode, "resume")) g_sender = &g_conns[opt.receivers];

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0) die("epoll_create1: %s", strerror(errno));
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_t0 = g_now = mono_ns();
    g_deadline_ns = g_t0 + (uint64_t)(opt.deadline * 1e9);
    g_cpu_start = cpu_seconds();
    if (!strcmp(opt.mode, "idle")) emit("{\"event\":\"start\"}");

    struct epoll_event evs[1024];
    while (g_phase != P_EXIT) {
        tick();
        if (g_phase == P_EXIT) break;
        int n = epoll_wait(g_ep, evs, 1024, next_timeout_ms());
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        g_now = mono_ns();
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            if (!c) {
                on_stdin();
                continue;
            }
            if (c->st == S_DONE) continue;
            if (c->st == S_CONNECTING) {
                on_connected(c);
                continue;
            }
            if (ev & EPOLLOUT) flush(c);
            if (c->st == S_DONE) continue;
            if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                bool reading = c->events & EPOLLIN;
                if (!reading) { /* a stalled receiver: only errors and hang-ups are reported */
                    if (ev & (EPOLLERR | EPOLLHUP)) conn_fail(c, (ev & EPOLLERR) != 0);
                    continue;
                }
                on_readable(c);
            }
        }
    }
    return 0;
}
