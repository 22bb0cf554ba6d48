/* gi_close while other threads are inside the plugin, as a PBX shutting down under load
 * would: lookups and status calls run on four threads, the main thread closes the plugin
 * under them, then keeps using the stale pointer. Built with -fsanitize=address,undefined:
 * a use-after-free, a data race on freed memory or a crash fails it.
 * Usage: close_race DATA_DIR ACCOUNT NUMBER (a number the stored contacts have). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "google_integration.h"

#define THREADS 4

static GiPlugin *plugin;
static const char *account;
static const char *number;
static atomic_long calls_before_close;
static atomic_int failures;
static atomic_int found_before_close;

static void *hammer(void *arg) {
    int status_thread = (int)(size_t)arg == 0;
    int search_thread = (int)(size_t)arg == 1;
    for (;;) {
        GiResult r;
        if (search_thread) {
            GiContact rows[2];
            size_t count = 0, total = 0;
            r = gi_search_contacts(plugin, account, "", GI_SEARCH_TEXT, 0, rows, 2, &count, &total);
            if (r == GI_OK && (total == 0 || count == 0 || rows[0].name[0] == 0)) {
                fprintf(stderr, "search before close: %zu of %zu\n", count, total);
                atomic_fetch_add(&failures, 1);
            }
        } else if (status_thread) {
            char json[1024];
            size_t len = 0;
            r = gi_status_json(plugin, account, json, sizeof json, &len);
            if (r == GI_OK && strstr(json, "\"status\":\"connected\"") == NULL) {
                fprintf(stderr, "status before close: %s\n", json);
                atomic_fetch_add(&failures, 1);
            }
        } else {
            GiContact who;
            r = gi_lookup_contact(plugin, account, number, &who);
            if (r == GI_OK) {
                atomic_store(&found_before_close, 1);
                if (who.name[0] == 0) atomic_fetch_add(&failures, 1);
            }
        }
        if (r == GI_ERR_INVALID_ARGUMENT) {
            char err[256];
            gi_last_error(err, sizeof err);
            if (strstr(err, "closed") == NULL) {
                fprintf(stderr, "after close: %s\n", err);
                atomic_fetch_add(&failures, 1);
            }
            return NULL; /* the plugin is closed: the expected end */
        }
        if (r != GI_OK) {
            fprintf(stderr, "unexpected result %d while open\n", (int)r);
            atomic_fetch_add(&failures, 1);
            return NULL;
        }
        atomic_fetch_add(&calls_before_close, 1);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s DATA_DIR ACCOUNT NUMBER\n", argv[0]);
        return 2;
    }
    account = argv[2];
    number = argv[3];
    char config[1024];
    snprintf(config, sizeof config,
             "{\"client_id\":\"c-test.apps.googleusercontent.com\",\"client_secret\":\"s3cret\","
             "\"redirect_uri\":\"http://127.0.0.1:9/google/callback\",\"data_dir\":\"%s\","
             "\"sync_interval_secs\":3600,"
             "\"google\":{\"auth_url\":\"http://127.0.0.1:9/auth\",\"token_url\":\"http://127.0.0.1:9/token\","
             "\"revoke_url\":\"http://127.0.0.1:9/revoke\",\"people_url\":\"http://127.0.0.1:9\"}}",
             argv[1]);
    plugin = gi_open(config);
    if (plugin == NULL) {
        char err[512];
        gi_last_error(err, sizeof err);
        fprintf(stderr, "gi_open: %s\n", err);
        return 1;
    }

    pthread_t threads[THREADS];
    for (size_t i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, hammer, (void *)i);
    /* Let every thread get going, so the close lands among calls in flight. */
    while (atomic_load(&calls_before_close) < 20000) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    gi_close(plugin);
    for (size_t i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);

    /* The stale pointer: every call fails cleanly and says why. */
    gi_close(plugin);
    char err[256];
    gi_last_error(err, sizeof err);
    if (strstr(err, "closed") == NULL) atomic_fetch_add(&failures, 1);
    GiContact who;
    memset(&who, 0x5a, sizeof who);
    if (gi_lookup_contact(plugin, account, number, &who) != GI_ERR_INVALID_ARGUMENT) atomic_fetch_add(&failures, 1);
    if (who.name[0] != 0) atomic_fetch_add(&failures, 1); /* *out zeroed even then */
    if (gi_status(plugin, account) != GI_STATUS_DISCONNECTED) atomic_fetch_add(&failures, 1);
    if (gi_sync_now(plugin, account) != GI_ERR_INVALID_ARGUMENT) atomic_fetch_add(&failures, 1);
    size_t len = 0;
    if (gi_auth_url(plugin, account, NULL, 0, &len) != GI_ERR_INVALID_ARGUMENT) atomic_fetch_add(&failures, 1);
    if (!atomic_load(&found_before_close)) {
        fprintf(stderr, "the number was never found before the close\n");
        atomic_fetch_add(&failures, 1);
    }

    /* The data_dir is free again: a new plugin opens on it. */
    GiPlugin *again = gi_open(config);
    if (again == NULL) {
        gi_last_error(err, sizeof err);
        fprintf(stderr, "reopen: %s\n", err);
        atomic_fetch_add(&failures, 1);
    } else {
        if (gi_lookup_contact(again, account, number, &who) != GI_OK) atomic_fetch_add(&failures, 1);
        gi_close(again);
    }

    int failed = atomic_load(&failures);
    printf("close_race: %ld calls before the close\n", atomic_load(&calls_before_close));
    if (failed == 0) {
        printf("close_race: 1 passed, 0 failed\n");
        return 0;
    }
    printf("close_race: 0 passed, 1 failed (%d checks)\n", failed);
    return 1;
}
