/*
 * The upper-case line service in C: one thread, epoll, the reference the Python
 * servers are compared with (``python -m benchmarks.cupper``; the harness's
 * "C epoll server" row).
 *
 *   upper_server [PORT]     listen on 127.0.0.1:PORT (0: any free port)
 *
 * Prints "listening on tcp://127.0.0.1:PORT" once it listens.  Each connection
 * reads what has arrived (up to 256 KiB at a time), answers every complete line
 * with the line in capitals, all the replies of one read in one write(), and keeps
 * an unfinished line for the next read, as the bare Protocol does.  When the socket
 * will not take all the replies, it stops reading that connection until they are
 * sent.  It runs until it is killed.  Loopback only: it never binds another address.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE (256 * 1024)
#define EVENTS 256

struct conn {
    int fd;
    char *in;           /* the start of a line the last read did not finish */
    size_t in_len, in_cap;
    char *out;          /* replies the socket did not take yet */
    size_t out_len, out_pos, out_cap;
    int writing;        /* EPOLLOUT armed (and EPOLLIN off) */
};

static int epfd;
/* Every read and every reply is built in these two, shared by all connections: an
 * idle connection holds only its struct (and what a partial line or a full socket
 * left behind), as the idle-memory rows expect of a floor. */
static char *rbuf, *wbuf;
static size_t rbuf_cap, wbuf_cap;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void *grow(void *buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return buf;
    size_t cap2 = *cap ? *cap : 4096;
    while (cap2 < need)
        cap2 *= 2;
    void *p = realloc(buf, cap2);
    if (!p)
        die("realloc");
    *cap = cap2;
    return p;
}

static void drop(struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static void arm(struct conn *c, int writing) {
    if (c->writing == writing)
        return;
    struct epoll_event ev = {.events = writing ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->writing = writing;
}

/* Send what waits; 0 when all is sent, 1 when the socket is full, -1 on error. */
static int flush_out(struct conn *c) {
    while (c->out_pos < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_pos, c->out_len - c->out_pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -1;
        }
        c->out_pos += (size_t)n;
    }
    c->out_len = c->out_pos = 0;
    return 0;
}

/* Read once; answer every complete line; 0 to go on, -1 to close. */
static int on_readable(struct conn *c) {
    rbuf = grow(rbuf, &rbuf_cap, c->in_len + READ_SIZE);
    if (c->in_len)
        memcpy(rbuf, c->in, c->in_len);
    ssize_t n = read(c->fd, rbuf + c->in_len, READ_SIZE);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    size_t end = c->in_len + (size_t)n, start = 0, out_len = 0;
    wbuf = grow(wbuf, &wbuf_cap, end);
    char *nl;
    while ((nl = memchr(rbuf + start, '\n', end - start)) != NULL) {
        size_t len = (size_t)(nl - (rbuf + start)) + 1;
        const char *src = rbuf + start;
        char *dst = wbuf + out_len;
        for (size_t i = 0; i < len; i++) {
            char ch = src[i];
            dst[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
        }
        out_len += len;
        start += len;
    }
    c->in_len = end - start;  /* keep the unfinished line for the next read */
    if (c->in_len) {
        c->in = grow(c->in, &c->in_cap, c->in_len);
        memcpy(c->in, rbuf + start, c->in_len);
    }
    if (!out_len)
        return 0;
    size_t sent = 0;
    while (sent < out_len) {
        ssize_t w = write(c->fd, wbuf + sent, out_len - sent);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        sent += (size_t)w;
    }
    if (sent < out_len) {  /* the socket is full: keep the rest, stop reading */
        c->out = grow(c->out, &c->out_cap, out_len - sent);
        memcpy(c->out, wbuf + sent, out_len - sent);
        c->out_len = out_len - sent;
        c->out_pos = 0;
        arm(c, 1);
    }
    return 0;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(lfd, 4096) < 0)
        die("listen");
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    printf("listening on tcp://127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    epfd = epoll_create1(0);
    if (epfd < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die("epoll_ctl");
    struct epoll_event events[EVENTS];
    for (;;) {
        int ready = epoll_wait(epfd, events, EVENTS, -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < ready; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {  /* the listener: take every waiting connection */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    if (!c)
                        die("calloc");
                    c->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                        die("epoll_ctl");
                }
                continue;
            }
            if (c->writing) {
                int sent = flush_out(c);
                if (sent < 0 || (events[i].events & (EPOLLERR | EPOLLHUP) && sent != 0))
                    drop(c);
                else if (sent == 0)
                    arm(c, 0);
                continue;
            }
            if (on_readable(c) < 0)
                drop(c);
        }
    }
}
