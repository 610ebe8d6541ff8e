/*
 * recvtty SOCKET OUT: the other end of --console-socket for the CRIU lane (runc's
 * contrib/cmd/recvtty does the same job; the initramfs has no Go or Python). Listens on
 * SOCKET; for every connection receives one pty master with SCM_RIGHTS and, in a child,
 * copies what the container writes to its terminal into OUT (appending) until the terminal
 * closes. A restore connects again with the master CRIU made, so it keeps accepting.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int recv_fd(int conn) {
    char buf[256], ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof(ctl);
    if (recvmsg(conn, &msg, 0) < 0)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: recvtty SOCKET OUT\n");
        return 2;
    }
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
    unlink(argv[1]);
    if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(ls, 4) < 0) {
        perror("recvtty: listen");
        return 1;
    }
    for (;;) {
        int conn = accept(ls, NULL, NULL);
        if (conn < 0) {
            if (errno == EINTR)
                continue;
            perror("recvtty: accept");
            return 1;
        }
        int master = recv_fd(conn);
        close(conn);
        if (master < 0)
            continue;
        if (fork() == 0) {
            close(ls);
            int out = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
            char buf[4096];
            ssize_t n;
            while ((n = read(master, buf, sizeof(buf))) > 0)
                if (write(out, buf, n) != n)
                    break;
            _exit(0);
        }
        close(master);
    }
}
