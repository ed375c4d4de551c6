// variant: select
// kind: correct
// mistake: written in C with select(2): non-blocking sockets, a write buffer per client,
//   descriptors >= FD_SETSIZE closed at once, SIGPIPE ignored
// expect-fail:
/*
 * select-server for socklab, in C: sends "hello" on connect, then answers every
 * byte it reads with its upper case (ASCII a-z only), to any number of clients
 * from one thread.
 *
 * Build: gcc -O2 -Wall -o select-c select-c.c
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORT 9000
#define GREETING "hello"
#define CHUNK 65536
/* Answer bytes held for one client before we stop reading from it. */
#define MAX_PENDING (1 << 20)

struct client {
    char *buf;      /* answer bytes not yet sent: buf[off .. len) */
    size_t off, len, cap;
    int eof;        /* the client sent EOF: close once buf is empty */
};

static struct client *clients[FD_SETSIZE];

static size_t pending(const struct client *c) { return c->len - c->off; }

static void drop(int fd)
{
    free(clients[fd]->buf);
    free(clients[fd]);
    clients[fd] = NULL;
    close(fd);
}

/* Append n bytes to a client's buffer (upper-cased if asked); -1 if out of memory. */
static int append(struct client *c, const char *data, size_t n, int upper)
{
    if (c->off > 0) {            /* move what is left to the front first */
        memmove(c->buf, c->buf + c->off, pending(c));
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n)
            cap *= 2;
        char *grown = realloc(c->buf, cap);
        if (grown == NULL)
            return -1;
        c->buf = grown;
        c->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (upper && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        c->buf[c->len++] = ch;
    }
    return 0;
}

static void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void accept_clients(int listener)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;              /* EAGAIN: nobody left; EMFILE and the like: later */
        }
        if (fd >= FD_SETSIZE) {  /* select() cannot watch it */
            fprintf(stderr, "refuse fd %d: cannot watch descriptors >= %d\n", fd, FD_SETSIZE);
            close(fd);
            continue;
        }
        set_nonblocking(fd);
        struct client *c = calloc(1, sizeof *c);
        if (c == NULL || append(c, GREETING, strlen(GREETING), 0) < 0) {
            if (c)
                free(c->buf);
            free(c);
            close(fd);
            continue;
        }
        clients[fd] = c;
    }
}

static void read_client(int fd)
{
    static char chunk[CHUNK];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
        if (append(clients[fd], chunk, (size_t)n, 1) < 0)
            drop(fd);
    } else if (n == 0) {
        clients[fd]->eof = 1;
        if (pending(clients[fd]) == 0)
            drop(fd);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        drop(fd);                /* ECONNRESET and friends */
    }
}

static void write_client(int fd)
{
    struct client *c = clients[fd];
    ssize_t n = send(fd, c->buf + c->off, pending(c), MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            drop(fd);            /* EPIPE, ECONNRESET */
        return;
    }
    c->off += (size_t)n;
    if (pending(c) == 0) {
        c->off = c->len = 0;
        if (c->eof)
            drop(fd);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) {
        perror("socket");
        return 1;
    }
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(PORT);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 4096) < 0) {
        perror("bind/listen");
        return 1;
    }
    set_nonblocking(listener);
    fprintf(stderr, "listening on port %d\n", PORT);

    for (;;) {
        fd_set rd, wr;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        FD_SET(listener, &rd);
        int maxfd = listener;
        for (int fd = 0; fd < FD_SETSIZE; fd++) {
            struct client *c = clients[fd];
            if (c == NULL)
                continue;
            if (!c->eof && pending(c) < MAX_PENDING)
                FD_SET(fd, &rd);
            if (pending(c) > 0)
                FD_SET(fd, &wr);
            if (fd > maxfd)
                maxfd = fd;
        }
        if (select(maxfd + 1, &rd, &wr, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            perror("select");
            return 1;
        }
        for (int fd = 0; fd <= maxfd; fd++) {
            if (fd == listener || clients[fd] == NULL)
                continue;
            if (FD_ISSET(fd, &rd))
                read_client(fd);
            if (clients[fd] != NULL && FD_ISSET(fd, &wr))
                write_client(fd);
        }
        /* Accept last: a descriptor freed above must not be reused in this round. */
        if (FD_ISSET(listener, &rd))
            accept_clients(listener);
    }
}
