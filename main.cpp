// kennel: a reactive machine-learning server in one binary. See README.md.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/cli.h"

int main(int argc, char** argv) {
    // Started with standard input, output or error closed (`>&-`), the next
    // file opened would take its number: the database's lock file became
    // standard output, and the "listening" line and access log went into it.
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) < 0 && ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) < 0)
            return 1;
    }
    // Fixed thresholds turn off glibc's dynamic ones. Freeing a large block
    // (a model artifact of tens of MB) raised the trim threshold up to 64 MB,
    // after which no thread arena gave the free memory at its top back: a
    // probe's server held 850 MB resident, 84 MB of it in use, across 15
    // arenas of about 64 MB each (malloc_trim does not shrink an arena's
    // top). Blocks of 4 MiB and more are mapped and unmapped on their own;
    // an arena keeps at most 8 MiB free at its top.
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    // What Kennel writes is never for other users: the database (password
    // and API key hashes, every fact), its -wal and -shm, backups and exports
    // were created 0644, readable by every local user. The group keeps what
    // the caller's umask gives it (0640 under the usual 022), so a group
    // shared with a backup user still works; systemd's unit sets 077.
    ::umask(::umask(0) | 0007);
    // A file-size limit (ulimit -f, systemd's LimitFSIZE) reached then fails
    // the write (EFBIG) as a full disk does: the server answers 503 and goes
    // on, a backup or export removes its partial file. SIGXFSZ killed them
    // and left the partial.
    signal(SIGXFSZ, SIG_IGN);
    return kennel::run_cli(argc, argv);
}
