/* Throw-away certificates for the TLS tests, made with the openssl command into a
   private temporary directory at first use and removed when the process exits:
   no private key ever lives in the repository. */
#ifndef RILL_TEST_CERTS_H
#define RILL_TEST_CERTS_H

#define TEST_CERT_DIR 256
#define TEST_CERT_PATH 512

typedef struct test_certs {
    char dir[TEST_CERT_DIR];
    char ca[TEST_CERT_PATH];          /* the trusted test CA */
    char other_ca[TEST_CERT_PATH];    /* a CA nobody trusts */
    char key[TEST_CERT_PATH];         /* the one key every leaf certificate uses */
    char server[TEST_CERT_PATH];      /* CN=localhost, SANs localhost, 127.0.0.1, ::1; by ca */
    char wrong_name[TEST_CERT_PATH];  /* CN and SAN wrong.example; by ca */
    char expired[TEST_CERT_PATH];     /* like server, valid only in January 2020; by ca */
    char unknown_ca[TEST_CERT_PATH];  /* like server, signed by other_ca */
    char client[TEST_CERT_PATH];      /* CN=rill test client, clientAuth; by ca */
} test_certs;

/* The certificates, made once per process; NULL when the openssl command is
   missing (why says so) or failed (why names the step). */
const test_certs *test_certs_get(const char **why);
/* 1 when an `openssl` executable is on PATH. */
int test_have_openssl(void);

#endif
