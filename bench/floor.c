/*
 * floor: the kernel's floor for what an OCI runtime does to run a busybox /bin/true container.
 *
 * It does the same kernel work as `create` + `start` + `delete` of the benchmark's bundle, and
 * nothing else: no config parsing, no state files, no exec fifo, no second process talking to
 * it. Whatever a runtime spends above this program's time is the runtime's own overhead.
 *
 *   clone(2) with CLONE_NEW{PID,NS,UTS,IPC}[,NET]                       (namespaces(7))
 *   [--cgroup NAME] mkdir /sys/fs/cgroup/<every hierarchy>/NAME; the child is born in the
 *   cgroup2 one (clone3 CLONE_INTO_CGROUP) and moves itself into the v1 ones by writing 0 to
 *   their `tasks` files, which the parent opened; rmdir(2) after the child exited (cgroups(7);
 *   as hako since issue 19: a pid written to cgroup.procs costs an RCU grace period, see
 *   cgroups/src/self_join.rs, which a floor must not pay if a runtime need not)
 *   make / rprivate, bind the rootfs onto itself, mount proc, tmpfs /dev, devpts, tmpfs
 *   /dev/shm, mqueue, sysfs ro, and with --cgroup the bundle's read-only /sys/fs/cgroup (a
 *   tmpfs with a read-only bind of the container's cgroup in each hierarchy); mknod the six default devices and the /dev symlinks
 *   (runtime-spec config-linux.md "Default Devices")                     (mount(2), mknod(2))
 *   pivot_root(".", ".") then umount2(".", MNT_DETACH)                   (pivot_root(2))
 *   masked paths (bind /dev/null) and read-only paths (bind, remount ro)
 *   sethostname, execve("/bin/true") in the rootfs, and the parent waits for it.
 *
 * usage: floor [--net] [--cgroup NAME] ROOTFS
 * Exit status: the child's, or 1 with a message on stderr if a step failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *hierarchies[] = {"blkio",   "cpu",  "cpuacct", "cpuset", "devices",
                                    "freezer", "memory", "pids",  "systemd", "unified"};
#define NHIER (sizeof(hierarchies) / sizeof(hierarchies[0]))

static const char *rootfs;
/* --cgroup NAME, or NULL. */
static const char *cgroup_name;
static void cgroup_path(char *buf, size_t len, size_t i, const char *name, const char *file);
/* The v1 hierarchies' `tasks` files, opened by the parent, written by the child; -1 if unused. */
static int join_fd[NHIER];

/* struct clone_args (linux/sched.h, Linux 5.7 for `cgroup`), spelt out to keep glibc's
 * <sched.h> and the kernel's header apart. */
struct clone3_args {
    unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

static void die(const char *what) {
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    _exit(1);
}

static void mnt(const char *src, const char *dst, const char *type, unsigned long flags,
                const char *data) {
    if (mount(src, dst, type, flags, data) < 0)
        die(dst);
}

/* Masked and read-only paths that the kernel does not have are skipped, as runtimes do. */
static void mnt_if_exists(const char *src, const char *dst, const char *type, unsigned long flags,
                          const char *data) {
    if (mount(src, dst, type, flags, data) < 0 && errno != ENOENT)
        die(dst);
}

static int child(void) {
    for (size_t h = 0; h < NHIER; h++)
        if (join_fd[h] >= 0) {
            if (write(join_fd[h], "0", 1) != 1)
                die("join a v1 hierarchy");
            close(join_fd[h]);
        }

    mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    mnt(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL);
    if (chdir(rootfs) < 0)
        die("chdir rootfs");
    mnt("proc", "proc", "proc", 0, NULL);
    mnt("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
    mkdir("dev/pts", 0755);
    mnt("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5");
    mkdir("dev/shm", 0755);
    mnt("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k");
    mkdir("dev/mqueue", 0755);
    mnt("mqueue", "dev/mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL);
    mnt("sysfs", "sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, NULL);
    if (cgroup_name) {
        /* The bundle's read-only cgroup mount on v1: a tmpfs holding a bind of the container's
         * own directory in each hierarchy, each made read-only, then the tmpfs (runc's
         * mountCgroupV1; hako's namespaces/src/rootfs/mount.rs). */
        const unsigned long ro = MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY;
        mnt("tmpfs", "sys/fs/cgroup", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=755");
        for (size_t h = 0; h < NHIER; h++) {
            char host[512], dest[512];
            cgroup_path(host, sizeof(host), h, cgroup_name, NULL);
            snprintf(dest, sizeof(dest), "sys/fs/cgroup/%s", hierarchies[h]);
            if (mkdir(dest, 0755) < 0)
                die(dest);
            mnt(host, dest, NULL, MS_BIND | MS_REC, NULL);
            mnt(NULL, dest, NULL, MS_BIND | MS_REMOUNT | MS_REC | ro, NULL);
        }
        mnt(NULL, "sys/fs/cgroup", NULL, MS_REMOUNT | ro, "mode=755");
    }

    static const struct { const char *path; unsigned maj, min; } devs[] = {
        {"dev/null", 1, 3}, {"dev/zero", 1, 5},    {"dev/full", 1, 7},
        {"dev/random", 1, 8}, {"dev/urandom", 1, 9}, {"dev/tty", 5, 0},
    };
    for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
        if (mknod(devs[i].path, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) < 0)
            die(devs[i].path);
    symlink("/proc/self/fd", "dev/fd");
    symlink("/proc/self/fd/0", "dev/stdin");
    symlink("/proc/self/fd/1", "dev/stdout");
    symlink("/proc/self/fd/2", "dev/stderr");
    symlink("pts/ptmx", "dev/ptmx");

    if (syscall(SYS_pivot_root, ".", ".") < 0)
        die("pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        die("umount old root");
    if (chdir("/") < 0)
        die("chdir /");

    static const char *masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list"};
    for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++)
        mnt_if_exists("/dev/null", masked[i], NULL, MS_BIND, NULL);
    mnt_if_exists("tmpfs", "/sys/firmware", "tmpfs", MS_RDONLY, NULL);
    static const char *ro[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                               "/proc/sysrq-trigger"};
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
        mnt_if_exists(ro[i], ro[i], NULL, MS_BIND | MS_REC, NULL);
        mnt_if_exists(ro[i], ro[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL);
    }
    if (sethostname("box", 3) < 0)
        die("sethostname");

    char *argv[] = {"/bin/true", NULL};
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    execve(argv[0], argv, envp);
    die("execve");
    return 1;
}

static void cgroup_path(char *buf, size_t len, size_t i, const char *name, const char *file) {
    snprintf(buf, len, "/sys/fs/cgroup/%s/%s%s%s", hierarchies[i], name, file ? "/" : "",
             file ? file : "");
}

int main(int argc, char **argv) {
    unsigned long long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
    const char *cgroup = NULL;
    int i = 1;
    for (; i < argc - 1; i++) {
        if (!strcmp(argv[i], "--net"))
            flags |= CLONE_NEWNET;
        else if (!strcmp(argv[i], "--cgroup") && i + 1 < argc - 1)
            cgroup = cgroup_name = argv[++i];
        else
            break;
    }
    if (i != argc - 1) {
        fprintf(stderr, "usage: floor [--net] [--cgroup NAME] ROOTFS\n");
        return 2;
    }
    rootfs = argv[i];
    char path[512];
    if (cgroup)
        for (size_t h = 0; h < NHIER; h++) {
            cgroup_path(path, sizeof(path), h, cgroup, NULL);
            if (mkdir(path, 0755) < 0)
                die(path);
            if (!strcmp(hierarchies[h], "cpuset")) /* an empty cpuset refuses tasks */
                for (int f = 0; f < 2; f++) {
                    const char *file = f ? "cpuset.mems" : "cpuset.cpus";
                    char parent[512], val[256];
                    snprintf(parent, sizeof(parent), "/sys/fs/cgroup/cpuset/%s", file);
                    int fd = open(parent, O_RDONLY | O_CLOEXEC);
                    ssize_t n = fd < 0 ? -1 : read(fd, val, sizeof(val));
                    if (n <= 0)
                        die(parent);
                    close(fd);
                    cgroup_path(path, sizeof(path), h, cgroup, file);
                    fd = open(path, O_WRONLY | O_CLOEXEC);
                    if (fd < 0 || write(fd, val, n) != n)
                        die(path);
                    close(fd);
                }
        }
    struct clone3_args args = {.flags = flags, .exit_signal = SIGCHLD};
    for (size_t h = 0; h < NHIER; h++) {
        join_fd[h] = -1;
        if (!cgroup)
            continue;
        int unified = !strcmp(hierarchies[h], "unified");
        cgroup_path(path, sizeof(path), h, cgroup, unified ? NULL : "tasks");
        int fd = open(path, unified ? O_RDONLY | O_DIRECTORY | O_CLOEXEC : O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            die(path);
        if (unified) {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = (unsigned long long)fd;
        } else {
            join_fd[h] = fd;
        }
    }
    /* Fork semantics (no stack): the child returns 0 and runs on a copy of this stack. */
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0)
        die("clone3");
    if (pid == 0)
        _exit(child());
    for (size_t h = 0; h < NHIER; h++)
        if (join_fd[h] >= 0)
            close(join_fd[h]);
    if (args.flags & CLONE_INTO_CGROUP)
        close((int)args.cgroup);
    int status;
    if (waitpid(pid, &status, 0) < 0)
        die("waitpid");
    if (cgroup)
        for (size_t h = 0; h < NHIER; h++) {
            cgroup_path(path, sizeof(path), h, cgroup, NULL);
            if (rmdir(path) < 0)
                die(path);
        }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
