/*
 * A load generator in C for the line servers of asyncnet's benchmark: one thread,
 * epoll, nonblocking sockets, no allocation per request.  It exists so that the
 * generator is not what limits the fastest servers (the Python one, on uvloop,
 * saturates its core near 200k requests/s).
 *
 *   loadgen tcp --port P --connections 100 --duration 3
 *   loadgen pipelined --port P --connections 10 --inflight 32 --size 1024 --duration 3
 *
 * tcp: every connection sends one SIZE-byte line ('x' * (SIZE-1) + '\n') and waits
 * for its SIZE-byte reply (the upper service answers a line with a line of the same
 * length) before sending the next.  pipelined: every connection keeps INFLIGHT lines
 * in flight, sending one more (batched: one write per read) for every reply.
 *
 * The command line and the JSON printed on stdout are those of
 * benchmarks/loadgen.py (python -m benchmarks.loadgen), plus "generator": "c",
 * the totals over the whole run ("sent", "replies", "bytes_sent",
 * "bytes_received") and "outstanding": after the measured window no new line is
 * sent, the replies still in flight are awaited (at most --drain seconds), and
 * only then are the connections closed, so that sent == replies when the server
 * answered everything.
 *
 * Loopback only (127.0.0.1, ::1, localhost); bounded by --duration and
 * --max-requests; the connect phase by --connect-timeout.  Linux only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_BUF (256 * 1024)
#define CONNECT_CONCURRENCY 100

/* -- latency histogram: 64 sub-buckets per power of two (error < 1.6 %) ------- */

#define SUB_BITS 6
#define SUB (1 << SUB_BITS)
#define HIST_SIZE (64 * SUB)

static uint64_t hist[HIST_SIZE];
static uint64_t hist_count, hist_max;

static int bucket_of(uint64_t v) {
    if (v < SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - SUB_BITS;
    return (shift + 1) * SUB + (int)((v >> shift) - SUB);
}

static uint64_t bucket_value(int b) { /* the upper edge of a bucket */
    if (b < SUB) return (uint64_t)b;
    int shift = b / SUB - 1;
    uint64_t base = (uint64_t)(b % SUB + SUB);
    return ((base + 1) << shift) - 1;
}

static void record(uint64_t ns) {
    int b = bucket_of(ns);
    if (b >= HIST_SIZE) b = HIST_SIZE - 1;
    hist[b]++;
    hist_count++;
    if (ns > hist_max) hist_max = ns;
}

static double percentile_us(double fraction) { /* nearest rank, as pingpong.percentile */
    if (!hist_count) return 0.0;
    uint64_t rank = (uint64_t)ceil(fraction * (double)hist_count);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (int b = 0; b < HIST_SIZE; b++) {
        seen += hist[b];
        if (seen >= rank) {
            uint64_t v = bucket_value(b);
            return (double)(v < hist_max ? v : hist_max) / 1000.0;
        }
    }
    return (double)hist_max / 1000.0;
}

/* -- clocks and /proc (as benchmarks/procstat.py) ------------------------------ */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_self(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fields after the command name of /proc/PID/stat: out[0] = state, [1] = ppid,
 * [11..14] = utime stime cutime cstime. */
static int stat_fields(int pid, long long out[15]) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p += 2;
    for (int i = 0; i < 15; i++) {
        while (*p == ' ') p++;
        if (!*p) return -1;
        out[i] = i == 0 ? 0 : strtoll(p, NULL, 10);
        while (*p && *p != ' ') p++;
    }
    return 0;
}

/* CPU seconds of pid, its reaped children and its live descendants. */
static double cpu_tree(int root) {
    if (root <= 0) return 0.0;
    static int pids[65536], ppids[65536];
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0.0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 65536) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        long long f[15];
        int pid = atoi(e->d_name);
        if (stat_fields(pid, f) == 0) {
            pids[n] = pid;
            ppids[n] = (int)f[1];
            n++;
        }
    }
    closedir(d);
    static int todo[65536];
    int ntodo = 0;
    long long ticks = 0;
    todo[ntodo++] = root;
    int visited = 0;
    while (ntodo && visited < 65536) {
        int pid = todo[--ntodo];
        visited++;
        long long f[15];
        if (stat_fields(pid, f) == 0) ticks += f[11] + f[12] + f[13] + f[14];
        for (int i = 0; i < n && ntodo < 65536; i++)
            if (ppids[i] == pid) todo[ntodo++] = pids[i];
    }
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static double machine_busy(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0.0;
    unsigned long long v[8] = {0};
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                     &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (got < 5) return 0.0;
    unsigned long long busy = 0;
    for (int i = 0; i < 8; i++)
        if (i != 3 && i != 4) busy += v[i];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

typedef struct {
    double wall, gen, server, machine;
} window_t;

static window_t window_now(int server_pid) {
    window_t w;
    w.wall = (double)now_ns() / 1e9;
    w.gen = cpu_self();
    w.server = cpu_tree(server_pid);
    w.machine = machine_busy();
    return w;
}

/* -- connections --------------------------------------------------------------- */

typedef struct {
    int fd;
    int state;            /* 0 unused, 1 connecting, 2 open, 3 closed */
    uint64_t *sent_at;    /* ring of send times, depth entries */
    int head, inflight;   /* oldest request in the ring; requests awaiting replies */
    size_t partial;       /* bytes of the current reply received so far */
    size_t checked;       /* bytes of the first reply compared with the expected one */
    size_t out_pending;   /* bytes still to write (a short write) */
    uint64_t served;      /* replies counted in the measured window */
} conn_t;

static struct {
    int tcp_mode, depth, conns, server_pid;
    size_t size;
    double duration, warmup, connect_timeout, drain;
    long long max_requests;
    const char *host;
    int port;
} opt;

static conn_t *conns;
static char *line, *expect, *outbuf;
static int epfd;
static int running, measuring, open_count;
static long long count, errors_, lost, sent_total, replies_total;
static long long bytes_sent, bytes_received;

static void close_conn(conn_t *c, int by_peer) {
    if (c->state == 3 || c->state == 0) return;
    if (by_peer && running) lost++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = 3;
    open_count--;
}

/* Queue n more lines on c (timestamps now) and write what the socket takes. */
static void send_lines(conn_t *c, int n, uint64_t now) {
    for (int i = 0; i < n; i++) {
        c->sent_at[(c->head + c->inflight) % opt.depth] = now;
        c->inflight++;
    }
    c->out_pending += (size_t)n * opt.size;
    sent_total += n;
}

static int flush_out(conn_t *c) {
    while (c->out_pending) {
        /* Every line is identical: the pending bytes start at the same offset in a
         * line as they do in outbuf, which holds depth lines back to back. */
        size_t start = (opt.size - c->out_pending % opt.size) % opt.size;
        size_t chunk = (size_t)opt.depth * opt.size - start;
        if (chunk > c->out_pending) chunk = c->out_pending;
        ssize_t w = write(c->fd, outbuf + start, chunk);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            errors_++;
            return -1;
        }
        bytes_sent += w;
        c->out_pending -= (size_t)w;
    }
    return 0;
}

static void on_readable(conn_t *c, char *buf) {
    for (;;) {
        ssize_t r = read(c->fd, buf, READ_BUF);
        if (r < 0) {
            if (errno == EAGAIN) return;
            if (errno == EINTR) continue;
            errors_++;
            close_conn(c, 1);
            return;
        }
        if (r == 0) {
            close_conn(c, 1);
            return;
        }
        bytes_received += r;
        uint64_t now = now_ns();
        size_t avail = (size_t)r, pos = 0;
        int done = 0;
        while (avail) {
            size_t need = opt.size - c->partial;
            size_t take = avail < need ? avail : need;
            if (c->checked < opt.size) { /* only the first reply is compared */
                if (memcmp(buf + pos, expect + c->partial, take) != 0) {
                    errors_++;
                    close_conn(c, 0);
                    return;
                }
                c->checked += take;
            }
            c->partial += take;
            pos += take;
            avail -= take;
            if (c->partial < opt.size) break;
            c->partial = 0;
            if (c->inflight == 0) { /* a reply nobody asked for */
                errors_++;
                close_conn(c, 0);
                return;
            }
            uint64_t t0 = c->sent_at[c->head];
            c->head = (c->head + 1) % opt.depth;
            c->inflight--;
            replies_total++;
            done++;
            if (measuring) {
                record(now - t0);
                c->served++;
                count++;
                if (count >= opt.max_requests) running = 0;
            }
        }
        if (done && running) {
            send_lines(c, done, now);
            if (flush_out(c) < 0) {
                close_conn(c, 0);
                return;
            }
        }
        if ((size_t)r < READ_BUF) return; /* the socket is most likely empty */
    }
}

static void on_writable(conn_t *c) {
    if (flush_out(c) < 0) {
        close_conn(c, 0);
        return;
    }
    if (!c->out_pending) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void dispatch(struct epoll_event *events, int n, char *buf) {
    for (int i = 0; i < n; i++) {
        conn_t *c = events[i].data.ptr;
        if (c->state != 2) continue;
        if (events[i].events & EPOLLIN) on_readable(c, buf);
        if (c->state == 2 && (events[i].events & EPOLLOUT)) on_writable(c);
        if (c->state == 2 && (events[i].events & (EPOLLERR | EPOLLHUP)) &&
            !(events[i].events & EPOLLIN)) {
            errors_++;
            close_conn(c, 1);
        }
    }
}

/* Run the loop until `deadline` (ns) or until stop() says so. */
static void run_until(uint64_t deadline, int (*stop)(void), char *buf) {
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        if (stop && stop()) return;
        uint64_t now = now_ns();
        if (now >= deadline) return;
        uint64_t left_ms = (deadline - now + 999999) / 1000000;
        int n = epoll_wait(epfd, events, MAX_EVENTS, left_ms > 1000 ? 1000 : (int)left_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            exit(1);
        }
        dispatch(events, n, buf);
    }
}

static int stopped(void) { return !running; }

static int drained(void) {
    for (int i = 0; i < opt.conns; i++)
        if (conns[i].state == 2 && conns[i].inflight) return 0;
    return 1;
}

/* Open every connection, at most CONNECT_CONCURRENCY at a time. */
static int connect_all(struct sockaddr_storage *addr, socklen_t alen, int *failed) {
    uint64_t deadline = now_ns() + (uint64_t)(opt.connect_timeout * 1e9);
    int next = 0, pending = 0, opened = 0;
    int cep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event events[MAX_EVENTS];
    *failed = 0;
    while ((next < opt.conns || pending) && now_ns() < deadline) {
        while (next < opt.conns && pending < CONNECT_CONCURRENCY) {
            conn_t *c = &conns[next++];
            c->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) {
                (*failed)++;
                continue;
            }
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(c->fd, (struct sockaddr *)addr, alen) < 0 && errno != EINPROGRESS) {
                close(c->fd);
                (*failed)++;
                continue;
            }
            c->state = 1;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(cep, EPOLL_CTL_ADD, c->fd, &ev);
            pending++;
        }
        int n = epoll_wait(cep, events, MAX_EVENTS, 50);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            int err = 0;
            socklen_t elen = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
            epoll_ctl(cep, EPOLL_CTL_DEL, c->fd, NULL);
            pending--;
            if (err) {
                close(c->fd);
                c->state = 0;
                (*failed)++;
                continue;
            }
            c->state = 2;
            opened++;
            open_count++;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
        }
    }
    for (int i = 0; i < opt.conns; i++) /* still connecting at the deadline */
        if (conns[i].state == 1) {
            close(conns[i].fd);
            conns[i].state = 0;
            (*failed)++;
        }
    *failed += opt.conns - next;
    close(cep);
    return opened;
}

static void usage(const char *msg) {
    fprintf(stderr,
            "usage: loadgen {tcp,pipelined} --port P [--host 127.0.0.1] [--connections N]\n"
            "       [--duration S] [--warmup S] [--server-pid PID] [--max-requests N]\n"
            "       [--size BYTES] [--inflight N] [--connect-timeout S] [--drain S]\n"
            "loadgen: error: %s\n",
            msg);
    exit(2);
}

static const char *value_of(int argc, char **argv, int *i, const char *name) {
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len) == 0 && argv[*i][len] == '=') return argv[*i] + len + 1;
    if (strcmp(argv[*i], name) == 0) {
        if (*i + 1 >= argc) usage("an option needs a value");
        return argv[++*i];
    }
    return NULL;
}

static double number(const char *s, const char *name, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s must be a number from %g to %g, not %s", name, lo, hi, s);
        usage(msg);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 2) usage("which mode? tcp or pipelined");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        printf("loadgen {tcp,pipelined} --port P [options]: see benchmarks/cload/loadgen.c\n");
        return 0;
    }
    if (!strcmp(argv[1], "tcp")) opt.tcp_mode = 1;
    else if (strcmp(argv[1], "pipelined")) usage("mode must be tcp or pipelined");
    opt.host = "127.0.0.1";
    opt.port = -1;
    opt.conns = opt.tcp_mode ? 100 : 10;
    opt.duration = 3.0;
    opt.warmup = 0.5;
    opt.max_requests = 50000000;
    opt.size = opt.tcp_mode ? 64 : 1024;
    opt.depth = opt.tcp_mode ? 1 : 10; /* loadgen.py's --inflight default */
    opt.connect_timeout = 30.0;
    opt.drain = 5.0;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if ((v = value_of(argc, argv, &i, "--host"))) opt.host = v;
        else if ((v = value_of(argc, argv, &i, "--port"))) opt.port = (int)number(v, "--port", 1, 65535);
        else if ((v = value_of(argc, argv, &i, "--connections")))
            opt.conns = (int)number(v, "--connections", 1, 1000000);
        else if ((v = value_of(argc, argv, &i, "--duration")))
            opt.duration = number(v, "--duration", 0.001, 3600);
        else if ((v = value_of(argc, argv, &i, "--warmup"))) opt.warmup = number(v, "--warmup", 0, 3600);
        else if ((v = value_of(argc, argv, &i, "--server-pid")))
            opt.server_pid = (int)number(v, "--server-pid", 1, INT_MAX);
        else if ((v = value_of(argc, argv, &i, "--max-requests")))
            opt.max_requests = (long long)number(v, "--max-requests", 1, 1e15);
        else if ((v = value_of(argc, argv, &i, "--size")) || (v = value_of(argc, argv, &i, "--line-size")))
            opt.size = (size_t)number(v, "--size", 2, 1 << 20);
        else if ((v = value_of(argc, argv, &i, "--inflight")) || (v = value_of(argc, argv, &i, "--depth")))
            opt.depth = (int)number(v, "--inflight", 1, 100000);
        else if ((v = value_of(argc, argv, &i, "--connect-timeout")))
            opt.connect_timeout = number(v, "--connect-timeout", 0.001, 3600);
        else if ((v = value_of(argc, argv, &i, "--drain"))) opt.drain = number(v, "--drain", 0, 3600);
        else {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown argument %.150s", argv[i]);
            usage(msg);
        }
    }
    if (opt.port < 0) usage("--port is required");
    if (opt.tcp_mode) opt.depth = 1; /* ping-pong: one line in flight */
    if ((double)opt.depth * (double)opt.size > 64.0 * 1024 * 1024)
        usage("--inflight x --size must stay under 64 MiB");

    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    socklen_t alen;
    if (!strcmp(opt.host, "127.0.0.1") || !strcmp(opt.host, "localhost")) {
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)opt.port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        alen = sizeof *a;
    } else if (!strcmp(opt.host, "::1")) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)opt.port);
        a->sin6_addr = in6addr_loopback;
        alen = sizeof *a;
    } else {
        usage("the load generator only talks to loopback (127.0.0.1, ::1, localhost)");
    }

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? (1 << 20) : rl.rlim_max;
        struct rlimit nl = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0) rl.rlim_cur = want;
    }

    line = malloc(opt.size);
    expect = malloc(opt.size);
    outbuf = malloc((size_t)opt.depth * opt.size);
    conns = calloc((size_t)opt.conns, sizeof *conns);
    uint64_t *stamps = calloc((size_t)opt.conns * (size_t)opt.depth, sizeof *stamps);
    char *buf = malloc(READ_BUF);
    if (!line || !expect || !outbuf || !conns || !stamps || !buf) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    memset(line, 'x', opt.size - 1);
    line[opt.size - 1] = '\n';
    memset(expect, 'X', opt.size - 1);
    expect[opt.size - 1] = '\n';
    for (int d = 0; d < opt.depth; d++) memcpy(outbuf + (size_t)d * opt.size, line, opt.size);
    for (int i = 0; i < opt.conns; i++) conns[i].sent_at = stamps + (size_t)i * opt.depth;

    epfd = epoll_create1(EPOLL_CLOEXEC);
    int failed = 0;
    int connected = connect_all(&addr, alen, &failed);

    running = 1;
    uint64_t t = now_ns();
    for (int i = 0; i < opt.conns; i++)
        if (conns[i].state == 2) {
            send_lines(&conns[i], opt.depth, t);
            if (flush_out(&conns[i]) < 0) close_conn(&conns[i], 0);
        }
    run_until(now_ns() + (uint64_t)(opt.warmup * 1e9), stopped, buf);
    window_t start = window_now(opt.server_pid);
    measuring = 1;
    run_until(now_ns() + (uint64_t)(opt.duration * 1e9), stopped, buf);
    measuring = 0;
    window_t end = window_now(opt.server_pid);
    running = 0;
    run_until(now_ns() + (uint64_t)(opt.drain * 1e9), drained, buf);
    long long outstanding = 0;
    int served = 0;
    for (int i = 0; i < opt.conns; i++) {
        if (conns[i].state == 2) outstanding += conns[i].inflight;
        if (conns[i].served) served++;
        close_conn(&conns[i], 0);
    }

    double seconds = end.wall - start.wall;
    double gen = end.gen - start.gen, server = end.server - start.server;
    double other = end.machine - start.machine - gen - server;
    if (other < 0) other = 0;
    printf("{\"requests\": %lld, \"seconds\": %.4f, \"rps\": %.3f, ", count, seconds,
           seconds > 0 ? (double)count / seconds : 0.0);
    printf("\"p50_us\": %.3f, \"p90_us\": %.3f, \"p99_us\": %.3f, \"max_us\": %.3f, ",
           percentile_us(0.50), percentile_us(0.90), percentile_us(0.99),
           (double)hist_max / 1000.0);
    printf("\"gen_cpu_pct\": %.3f, \"server_cpu_s\": %.4f, \"server_cpu_pct\": %.3f, ",
           seconds > 0 ? 100 * gen / seconds : 0.0, server,
           seconds > 0 ? 100 * server / seconds : 0.0);
    printf("\"server_us_per_req\": %.4f, \"other_cpu_pct\": %.3f, ",
           count ? 1e6 * server / (double)count : 0.0, seconds > 0 ? 100 * other / seconds : 0.0);
    printf("\"mode\": \"%s\", \"connections\": %d, \"connected\": %d, \"connect_failed\": %d, ",
           opt.tcp_mode ? "tcp" : "pipelined", opt.conns, connected, failed);
    if (!opt.tcp_mode)
        printf("\"inflight\": %d, \"line_bytes\": %zu, \"mib_per_s\": %.3f, ", opt.depth,
               opt.size,
               seconds > 0 ? (double)count * (double)opt.size / seconds / 1048576.0 : 0.0);
    printf("\"served\": %d, \"errors\": %lld, \"lost\": %lld, ", served, errors_, lost);
    printf("\"sent\": %lld, \"replies\": %lld, \"outstanding\": %lld, ", sent_total,
           replies_total, outstanding);
    printf("\"bytes_sent\": %lld, \"bytes_received\": %lld, ", bytes_sent, bytes_received);
    printf("\"generator\": \"c\", \"generator_loop\": \"epoll\", \"generator_nofile\": %lld}\n",
           (long long)rl.rlim_cur);
    return 0;
}
