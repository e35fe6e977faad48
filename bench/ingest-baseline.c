/*
 * The yardstick for cm-api's ingest in `make bench`: the least a program can do with librdkafka
 * and libmongoc to move purchase events from Kafka into MongoDB with the same guarantees, so that
 * cm-api's rate can be read as a fraction of what the two C libraries allow on this machine.
 *
 *   ingest-baseline produce BROKERS TOPIC COUNT
 *       COUNT valid purchase events (the contract's JSON, key = userid, 100 users), produced
 *       idempotently with acks=all; prints the seconds it took.
 *   ingest-baseline consume BROKERS TOPIC GROUP MONGODB_URI DATABASE COLLECTION BATCH COUNT
 *       Creates cm-api's two indexes, then consumes in batches of BATCH: each event's JSON parsed
 *       by libbson, the same document cm-api stores built (_id = purchaseId, Decimal128 price, BSON
 *       dates, partition, offset), one unordered bulk insert per batch with cm-api's write concern
 *       (majority, journaled; a duplicate key is not an error), then a synchronous offset commit.
 *       Stops after COUNT events stored and prints "stored N in S s: R events/s", timed from the
 *       program's start like cm-api's.
 *
 * What it leaves out, and cm-api does not: validating each event against the contract, the
 * dead-letter topic, metrics, MongoDB outage handling, pausing, graceful shutdown.
 */
#define _GNU_SOURCE
#include <bson/bson.h>
#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "ingest-baseline: %s: %s\n", what, detail);
    exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char error[512];
    if (rd_kafka_conf_set(conf, name, value, error, sizeof error) != RD_KAFKA_CONF_OK) die(name, error);
}

/* RFC 3339 UTC with milliseconds, as the contract writes it: 2024-05-31T15:54:32.204Z. */
static int64_t parse_timestamp(const char *text) {
    struct tm tm = {0};
    int millis = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &millis) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + millis;
}

static int produce(const char *brokers, const char *topic, long count) {
    char error[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", brokers);
    set(conf, "enable.idempotence", "true");
    set(conf, "acks", "all");
    set(conf, "linger.ms", "5");
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (!producer) die("producer", error);

    double start = now_seconds();
    unsigned long long seed = 0x5eed;
    for (long i = 0; i < count; i++) {
        char userid[16], value[512], id[40];
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned long long a = seed;
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned long long b = seed;
        snprintf(id, sizeof id, "%08llX-%04llX-4%03llX-8%03llX-%012llX", a >> 32, (a >> 16) & 0xffff,
                 a & 0xfff, (b >> 48) & 0xfff, b & 0xffffffffffffULL);
        snprintf(userid, sizeof userid, "u-%ld", i % 100);
        int length = snprintf(value, sizeof value,
                              "{\"schemaVersion\":1,\"purchaseId\":\"%s\",\"username\":\"user%ld\","
                              "\"userid\":\"%s\",\"price\":\"%ld.%02ld\",\"timestamp\":"
                              "\"2024-05-31T15:%02ld:%02ld.%03ldZ\",\"receivedAt\":\"2024-05-31T16:00:00.000Z\"}",
                              id, i % 100, userid, i % 5000, i % 100, (i / 60000) % 60, (i / 1000) % 60, i % 1000);
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(userid, strlen(userid)),
                RD_KAFKA_V_VALUE(value, (size_t)length), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce", rd_kafka_err2str(err));
            rd_kafka_poll(producer, 10);
        }
        rd_kafka_poll(producer, 0);
    }
    if (rd_kafka_flush(producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) die("flush", "timed out");
    if (rd_kafka_outq_len(producer) != 0) die("flush", "messages left undelivered");
    printf("produced %ld in %.2f s\n", count, now_seconds() - start);
    rd_kafka_destroy(producer);
    return 0;
}

/* The same document StoredPurchase builds; false when the event is not what the contract says. */
static bool build_document(const rd_kafka_message_t *message, bson_t *document) {
    bson_error_t error;
    bson_t *event = bson_new_from_json(message->payload, (ssize_t)message->len, &error);
    if (!event) return false;
    bson_iter_t iter;
    const char *id = NULL, *username = NULL, *userid = NULL, *price = NULL, *timestamp = NULL, *received = NULL;
    if (bson_iter_init(&iter, event)) {
        while (bson_iter_next(&iter)) {
            const char *key = bson_iter_key(&iter);
            if (!BSON_ITER_HOLDS_UTF8(&iter)) continue;
            const char *value = bson_iter_utf8(&iter, NULL);
            if (!strcmp(key, "purchaseId")) id = value;
            else if (!strcmp(key, "username")) username = value;
            else if (!strcmp(key, "userid")) userid = value;
            else if (!strcmp(key, "price")) price = value;
            else if (!strcmp(key, "timestamp")) timestamp = value;
            else if (!strcmp(key, "receivedAt")) received = value;
        }
    }
    bson_decimal128_t decimal;
    bool ok = id && username && userid && price && timestamp && received &&
              bson_decimal128_from_string(price, &decimal);
    if (ok) {
        BSON_APPEND_UTF8(document, "_id", id);
        BSON_APPEND_UTF8(document, "username", username);
        BSON_APPEND_UTF8(document, "userid", userid);
        BSON_APPEND_DECIMAL128(document, "price", &decimal);
        BSON_APPEND_DATE_TIME(document, "timestamp", parse_timestamp(timestamp));
        BSON_APPEND_DATE_TIME(document, "receivedAt", parse_timestamp(received));
        BSON_APPEND_INT32(document, "partition", message->partition);
        BSON_APPEND_INT64(document, "offset", message->offset);
    }
    bson_destroy(event);
    return ok;
}

/* Duplicate keys (11000) are redeliveries already stored: the only write errors that are not failures. */
static bool only_duplicate_keys(const bson_t *reply) {
    bson_iter_t iter, errors, entry;
    if (bson_iter_init_find(&iter, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&iter) &&
        bson_iter_recurse(&iter, &errors) && bson_iter_next(&errors))
        return false;
    if (!bson_iter_init_find(&iter, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&iter) ||
        !bson_iter_recurse(&iter, &errors))
        return false;
    bool any = false;
    while (bson_iter_next(&errors)) {
        if (!bson_iter_recurse(&errors, &entry) || !bson_iter_find(&entry, "code") || bson_iter_as_int64(&entry) != 11000)
            return false;
        any = true;
    }
    return any;
}

static void create_indexes(mongoc_database_t *database, const char *collection) {
    bson_t *command = BCON_NEW(
        "createIndexes", BCON_UTF8(collection), "indexes", "[",
        "{", "key", "{", "username", BCON_INT32(1), "timestamp", BCON_INT32(-1), "_id", BCON_INT32(-1), "}",
        "name", BCON_UTF8("username_timestamp_id"), "}",
        "{", "key", "{", "userid", BCON_INT32(1), "timestamp", BCON_INT32(-1), "}",
        "name", BCON_UTF8("userid_timestamp"), "}", "]");
    bson_error_t error;
    if (!mongoc_database_write_command_with_opts(database, command, NULL, NULL, &error))
        die("createIndexes", error.message);
    bson_destroy(command);
}

static int consume(char **argv) {
    const char *brokers = argv[2], *topic = argv[3], *group = argv[4], *uri = argv[5];
    const char *database = argv[6], *collection_name = argv[7];
    long batch_size = atol(argv[8]), count = atol(argv[9]);
    if (batch_size < 1 || count < 1) die("usage", "BATCH and COUNT must be positive");
    double start = now_seconds();

    mongoc_init();
    bson_error_t error;
    mongoc_uri_t *mongo_uri = mongoc_uri_new_with_error(uri, &error);
    if (!mongo_uri) die("MONGODB_URI", error.message);
    mongoc_client_t *client = mongoc_client_new_from_uri(mongo_uri);
    mongoc_database_t *db = mongoc_client_get_database(client, database);
    create_indexes(db, collection_name);
    mongoc_collection_t *collection = mongoc_database_get_collection(db, collection_name);

    char kafka_error[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", brokers);
    set(conf, "group.id", group);
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "enable.auto.commit", "false");
    set(conf, "partition.assignment.strategy", "cooperative-sticky");
    rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kafka_error, sizeof kafka_error);
    if (!consumer) die("consumer", kafka_error);
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(consumer, topics)) die("subscribe", topic);
    rd_kafka_topic_partition_list_destroy(topics);

    long stored = 0;
    rd_kafka_message_t **batch = calloc((size_t)batch_size, sizeof *batch);
    while (stored < count) {
        long filled = 0;
        double deadline = now_seconds() + 0.05;
        while (filled < batch_size && now_seconds() < deadline) {
            rd_kafka_message_t *message = rd_kafka_consumer_poll(consumer, 10);
            if (!message) continue;
            if (message->err) {
                if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    fprintf(stderr, "ingest-baseline: consume: %s\n", rd_kafka_message_errstr(message));
                rd_kafka_message_destroy(message);
                continue;
            }
            batch[filled++] = message;
        }
        if (filled == 0) continue;

        /* The write concern cm-api asks for: durable before the offsets are committed. */
        bson_t *bulk_opts = BCON_NEW("ordered", BCON_BOOL(false), "writeConcern", "{", "w", BCON_UTF8("majority"),
                                     "j", BCON_BOOL(true), "wtimeout", BCON_INT64(10000), "}");
        mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(collection, bulk_opts);
        bson_destroy(bulk_opts);
        long documents = 0;
        for (long i = 0; i < filled; i++) {
            bson_t *document = bson_new();
            if (build_document(batch[i], document)) {
                if (!mongoc_bulk_operation_insert_with_opts(bulk, document, NULL, &error)) die("insert", error.message);
                documents++;
            }
            bson_destroy(document);
        }
        if (documents > 0) {
            bson_t reply;
            if (!mongoc_bulk_operation_execute(bulk, &reply, &error) && !only_duplicate_keys(&reply))
                die("bulk insert", error.message);
            bson_destroy(&reply);
        }
        mongoc_bulk_operation_destroy(bulk);

        /* Offsets move only after MongoDB acknowledged the batch: commit each partition's next offset. */
        rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new((int)filled);
        for (long i = 0; i < filled; i++) {
            rd_kafka_topic_partition_t *entry = rd_kafka_topic_partition_list_find(
                offsets, rd_kafka_topic_name(batch[i]->rkt), batch[i]->partition);
            if (!entry) entry = rd_kafka_topic_partition_list_add(offsets, rd_kafka_topic_name(batch[i]->rkt),
                                                                  batch[i]->partition);
            if (batch[i]->offset + 1 > entry->offset) entry->offset = batch[i]->offset + 1;
            rd_kafka_message_destroy(batch[i]);
        }
        rd_kafka_resp_err_t err = rd_kafka_commit(consumer, offsets, 0);
        if (err) fprintf(stderr, "ingest-baseline: commit: %s\n", rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(offsets);
        stored += documents;
    }
    double elapsed = now_seconds() - start;
    printf("stored %ld in %.2f s: %.0f events/s\n", stored, elapsed, (double)stored / elapsed);

    free(batch);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    mongoc_collection_destroy(collection);
    mongoc_database_destroy(db);
    mongoc_client_destroy(client);
    mongoc_uri_destroy(mongo_uri);
    mongoc_cleanup();
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "produce")) return produce(argv[2], argv[3], atol(argv[4]));
    if (argc == 10 && !strcmp(argv[1], "consume")) return consume(argv);
    fprintf(stderr,
            "usage: ingest-baseline produce BROKERS TOPIC COUNT\n"
            "       ingest-baseline consume BROKERS TOPIC GROUP MONGODB_URI DATABASE COLLECTION BATCH COUNT\n");
    return 2;
}
