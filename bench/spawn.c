/*
 * spawn: runs a sequence of steps (commands, and waits for a container's init) and reports
 * each one's wall time, CPU time and peak RSS.
 *
 * Why a C launcher and not Python's own spawn:
 *  - ru_maxrss is a high-water mark that survives execve(2) (the kernel folds the old mm's peak
 *    into it: setmax_mm_hiwater_rss in fs/exec.c), so anything spawned from the 18 MiB Python
 *    interpreter reports at least 18 MiB. Spawned from this small static program, ru_maxrss
 *    from wait4(2) is the peak of the measured verb (and of the descendants that verb reaped).
 *  - a whole lifecycle is timed here, with ~50 us between steps, instead of the ~1 ms that a
 *    Python round trip per verb would add to every runtime alike (and hide in the ratios).
 *
 * It makes itself a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER), as containerd's shim
 * does: when `create` returns, the container's init is reparented to this process, which can
 * then wait4(2) for it and get its rusage (the runtime's set-up code in the init, plus the exec'd
 * program). An init still alive when this program exits goes to the next subreaper up.
 *
 * usage: spawn LOGFILE TIMEOUT_MS STEP [STEP...]
 *   STEP is one of, each introduced by "--":
 *     -- run ARGV...     run a command: stdin /dev/null (inherited), stdout+stderr to LOGFILE
 *     -- rss PIDFILE     VmRSS (KiB) of the process whose pid is in PIDFILE (proc(5))
 *     -- wait PIDFILE    wait (bounded) for that process, our child by now, and reap it
 *   Steps stop at the first command that fails. Each step prints one line on stdout:
 *     run|wait WALL_NS UTIME_US STIME_US MAXRSS_KB EXITCODE TIMED_OUT
 *     rss KIB
 *   then "total WALL_NS": first step's start to last step's end, minus the rss steps.
 *   EXITCODE is -N if killed by signal N. Exit status 0, or 1 if the arguments are wrong or a
 *   step could not be carried out at all (message on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fail(const char *what, const char *arg) {
    fprintf(stderr, "spawn: %s %s: %s\n", what, arg, strerror(errno));
    return 1;
}

static int read_pid(const char *file, pid_t *pid) {
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    int ok = fscanf(f, "%d", pid) == 1;
    fclose(f);
    if (!ok)
        errno = EINVAL;
    return ok ? 0 : -1;
}

/* Waits for our child pid, SIGKILLing it after timeout_ms; prints the "run|wait" line.
 * Returns the exit code, or 1000 on a timeout. */
static int reap(const char *tag, pid_t pid, long long t0, int timeout_ms) {
    int timed_out = 0;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd >= 0) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) == 0) {
            kill(pid, SIGKILL);
            timed_out = 1;
        }
        close(pidfd);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        return -1000;
    long long t1 = now_ns();
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    printf("%s %lld %lld %lld %ld %d %d\n", tag, t1 - t0,
           (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
           (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss, code,
           timed_out);
    return timed_out ? 1000 : code;
}

static long vm_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    if (argc < 5 || strcmp(argv[3], "--")) {
        fprintf(stderr, "usage: spawn LOGFILE TIMEOUT_MS -- run ARGV... [-- rss|wait PIDFILE]...\n");
        return 1;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        return fail("prctl", "PR_SET_CHILD_SUBREAPER");
    int log = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0)
        return fail("open", argv[1]);
    int timeout_ms = atoi(argv[2]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, log, 1);
    posix_spawn_file_actions_adddup2(&fa, log, 2);

    long long start = now_ns(), excluded = 0;
    for (int i = 3; i < argc;) {
        /* argv[i] is "--": the step runs until the next "--" or the end */
        int end = i + 1;
        while (end < argc && strcmp(argv[end], "--"))
            end++;
        const char *kind = i + 1 < end ? argv[i + 1] : "";
        if (!strcmp(kind, "run") && i + 2 < end) {
            argv[end < argc ? end : argc] = NULL; /* terminates this step's argv */
            pid_t pid;
            long long t0 = now_ns();
            int err = posix_spawn(&pid, argv[i + 2], &fa, NULL, &argv[i + 2], environ);
            if (err) {
                errno = err;
                return fail("posix_spawn", argv[i + 2]);
            }
            int code = reap("run", pid, t0, timeout_ms);
            if (code == -1000)
                return fail("wait4", argv[i + 2]);
            if (code != 0)
                break;
        } else if ((!strcmp(kind, "rss") || !strcmp(kind, "wait")) && end == i + 3) {
            long long t0 = now_ns();
            pid_t pid;
            if (read_pid(argv[i + 2], &pid) < 0)
                return fail("read", argv[i + 2]);
            if (!strcmp(kind, "rss")) {
                printf("rss %ld\n", vm_rss_kb(pid));
                excluded += now_ns() - t0;
            } else {
                int code = reap("wait", pid, t0, timeout_ms);
                if (code == -1000)
                    return fail("wait4 (is the init our child?)", argv[i + 2]);
                if (code != 0)
                    break;
            }
        } else {
            fprintf(stderr, "spawn: bad step at argument %d\n", i + 1);
            return 1;
        }
        i = end;
    }
    printf("total %lld\n", now_ns() - start - excluded);
    return 0;
}
