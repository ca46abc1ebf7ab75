/* Test-time certificate factory: a CA, leaf certificates for the cases the TLS
   suite needs, all through the openssl command (fork/exec, no shell), in a
   mkdtemp directory removed at exit. */
#include "certs.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

static test_certs certs;
static int state;            /* 0: not tried, 1: ready, -1: failed */
static const char *fail_why;
static char fail_buf[TEST_CERT_DIR + 128];

static const char config[] =
    "[ req ]\n"
    "distinguished_name = dn\n"
    "[ dn ]\n"
    "[ v3_ca ]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[ srv ]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1\n"
    "[ wrong ]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:wrong.example\n"
    "[ cli ]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
    /* openssl ca: the only way openssl 3.0 sets an arbitrary notBefore */
    "[ ca ]\n"
    "default_ca = rill_ca\n"
    "[ rill_ca ]\n"
    "dir = .\n"
    "database = index.txt\n"
    "serial = serial\n"
    "new_certs_dir = .\n"
    "default_md = sha256\n"
    "policy = any\n"
    "unique_subject = no\n"
    "[ any ]\n"
    "commonName = supplied\n";

int test_have_openssl(void)
{
    const char *path = getenv("PATH");
    char buf[1024];
    const char *p;

    if (path == NULL)
        path = "/usr/bin:/bin";
    for (p = path; *p != '\0';) {
        const char *end = strchr(p, ':');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/openssl", (int)n, p);
        if (access(buf, X_OK) == 0)
            return 1;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

/* Runs openssl with argv inside the certificate directory; its output goes nowhere. */
static int run_openssl(char *const argv[])
{
    pid_t pid = fork();
    int st;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        if (chdir(certs.dir) < 0)
            _exit(126);
        execvp("openssl", argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int write_file(const char *name, const char *text)
{
    char path[TEST_CERT_DIR + 64];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", certs.dir, name);
    if ((f = fopen(path, "w")) == NULL)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

static void remove_tree(const char *dir)
{
    DIR *d;
    struct dirent *e;
    char path[TEST_CERT_DIR + 300];

    if ((d = opendir(dir)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* A run killed by a signal or the watchdog never reaches atexit: directories whose
   process is gone are swept by the next run, so keys do not pile up. */
static void sweep_stale(const char *tmp)
{
    DIR *d = opendir(tmp);
    struct dirent *e;
    char path[TEST_CERT_DIR + 300];
    long pid;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (sscanf(e->d_name, "rill-certs-%ld-", &pid) != 1 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
        remove_tree(path);
    }
    closedir(d);
}

static void remove_dir(void)
{
    if (certs.dir[0] != '\0')
        remove_tree(certs.dir);
}

static void set_path(char *dst, const char *name)
{
    snprintf(dst, TEST_CERT_PATH, "%s/%s", certs.dir, name);
}

#define STEP(what, ...) do { \
        char *argv_[] = { "openssl", __VA_ARGS__, NULL }; \
        if (run_openssl(argv_) != 0) { fail_why = "openssl " what " failed"; return -1; } \
    } while (0)

static int make_all(void)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    sweep_stale(tmp);
    snprintf(certs.dir, sizeof certs.dir, "%s/rill-certs-%ld-XXXXXX", tmp, (long)getpid());
    if (mkdtemp(certs.dir) == NULL) {
        snprintf(fail_buf, sizeof fail_buf, "mkdtemp %s: %s", certs.dir, strerror(errno));
        certs.dir[0] = '\0';
        fail_why = fail_buf;
        return -1;
    }
    atexit(remove_dir);
    if (write_file("rill.cnf", config) < 0 || write_file("index.txt", "") < 0 || write_file("serial", "1000\n") < 0) {
        fail_why = "cannot write the openssl configuration";
        return -1;
    }
    STEP("req (CA)", "req", "-config", "rill.cnf", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=rill test CA",
         "-extensions", "v3_ca");
    STEP("req (other CA)", "req", "-config", "rill.cnf", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days", "3650", "-subj", "/CN=rill other CA",
         "-extensions", "v3_ca");
    STEP("genpkey", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "leaf.key");
    STEP("req (localhost)", "req", "-config", "rill.cnf", "-new", "-key", "leaf.key", "-subj", "/CN=localhost",
         "-out", "localhost.csr");
    STEP("req (wrong)", "req", "-config", "rill.cnf", "-new", "-key", "leaf.key", "-subj", "/CN=wrong.example",
         "-out", "wrong.csr");
    STEP("req (client)", "req", "-config", "rill.cnf", "-new", "-key", "leaf.key", "-subj", "/CN=rill test client",
         "-out", "client.csr");
    STEP("x509 (server)", "x509", "-req", "-in", "localhost.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-set_serial", "2", "-days", "3650", "-extfile", "rill.cnf", "-extensions", "srv", "-out", "server.pem");
    STEP("x509 (wrong)", "x509", "-req", "-in", "wrong.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-set_serial", "3", "-days", "3650", "-extfile", "rill.cnf", "-extensions", "wrong", "-out", "wrong.pem");
    STEP("x509 (client)", "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-set_serial", "4", "-days", "3650", "-extfile", "rill.cnf", "-extensions", "cli", "-out", "client.pem");
    STEP("x509 (unknown CA)", "x509", "-req", "-in", "localhost.csr", "-CA", "other.pem", "-CAkey", "other.key",
         "-set_serial", "5", "-days", "3650", "-extfile", "rill.cnf", "-extensions", "srv", "-out", "unknown.pem");
    STEP("ca (expired)", "ca", "-batch", "-config", "rill.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
         "-in", "localhost.csr", "-out", "expired.pem", "-startdate", "20200101000000Z",
         "-enddate", "20200102000000Z", "-extfile", "rill.cnf", "-extensions", "srv", "-notext");
    set_path(certs.ca, "ca.pem");
    set_path(certs.other_ca, "other.pem");
    set_path(certs.key, "leaf.key");
    set_path(certs.server, "server.pem");
    set_path(certs.wrong_name, "wrong.pem");
    set_path(certs.expired, "expired.pem");
    set_path(certs.unknown_ca, "unknown.pem");
    set_path(certs.client, "client.pem");
    return 0;
}

const test_certs *test_certs_get(const char **why)
{
    if (state == 0) {
        if (!test_have_openssl()) {
            fail_why = "the openssl command is not installed";
            state = -1;
        } else {
            state = make_all() == 0 ? 1 : -1;
        }
    }
    if (why != NULL)
        *why = state == 1 ? NULL : fail_why;
    return state == 1 ? &certs : NULL;
}
