/*
 * nsbt-report: test-only helper for the netsecrets boot test (initrd/boot-test/run).
 *
 * A NixOS initrd has no shell or coreutils for such a job (the test's dracut
 * image happens to carry bash for NixOS's copy-secrets script), so this small
 * static program reports what the units left behind, on stdout (the console):
 *
 *   NSBT CLOCK mono_ns=<CLOCK_MONOTONIC> real_ns=<CLOCK_REALTIME>
 *   NSBT FILE path=<p> size=<n> mode=<octal> uid=<u> gid=<g> ctime_real_ns=<t> hex=<content>
 *   NSBT MISSING path=<p> errno=<e>
 *   NSBT DIR path=<d> entries=<name,name,...>     (for arguments ending in '/')
 *   NSBT END
 *
 * The content is printed in hex because the test compares bytes exactly. This
 * prints secret values: it exists only in the test initrd, never in a real one.
 * Each line is written with one write(2) so it is not split by other console
 * output. Not committed as a binary: run builds it with gcc -static.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void emit(const char *line, size_t len)
{
    while (len > 0) {
        ssize_t n = write(1, line, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            exit(1);
        }
        line += n;
        len -= (size_t)n;
    }
}

static long long ns(const struct timespec *t)
{
    return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void report_dir(const char *path)
{
    char line[8192];
    size_t len = (size_t)snprintf(line, sizeof line, "NSBT DIR path=%s entries=", path);
    DIR *d = opendir(path);
    if (!d) {
        len += (size_t)snprintf(line + len, sizeof line - len, "<errno %d>", errno);
    } else {
        struct dirent *e;
        int first = 1;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (len + strlen(e->d_name) + 2 >= sizeof line - 2)
                break;
            len += (size_t)snprintf(line + len, sizeof line - len, "%s%s", first ? "" : ",", e->d_name);
            first = 0;
        }
        closedir(d);
    }
    len += (size_t)snprintf(line + len, sizeof line - len, "\n");
    emit(line, len);
}

static void report_file(const char *path)
{
    char head[1024];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        size_t n = (size_t)snprintf(head, sizeof head, "NSBT MISSING path=%s errno=%d\n", path, errno);
        emit(head, n);
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t cap = (size_t)st.st_size + 1;
    if (cap > (1 << 20))
        cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == cap)
            break;
    }
    close(fd);
    size_t hlen = (size_t)snprintf(head, sizeof head,
        "NSBT FILE path=%s size=%lld mode=%04o uid=%u gid=%u ctime_real_ns=%lld hex=",
        path, (long long)st.st_size, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
        (unsigned)st.st_gid, ns(&st.st_ctim));
    size_t total = hlen + 2 * got + 3;
    char *line = malloc(total);
    memcpy(line, head, hlen);
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < got; i++) {
        line[hlen + 2 * i] = hexd[buf[i] >> 4];
        line[hlen + 2 * i + 1] = hexd[buf[i] & 15];
    }
    memcpy(line + hlen + 2 * got, "\n", 1);
    emit(line, hlen + 2 * got + 1);
    free(line);
    free(buf);
}

int main(int argc, char **argv)
{
    struct timespec mono, real;
    char line[256];
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &real);
    size_t n = (size_t)snprintf(line, sizeof line, "NSBT CLOCK mono_ns=%lld real_ns=%lld\n",
                                ns(&mono), ns(&real));
    emit(line, n);
    for (int i = 1; i < argc; i++) {
        size_t l = strlen(argv[i]);
        if (l > 0 && argv[i][l - 1] == '/')
            report_dir(argv[i]);
        else
            report_file(argv[i]);
    }
    emit("NSBT END\n", 9);
    return 0;
}
