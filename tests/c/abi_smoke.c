/* Drives the plugin through include/google_integration.h as a C host would, built with
 * -Wall -Werror -fsanitize=address,undefined. No network: the fake Google is not needed for
 * what this checks (the buffer protocol, argument checks, status, lookups, the logger).
 * Usage: abi_smoke DATA_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google_integration.h"

static int failures = 0;
static int log_lines = 0;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                     \
        }                                                                   \
    } while (0)

static void on_log(int level, const char *message, void *user) {
    CHECK(level >= 1 && level <= 5);
    CHECK(message != NULL);
    CHECK(user == (void *)&log_lines);
    (*(int *)user)++;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATA_DIR\n", argv[0]);
        return 2;
    }
    gi_set_logger(on_log, &log_lines);
    CHECK(strlen(gi_version()) > 0);

    /* A bad configuration fails with a message naming the field. */
    CHECK(gi_open("{\"client_id\":\"x\"}") == NULL);
    char err[512];
    size_t err_len = gi_last_error(err, sizeof err);
    CHECK(err_len > 0 && strstr(err, "client_secret") != NULL);
    /* gi_last_error cuts to fit and still reports the full length. */
    char tiny[4];
    CHECK(gi_last_error(tiny, sizeof tiny) == err_len);
    CHECK(strlen(tiny) == 3);
    CHECK(gi_open(NULL) == NULL);

    char config[1024];
    snprintf(config, sizeof config,
             "{\"client_id\":\"c-test.apps.googleusercontent.com\",\"client_secret\":\"s3cret\","
             "\"redirect_uri\":\"http://127.0.0.1:9/google/callback\",\"data_dir\":\"%s\","
             "\"google\":{\"auth_url\":\"http://127.0.0.1:9/auth\",\"token_url\":\"http://127.0.0.1:9/token\","
             "\"revoke_url\":\"http://127.0.0.1:9/revoke\",\"people_url\":\"http://127.0.0.1:9\"}}",
             argv[1]);
    GiPlugin *p = gi_open(config);
    CHECK(p != NULL);
    if (p == NULL) {
        gi_last_error(err, sizeof err);
        fprintf(stderr, "gi_open: %s\n", err);
        return 1;
    }

    /* Buffer protocol: ask the length, allocate, ask again. */
    size_t len = 0;
    CHECK(gi_auth_url(p, "example.com/40", NULL, 0, &len) == GI_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 0);
    char *url = malloc(len + 1);
    CHECK(gi_auth_url(p, "example.com/40", url, len, &len) == GI_ERR_BUFFER_TOO_SMALL);
    size_t len2 = 0;
    CHECK(gi_auth_url(p, "example.com/40", url, len + 1, &len2) == GI_OK);
    CHECK(strlen(url) == len2);
    CHECK(strstr(url, "code_challenge_method=S256") != NULL);
    CHECK(strstr(url, "access_type=offline") != NULL);
    free(url);

    CHECK(gi_status(p, "example.com/40") == GI_STATUS_DISCONNECTED);
    CHECK(gi_status(NULL, "example.com/40") == GI_STATUS_DISCONNECTED);
    CHECK(gi_status(p, NULL) == GI_STATUS_DISCONNECTED);

    char json[512];
    CHECK(gi_status_json(p, "example.com/40", json, sizeof json, &len) == GI_OK);
    CHECK(strstr(json, "\"status\":\"disconnected\"") != NULL);

    /* Bad arguments. */
    CHECK(gi_auth_url(NULL, "a", json, sizeof json, &len) == GI_ERR_INVALID_ARGUMENT);
    CHECK(gi_status_json(p, "example.com/40", json, sizeof json, NULL) == GI_ERR_INVALID_ARGUMENT);
    CHECK(gi_auth_url(p, NULL, json, sizeof json, &len) == GI_ERR_INVALID_ARGUMENT);
    CHECK(gi_auth_url(p, "bad\xff", json, sizeof json, &len) == GI_ERR_INVALID_ARGUMENT);
    CHECK(gi_auth_url(p, "tab\there", json, sizeof json, &len) == GI_ERR_INVALID_ARGUMENT);
    char long_account[300];
    memset(long_account, 'a', sizeof long_account - 1);
    long_account[sizeof long_account - 1] = '\0';
    CHECK(gi_auth_url(p, long_account, json, sizeof json, &len) == GI_ERR_INVALID_ARGUMENT);

    /* A forged state is refused; the account buffer is optional. */
    CHECK(gi_complete(p, "state=forged&code=4/abc", NULL, 0) == GI_ERR_STATE);
    CHECK(gi_complete(p, NULL, NULL, 0) == GI_ERR_INVALID_ARGUMENT);

    /* Lookups with no contacts: not found, and *out zeroed. */
    GiContact contact;
    memset(&contact, 0x5a, sizeof contact);
    CHECK(gi_lookup_contact(p, "example.com/40", "+12125550199", &contact) == GI_NOT_FOUND);
    CHECK(contact.name[0] == 0 && contact.account[0] == 0 && contact.number[0] == 0);
    CHECK(gi_lookup_contact(p, "example.com/40", "+12125550199", NULL) == GI_ERR_INVALID_ARGUMENT);
    CHECK(gi_lookup_contact(p, "example.com/40", "\xc3\x28", &contact) == GI_ERR_INVALID_ARGUMENT);
    /* Legal C: the arguments may be fields of the struct the call fills (an earlier answer
       re-resolved); they are read before it is zeroed. */
    strcpy(contact.account, "example.com/40");
    strcpy(contact.number, "+12125550199");
    CHECK(gi_lookup_contact(p, contact.account, contact.number, &contact) == GI_NOT_FOUND);

    /* The address book: count with out NULL and cap 0; bad input is named. */
    size_t count = 99, total = 99;
    CHECK(gi_search_contacts(p, "example.com/40", "", GI_SEARCH_TEXT, 0, NULL, 0, &count, &total) == GI_OK);
    CHECK(count == 0 && total == 0);
    GiContact rows[4];
    memset(rows, 0x5a, sizeof rows);
    CHECK(gi_search_contacts(p, "example.com/40", "m\xc3\xbcl", GI_SEARCH_TEXT, 0, rows, 4, &count, NULL) == GI_OK);
    CHECK(count == 0 && rows[0].name[0] == 0);
    CHECK(gi_search_contacts(p, "example.com/40", "6855", GI_SEARCH_KEYPAD, 0, rows, 4, NULL, NULL) == GI_OK);
    strcpy(rows[1].account, "example.com/40");
    strcpy(rows[1].name, "m\xc3\xbcl");
    CHECK(gi_search_contacts(p, rows[1].account, rows[1].name, GI_SEARCH_TEXT, 0, rows, 4, &count, &total) == GI_OK);
    CHECK(count == 0 && total == 0);
    CHECK(gi_search_contacts(p, "example.com/40", "68a", GI_SEARCH_KEYPAD, 0, rows, 4, &count, &total) == GI_ERR_INVALID_ARGUMENT);
    gi_last_error(err, sizeof err);
    CHECK(strstr(err, "keypad") != NULL);
    CHECK(gi_search_contacts(p, "example.com/40", "x", GI_SEARCH_TEXT, 0, NULL, 3, &count, &total) == GI_ERR_INVALID_ARGUMENT);
    CHECK(gi_search_contacts(p, "example.com/40", NULL, GI_SEARCH_TEXT, 0, rows, 4, &count, &total) == GI_ERR_INVALID_ARGUMENT);
    CHECK(gi_search_contacts(p, NULL, "x", GI_SEARCH_TEXT, 0, rows, 4, &count, &total) == GI_ERR_INVALID_ARGUMENT);
    CHECK(gi_search_contacts(p, "example.com/40", "bad\xff", GI_SEARCH_TEXT, 0, rows, 4, &count, &total) == GI_ERR_INVALID_ARGUMENT);
    /* A mode the enum does not name (C lets the host pass any value) is refused, named. */
    CHECK(gi_search_contacts(p, "example.com/40", "x", (GiSearchMode)2, 0, rows, 4, &count, &total) == GI_ERR_INVALID_ARGUMENT);
    gi_last_error(err, sizeof err);
    CHECK(strstr(err, "mode is 2") != NULL);

    /* Presence (no calendar fetched by this version) and backup's argument check. */
    int64_t until = 99;
    CHECK(gi_presence(p, "example.com/40", &until) == GI_PRESENCE_UNKNOWN && until == 0);
    CHECK(gi_presence(p, "example.com/40", NULL) == GI_PRESENCE_UNKNOWN);
    CHECK(gi_backup(p, NULL) == GI_ERR_INVALID_ARGUMENT);

    CHECK(gi_disable(p, "example.com/40") == GI_OK);
    CHECK(gi_sync_now(p, "example.com/40") == GI_ERR_INVALID_ARGUMENT);

    gi_close(p);
    gi_close(NULL);
    CHECK(log_lines > 0);
    gi_set_logger(NULL, NULL);

    if (failures == 0) {
        printf("abi_smoke: 1 passed, 0 failed\n");
        return 0;
    }
    printf("abi_smoke: 0 passed, 1 failed (%d checks)\n", failures);
    return 1;
}
