/*
 * tlsload: a load generator for chat's native line protocol, plain or TLS, by one code path.
 *
 *   gcc -O2 -Wall -o tlsload benchmarks/tlsload.c -lssl -lcrypto
 *   tlsload --port P [--tls 1 [--ca FILE]] --clients 100 --msgs 100 --window 32          (burst)
 *   tlsload --port P [--tls 1] --clients 100 --mode paced --rate 500 --duration 30      (latency)
 *
 * Why our own: the shared loadgen (../shared/bench/loadgen.c) has no TLS, and relaying it through socat measures
 * the relay. This tool follows its ideas and its summary line, so figures compare, but encrypts itself: one
 * process, one epoll loop, non-blocking sockets with TCP_NODELAY, SSL_connect driven by WANT_READ/WANT_WRITE.
 * With --tls 0 every byte takes the same path minus OpenSSL, so plain and TLS are measured by one tool.
 *
 * Run: connect N clients (at most --conn-concurrency at a time), each sends "/nick {nick}\n/join {room}\n" and waits
 * for a line containing --joined-marker; barrier (all joined, plus --settle-ms); then senders send tokens
 * "BENCH:<sender>:<seq>:<send_ns>" (CLOCK_MONOTONIC, this process):
 *   burst: each sender keeps at most --window messages not yet seen by its observer (the first other member of its
 *          room); closed loop.
 *   paced: message k (round-robin over senders) is due at start + k/R; a timerfd wakes the loop at each due time.
 * Every received line is scanned for tokens: from the receiver itself = echo; from another room = misrouted; a
 * repeat = dup (one bit per receiver x sender x seq); older than one already seen from that sender = reordered.
 * Latency (receive - send) of every delivery goes into a log-linear histogram (128 sub-buckets per power of two:
 * under 0.8% error), so millions of deliveries cost a few KiB.
 *
 * Bounded: --timeout (hard, from start) and --idle-timeout (no progress); destinations outside 127.0.0.0/8 are
 * refused. Certificates: with --ca the server's certificate is verified against it (and against the IP address);
 * without, verification is skipped (a benchmark against our own throwaway certificate; the handshake's cost is the
 * same either way, only the check of the chain differs).
 *
 * Output: one line on stdout, key=value pairs like loadgen's. Exit: 0 ok, 1 lost/disconnects, 2 timeout,
 * 3 setup failed, 4 usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define INBUF 65536
#define OUT_HIGHWATER 65536
#define TIMER_TAG UINT64_MAX

enum state { IDLE, CONNECTING, HANDSHAKE, JOINING, JOINED, CLOSED };

typedef struct {
    int fd;
    SSL *ssl;
    enum state st;
    int want_out;               /* EPOLLOUT currently in the interest set */
    int ssl_write_wants_read;   /* an SSL_write stopped on WANT_READ: retry it when readable */
    int ssl_read_wants_write;   /* an SSL_read stopped on WANT_WRITE: retry it when writable */
    char *in;
    size_t inlen;
    char *out;
    size_t outlen, outoff;
    int room;
    int sent, acked, target;    /* as a sender */
    int64_t t_connect, t_joined;
    char last_line[160];
} client_t;

/* ---- options ---- */
static const char *o_host = "127.0.0.1", *o_ca = NULL, *o_marker = "You joined #bench", *o_label = "";
static const char *o_nick = "lg", *o_roomp = "bench", *o_mode = "burst";
static int o_port = 0, o_tls = 0, o_clients = 100, o_rooms = 1, o_senders = -1, o_msgs = 100, o_window = 32;
static int o_conc = 100, o_settle_ms = 200, o_verbose = 0, o_srvpid = 0;
static double o_rate = 0, o_duration = 0, o_timeout = 60, o_idle = 10;

/* ---- state ---- */
static client_t *cl;
static int ep, timer_fd = -1, paced;
static SSL_CTX *ctx;
static int64_t t0, t_setup_done, t_work, t_last_progress, t_last_delivery;
static long long deliveries, echoes, dups, reordered, misrouted, garbage, disconnects, connect_failed, msgs_sent;
static long long expected;
static int joined, in_setup, senders;
static int64_t next_k, total_k;
static uint8_t *seen;                /* bits: receiver x sender x seq */
static int *last_seq;                /* receiver x sender */
static long srv_ticks_0, srv_ticks_work;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tlsload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(4);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- log-linear histogram of nanoseconds ---- */
#define SUB 128
#define HALF 64
#define NBUCKETS (SUB + 58 * HALF)
typedef struct {
    uint64_t b[NBUCKETS];
    uint64_t n, max;
    double sum;
} hist_t;
static hist_t lat, lag, joinh;

static int bucket_of(uint64_t v) {
    if (v < SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6;
    return SUB + (shift - 1) * HALF + (int)((v >> shift) - HALF);
}

static double bucket_mid(int i) {
    if (i < SUB) return i;
    int shift = (i - SUB) / HALF + 1;
    uint64_t mant = (uint64_t)((i - SUB) % HALF + HALF);
    return ((double)(mant << shift) + (double)(((mant + 1) << shift) - 1)) / 2.0;
}

static void hist_add(hist_t *h, int64_t v) {
    if (v < 0) v = 0;
    h->b[bucket_of((uint64_t)v)]++;
    h->n++;
    h->sum += (double)v;
    if ((uint64_t)v > h->max) h->max = (uint64_t)v;
}

static double hist_pct_ms(const hist_t *h, double p) {
    if (h->n == 0) return 0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->n), acc = 0;
    if (rank < 1) rank = 1;
    for (int i = 0; i < NBUCKETS; i++) {
        acc += h->b[i];
        if (acc >= rank) {
            double v = bucket_mid(i);
            return (v > (double)h->max ? (double)h->max : v) / 1e6;
        }
    }
    return (double)h->max / 1e6;
}

/* ---- rooms and observers ---- */
static int room_size(int r) { return o_clients / o_rooms + (r < o_clients % o_rooms ? 1 : 0); }

static int observer_of(int s) {
    int r = s % o_rooms;
    if (s != r) return r;
    return r + o_rooms < o_clients ? r + o_rooms : -1;
}

/* ---- epoll interest ---- */
static void set_interest(int i, int out) {
    client_t *c = &cl[i];
    if (c->want_out == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u64 = (uint64_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->want_out = out;
}

static void close_client(int i, const char *why) {
    client_t *c = &cl[i];
    if (c->st == CLOSED) return;
    if (c->st == JOINED && !in_setup) disconnects++;
    else connect_failed++;
    if (disconnects + connect_failed <= 5)
        fprintf(stderr, "tlsload: client %d closed (%s); last line: %.150s\n", i, why, c->last_line);
    if (c->ssl) SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->st = CLOSED;
}

/* ---- I/O: the one place where plain and TLS differ ---- */
static int io_write(client_t *c, const char *buf, size_t len, size_t *done) {
    /* returns 0 ok/would block, -1 dead */
    *done = 0;
    if (c->ssl) {
        c->ssl_write_wants_read = 0;
        int n = SSL_write(c->ssl, buf, (int)len);
        if (n > 0) { *done = (size_t)n; return 0; }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE) return 0;
        if (e == SSL_ERROR_WANT_READ) { c->ssl_write_wants_read = 1; return 0; }
        return -1;
    }
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) { *done = (size_t)n; return 0; }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

static int io_read(client_t *c, char *buf, size_t len, int *wants_write) {
    /* returns >0 bytes, 0 would block, -1 closed/dead */
    *wants_write = 0;
    if (c->ssl) {
        int n = SSL_read(c->ssl, buf, (int)len);
        if (n > 0) return n;
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ) return 0;
        if (e == SSL_ERROR_WANT_WRITE) { *wants_write = 1; return 0; }
        return -1;
    }
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0) return (int)n;
    if (n == 0) return -1;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

static void flush(int i) {
    client_t *c = &cl[i];
    while (c->st != CLOSED && c->outoff < c->outlen) {
        size_t done;
        if (io_write(c, c->out + c->outoff, c->outlen - c->outoff, &done) < 0) { close_client(i, "write failed"); return; }
        if (done == 0) break;
        c->outoff += done;
    }
    if (c->st == CLOSED) return;
    if (c->outoff == c->outlen) c->outoff = c->outlen = 0;
    set_interest(i, (c->outlen > c->outoff && !c->ssl_write_wants_read) || c->ssl_read_wants_write);
}

static void queue(int i, const char *s, size_t n) {
    client_t *c = &cl[i];
    if (c->outoff > 0 && c->outlen + n > OUT_HIGHWATER * 2) {
        /* SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets a retried SSL_write start from the moved bytes */
        memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
        c->outlen -= c->outoff;
        c->outoff = 0;
    }
    if (c->outlen + n > OUT_HIGHWATER * 4) die("output buffer overflow (client %d)", i);
    memcpy(c->out + c->outlen, s, n);
    c->outlen += n;
}

/* ---- sending ---- */
static void send_one(int s, int64_t due) {
    client_t *c = &cl[s];
    char line[96];
    int64_t t = now_ns();
    int n = snprintf(line, sizeof line, "BENCH:%d:%d:%lld\n", s, c->sent, (long long)t);
    queue(s, line, (size_t)n);
    c->sent++;
    msgs_sent++;
    if (due) hist_add(&lag, t - due);
    if (observer_of(s) < 0) c->acked++; /* alone in its room: nothing to wait for */
}

static void pump_burst(int s) {
    client_t *c = &cl[s];
    if (c->st != JOINED) return;
    int any = 0;
    while (c->sent < c->target && c->sent - c->acked < o_window && c->outlen - c->outoff < OUT_HIGHWATER) {
        send_one(s, 0);
        any = 1;
    }
    if (any) flush(s);
}

static int64_t due_of(int64_t k) { return t_work + (int64_t)((double)k * 1e9 / o_rate); }

static void arm_timer(void) {
    if (next_k >= total_k) return;
    int64_t d = due_of(next_k);
    struct itimerspec its = {.it_value = {.tv_sec = d / 1000000000LL, .tv_nsec = d % 1000000000LL}};
    timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void pump_paced(void) {
    int64_t t = now_ns();
    while (next_k < total_k && due_of(next_k) <= t) {
        int s = (int)(next_k % senders);
        if (cl[s].st == JOINED) {
            send_one(s, due_of(next_k));
            flush(s);
        }
        next_k++;
    }
    arm_timer();
}

/* ---- receiving ---- */
static long long parse_num(const char **p) {
    long long v = 0;
    if (**p < '0' || **p > '9') return -1;
    while (**p >= '0' && **p <= '9') v = v * 10 + (*(*p)++ - '0');
    return v;
}

static void on_token(int r, const char *p, int64_t t) {
    long long s = parse_num(&p);
    if (s < 0 || *p++ != ':') { garbage++; return; }
    long long seq = parse_num(&p);
    if (seq < 0 || *p++ != ':') { garbage++; return; }
    long long ts = parse_num(&p);
    if (ts < 0 || s >= senders || seq >= o_msgs) { garbage++; return; }
    if (s == r) { echoes++; return; }
    if (s % o_rooms != r % o_rooms) { misrouted++; return; }
    if (seen) {
        uint64_t bit = ((uint64_t)r * (uint64_t)senders + (uint64_t)s) * (uint64_t)o_msgs + (uint64_t)seq;
        if (seen[bit >> 3] & (1u << (bit & 7))) { dups++; return; }
        seen[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    }
    int *ls = &last_seq[(size_t)r * (size_t)senders + (size_t)s];
    if (seq < *ls) reordered++;
    else *ls = (int)seq;
    deliveries++;
    hist_add(&lat, t - ts);
    t_last_delivery = t_last_progress = t;
    if (!paced && observer_of((int)s) == r) {
        cl[s].acked++;
        pump_burst((int)s);
    }
}

static void on_line(int i, char *line, size_t len, int64_t t) {
    client_t *c = &cl[i];
    line[len] = 0;
    if (o_verbose > 1) fprintf(stderr, "[%d] %s\n", i, line);
    size_t keep = len < sizeof c->last_line - 1 ? len : sizeof c->last_line - 1;
    memcpy(c->last_line, line, keep);
    c->last_line[keep] = 0;
    if (c->st == JOINING) {
        if (strstr(line, o_marker)) {
            c->st = JOINED;
            c->t_joined = t;
            hist_add(&joinh, t - c->t_connect);
            joined++;
            t_last_progress = t;
        }
        return;
    }
    for (char *p = line; (p = strstr(p, "BENCH:")) != NULL; p += 6) on_token(i, p + 6, t);
}

static void on_readable(int i) {
    client_t *c = &cl[i];
    for (;;) {
        if (c->st == CLOSED) return;
        if (c->inlen >= INBUF - 1) { garbage++; c->inlen = 0; } /* a line longer than the buffer: drop it */
        int ww;
        int n = io_read(c, c->in + c->inlen, INBUF - 1 - c->inlen, &ww);
        if (n < 0) { close_client(i, "closed by peer"); return; }
        c->ssl_read_wants_write = ww;
        if (n == 0) {
            if (ww) set_interest(i, 1);
            break;
        }
        int64_t t = now_ns();
        c->inlen += (size_t)n;
        char *start = c->in, *end = c->in + c->inlen, *nl;
        while ((nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
            size_t len = (size_t)(nl - start);
            if (len && start[len - 1] == '\r') len--;
            on_line(i, start, len, t);
            start = nl + 1;
        }
        c->inlen = (size_t)(end - start);
        memmove(c->in, start, c->inlen);
    }
    if (c->ssl_write_wants_read) flush(i);
}

/* ---- setup ---- */
static struct sockaddr_in dest;
static int next_to_connect, in_flight;

static void start_handshake_done(int i) {
    client_t *c = &cl[i];
    char buf[512];
    int n = snprintf(buf, sizeof buf, "/nick %s%d\n/join %s%d\n", o_nick, i, o_roomp, c->room);
    c->st = JOINING;
    queue(i, buf, (size_t)n);
    flush(i);
}

static void drive_handshake(int i) {
    client_t *c = &cl[i];
    int r = SSL_connect(c->ssl);
    if (r == 1) { start_handshake_done(i); return; }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) set_interest(i, 0);
    else if (e == SSL_ERROR_WANT_WRITE) set_interest(i, 1);
    else {
        char err[120];
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        snprintf(c->last_line, sizeof c->last_line, "handshake: %s", err);
        close_client(i, "TLS handshake failed");
    }
}

static void on_connected(int i) {
    client_t *c = &cl[i];
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) { snprintf(c->last_line, sizeof c->last_line, "connect: %s", strerror(err)); close_client(i, "connect failed"); return; }
    if (o_tls) {
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (o_ca) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), o_host);
        }
        c->st = HANDSHAKE;
        drive_handshake(i);
    } else {
        start_handshake_done(i);
    }
}

static void connect_more(void) {
    while (next_to_connect < o_clients && in_flight < o_conc) {
        int i = next_to_connect++;
        client_t *c = &cl[i];
        c->room = i % o_rooms;
        c->in = malloc(INBUF);
        c->out = malloc(OUT_HIGHWATER * 4);
        if (!c->in || !c->out) die("out of memory");
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) die("socket: %s", strerror(errno));
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->t_connect = now_ns();
        c->st = CONNECTING;
        c->want_out = 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        in_flight++;
        if (connect(c->fd, (struct sockaddr *)&dest, sizeof dest) < 0 && errno != EINPROGRESS) {
            snprintf(c->last_line, sizeof c->last_line, "connect: %s", strerror(errno));
            close_client(i, "connect failed");
        }
    }
}

static void on_event(int i, uint32_t evs) {
    client_t *c = &cl[i];
    if (c->st == CONNECTING) {
        if (evs & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(i);
        return;
    }
    if (c->st == HANDSHAKE) { drive_handshake(i); return; }
    if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(i);
    if (c->st != CLOSED && (evs & EPOLLOUT)) {
        if (c->ssl_read_wants_write) on_readable(i);
        flush(i);
        if (!paced && !in_setup) pump_burst(i);
    }
}

/* ---- /proc ---- */
static long proc_ticks(int pid) {
    if (!pid) return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long ut = 0, st = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return 0;
    return (long)(ut + st);
}

static double own_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void usage(void) {
    fputs("usage: tlsload --port P [--host 127.x.y.z] [--tls 0|1] [--ca FILE] [--clients N] [--rooms R]\n"
          "  [--senders S] [--msgs M] [--window W] [--mode burst|paced] [--rate R] [--duration D]\n"
          "  [--conn-concurrency C] [--joined-marker TEXT] [--nick-prefix P] [--room-prefix P] [--settle-ms MS]\n"
          "  [--timeout S] [--idle-timeout S] [--server-pid PID] [--label L] [-v]\n", stderr);
    exit(4);
}

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"tls", 1, 0, 'T'}, {"ca", 1, 0, 'A'},
        {"clients", 1, 0, 'c'}, {"rooms", 1, 0, 'r'}, {"senders", 1, 0, 's'}, {"msgs", 1, 0, 'm'},
        {"window", 1, 0, 'w'}, {"mode", 1, 0, 'M'}, {"rate", 1, 0, 'R'}, {"duration", 1, 0, 'D'},
        {"conn-concurrency", 1, 0, 'C'}, {"joined-marker", 1, 0, 'J'}, {"nick-prefix", 1, 0, 'N'},
        {"room-prefix", 1, 0, 'P'}, {"settle-ms", 1, 0, 'S'}, {"timeout", 1, 0, 't'}, {"idle-timeout", 1, 0, 'i'},
        {"server-pid", 1, 0, 'X'}, {"label", 1, 0, 'L'}, {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (ch) {
        case 'H': o_host = optarg; break;
        case 'p': o_port = atoi(optarg); break;
        case 'T': o_tls = atoi(optarg); break;
        case 'A': o_ca = optarg; break;
        case 'c': o_clients = atoi(optarg); break;
        case 'r': o_rooms = atoi(optarg); break;
        case 's': o_senders = atoi(optarg); break;
        case 'm': o_msgs = atoi(optarg); break;
        case 'w': o_window = atoi(optarg); break;
        case 'M': o_mode = optarg; break;
        case 'R': o_rate = atof(optarg); break;
        case 'D': o_duration = atof(optarg); break;
        case 'C': o_conc = atoi(optarg); break;
        case 'J': o_marker = optarg; break;
        case 'N': o_nick = optarg; break;
        case 'P': o_roomp = optarg; break;
        case 'S': o_settle_ms = atoi(optarg); break;
        case 't': o_timeout = atof(optarg); break;
        case 'i': o_idle = atof(optarg); break;
        case 'X': o_srvpid = atoi(optarg); break;
        case 'L': o_label = optarg; break;
        case 'v': o_verbose++; break;
        default: usage();
        }
    }
    if (o_port <= 0 || o_port > 65535 || o_clients < 1 || o_rooms < 1 || o_rooms > o_clients || o_window < 1 ||
        o_conc < 1 || o_msgs < 0)
        usage();
    paced = strcmp(o_mode, "paced") == 0;
    if (!paced && strcmp(o_mode, "burst") != 0) usage();
    senders = o_senders < 0 || o_senders > o_clients ? o_clients : o_senders;
    if (paced) {
        if (o_rate <= 0) die("--mode paced needs --rate > 0");
        if (o_duration > 0) o_msgs = (int)ceil(o_rate * o_duration / senders);
    }
    memset(&dest, 0, sizeof dest);
    dest.sin_family = AF_INET;
    dest.sin_port = htons((uint16_t)o_port);
    if (inet_pton(AF_INET, o_host, &dest.sin_addr) != 1) die("--host must be a numeric IPv4 address");
    if ((ntohl(dest.sin_addr.s_addr) >> 24) != 127) die("refusing non-loopback address %s", o_host);

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (o_tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) die("SSL_CTX_new failed");
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (o_ca) {
            if (SSL_CTX_load_verify_locations(ctx, o_ca, NULL) != 1) die("cannot load CA file %s", o_ca);
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        }
    }

    cl = calloc((size_t)o_clients, sizeof *cl);
    last_seq = calloc((size_t)o_clients * (size_t)senders, sizeof *last_seq);
    if (!cl || !last_seq) die("out of memory");
    uint64_t bits = (uint64_t)o_clients * (uint64_t)senders * (uint64_t)(o_msgs ? o_msgs : 1);
    if (bits / 8 <= 256ULL << 20) seen = calloc((size_t)(bits / 8 + 1), 1);
    for (int s = 0; s < senders; s++) {
        cl[s].target = o_msgs;
        expected += (long long)o_msgs * (room_size(s % o_rooms) - 1);
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
    epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &tev);

    t0 = t_last_progress = now_ns();
    srv_ticks_0 = proc_ticks(o_srvpid);
    in_setup = 1;
    const char *status = NULL;
    int rc = 0;
    int64_t settle_until = 0;
    double cpu_work0 = 0;
    struct epoll_event evs[256];
    connect_more();
    for (;;) {
        int64_t t = now_ns();
        if (t - t0 > (int64_t)(o_timeout * 1e9)) { status = in_setup ? "setup_failed" : "timeout"; rc = in_setup ? 3 : 2; break; }
        if (t - t_last_progress > (int64_t)(o_idle * 1e9)) { status = in_setup ? "setup_failed" : "timeout"; rc = in_setup ? 3 : 2; break; }
        if (in_setup) {
            if (connect_failed) { status = "setup_failed"; rc = 3; break; }
            in_flight = 0;
            for (int i = 0; i < next_to_connect; i++) in_flight += cl[i].st != JOINED;
            connect_more();
            if (joined == o_clients) {
                if (!settle_until) { t_setup_done = t; settle_until = t + (int64_t)o_settle_ms * 1000000LL; }
                if (t >= settle_until) {
                    in_setup = 0;
                    t_work = t_last_progress = now_ns();
                    srv_ticks_work = proc_ticks(o_srvpid);
                    cpu_work0 = own_cpu_s();
                    if (paced) { total_k = (int64_t)o_msgs * senders; pump_paced(); }
                    else for (int s = 0; s < senders; s++) pump_burst(s);
                }
            }
        }
        if (!in_setup) {
            if (deliveries >= expected && (paced ? next_k >= total_k : 1)) { status = "ok"; break; }
            if (disconnects) { status = "disconnects"; rc = 1; break; }
        }
        int wait_ms = in_setup && settle_until ? 10 : 100;
        int n = epoll_wait(ep, evs, 256, wait_ms);
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u64 == TIMER_TAG) {
                uint64_t x;
                if (read(timer_fd, &x, sizeof x) < 0) { /* spurious: the loop re-checks */ }
                if (!in_setup && paced) pump_paced();
                continue;
            }
            on_event((int)evs[k].data.u64, evs[k].events);
        }
    }
    int64_t t_end = now_ns();
    double lg_cpu = in_setup ? 0 : own_cpu_s() - cpu_work0;
    long srv_end = proc_ticks(o_srvpid);
    if (status && strcmp(status, "ok") == 0 && (long long)deliveries < expected) { status = "lost"; rc = 1; }
    if (!in_setup && status && strcmp(status, "timeout") == 0 && deliveries < expected && !disconnects) {
        status = "lost"; rc = 1; /* stopped by the idle timeout: some deliveries never came */
        if (t_end - t0 > (int64_t)(o_timeout * 1e9)) { status = "timeout"; rc = 2; }
    }
    double elapsed = in_setup ? 0 : (double)((t_last_delivery > t_work ? t_last_delivery : t_end) - t_work) / 1e9;
    double tck = (double)sysconf(_SC_CLK_TCK);
    const char *ver = "-", *cipher = "-";
    for (int i = 0; i < o_clients; i++)
        if (cl[i].ssl) { ver = SSL_get_version(cl[i].ssl); cipher = SSL_get_cipher_name(cl[i].ssl); break; }
    printf("tool=tlsload proto=line tls=%d tls_version=%s cipher=%s verify=%d mode=%s clients=%d rooms=%d senders=%d "
           "msgs_per_sender=%d window=%d rate=%g msgs_sent=%lld deliveries=%lld expected_deliveries=%lld lost=%lld "
           "elapsed_s=%.3f deliveries_per_s=%.0f msgs_per_s=%.0f lat_p50_ms=%.3f lat_p90_ms=%.3f lat_p99_ms=%.3f "
           "lat_p999_ms=%.3f lat_max_ms=%.3f lat_mean_ms=%.3f send_lag_p99_ms=%.3f send_lag_max_ms=%.3f echoes=%lld "
           "dups=%lld reordered=%lld misrouted=%lld garbage=%lld disconnects=%lld setup_s=%.3f joined=%d "
           "join_p50_ms=%.2f join_p99_ms=%.2f connect_failed=%lld lg_cpu_s=%.2f lg_cpu_pct=%.0f "
           "srv_cpu_setup_s=%.2f srv_cpu_run_s=%.2f srv_cpu_pct=%.0f dup_tracking=%d label=%s status=%s\n",
           o_tls, ver, cipher, o_ca != NULL, paced ? "paced" : "burst", o_clients, o_rooms, senders, o_msgs,
           paced ? 0 : o_window, o_rate, msgs_sent, deliveries, expected,
           expected - deliveries > 0 ? expected - deliveries : 0, elapsed,
           elapsed > 0 ? deliveries / elapsed : 0, elapsed > 0 ? msgs_sent / elapsed : 0, hist_pct_ms(&lat, 50),
           hist_pct_ms(&lat, 90), hist_pct_ms(&lat, 99), hist_pct_ms(&lat, 99.9), (double)lat.max / 1e6,
           lat.n ? lat.sum / (double)lat.n / 1e6 : 0, hist_pct_ms(&lag, 99), (double)lag.max / 1e6, echoes, dups,
           reordered, misrouted, garbage, disconnects, (double)((t_setup_done ? t_setup_done : t_end) - t0) / 1e9,
           joined, hist_pct_ms(&joinh, 50), hist_pct_ms(&joinh, 99), connect_failed, lg_cpu,
           elapsed > 0 ? 100 * lg_cpu / elapsed : 0, o_srvpid && !in_setup ? (srv_ticks_work - srv_ticks_0) / tck : 0,
           o_srvpid && !in_setup ? (srv_end - srv_ticks_work) / tck : 0,
           o_srvpid && elapsed > 0 && !in_setup ? 100 * (srv_end - srv_ticks_work) / tck / elapsed : 0,
           seen != NULL, *o_label ? o_label : "-", status ? status : "error");
    fflush(stdout);
    return rc;
}
