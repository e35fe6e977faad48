// go-twin: the Go reference make bench measures the shop against (issue 31). One process doing
// cm-server's POST /buy (the same validation, producer settings, event and answers) and cm-api's
// GET /buyList/{username} (the same query, page and item shape), written the way a Go service
// would be: net/http, encoding/json, confluent-kafka-go over the same librdkafka, and the
// official MongoDB driver. Debian's Go 1.19 builds it offline in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-twin ./bench/go-twin
//
// Environment: PORT (default 3002), KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_LINGER_MS (default 1),
// KAFKA_DELIVERY_TIMEOUT_MS (default 10000), MONGODB_URI, MONGODB_DB, MONGODB_COLLECTION.
//
// Not twinned (make bench sends none of it): Idempotency-Key, authentication, rate limits,
// ETags, metrics, tracing, the shop page, readiness beyond /healthz. bench/twins.py checks that
// both answer the same to the same requests.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/confluentinc/confluent-kafka-go/kafka"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

const maximumBodyBytes = 16 * 1024

type fieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

type errorAnswer struct {
	Status  string       `json:"status"`
	Message string       `json:"message"`
	Errors  []fieldError `json:"errors"`
}

type unacknowledgedAnswer struct {
	Status            string       `json:"status"`
	Message           string       `json:"message"`
	Errors            []fieldError `json:"errors"`
	PurchaseID        string       `json:"purchaseId"`
	PossiblyPersisted bool         `json:"possiblyPersisted"`
}

type buyAnswer struct {
	Status     string `json:"status"`
	Message    string `json:"message"`
	PurchaseID string `json:"purchaseId"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
}

// The Kafka value, members in the order cm-server writes them.
type purchaseEvent struct {
	Price         string `json:"price"`
	PurchaseID    string `json:"purchaseId"`
	ReceivedAt    string `json:"receivedAt"`
	SchemaVersion int    `json:"schemaVersion"`
	Timestamp     string `json:"timestamp"`
	Userid        string `json:"userid"`
	Username      string `json:"username"`
}

type listItem struct {
	ID         string `json:"_id"`
	PurchaseID string `json:"purchaseId"`
	Username   string `json:"username"`
	Userid     string `json:"userid"`
	Price      string `json:"price"`
	Timestamp  string `json:"timestamp"`
}

type listPage struct {
	Status     string     `json:"status"`
	Purchases  []listItem `json:"purchases"`
	NextCursor *string    `json:"nextCursor,omitempty"`
}

type storedPurchase struct {
	ID        string               `bson:"_id"`
	Username  string               `bson:"username"`
	Userid    string               `bson:"userid"`
	Price     primitive.Decimal128 `bson:"price"`
	Timestamp primitive.DateTime   `bson:"timestamp"`
}

type server struct {
	producer   *kafka.Producer
	topic      string
	purchases  *mongo.Collection
	readWait   time.Duration
	maxFuture  time.Duration
	dryRunJSON []byte
}

func main() {
	brokers := os.Getenv("KAFKA_BROKERS")
	if brokers == "" {
		log.Fatal("KAFKA_BROKERS is required")
	}
	producer, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers":            brokers,
		"client.id":                    "go-twin",
		"enable.idempotence":           true,
		"acks":                         "all",
		"message.timeout.ms":           envInt("KAFKA_DELIVERY_TIMEOUT_MS", 10000),
		"linger.ms":                    envInt("KAFKA_LINGER_MS", 1),
		"batch.num.messages":           10000,
		"compression.type":             "none",
		"queue.buffering.max.messages": 100000,
		"reconnect.backoff.max.ms":     1000,
	})
	if err != nil {
		log.Fatalf("Kafka producer: %v", err)
	}
	// Errors the client reports outside a delivery (a broker down) are logged, as cm-server does.
	go func() {
		for event := range producer.Events() {
			if kafkaError, ok := event.(kafka.Error); ok {
				log.Printf("Kafka: %v", kafkaError)
			}
		}
	}()
	client, err := mongo.Connect(context.Background(), options.Client().ApplyURI(env("MONGODB_URI", "mongodb://localhost:27017")))
	if err != nil {
		log.Fatalf("MongoDB: %v", err)
	}
	s := &server{
		producer:   producer,
		topic:      env("KAFKA_TOPIC", "scalable-shop-purchases"),
		purchases:  client.Database(env("MONGODB_DB", "scalable-shop")).Collection(env("MONGODB_COLLECTION", "purchases")),
		readWait:   2 * time.Second,
		maxFuture:  24 * time.Hour,
		dryRunJSON: []byte(`{"status":"Ok!","message":"Valid purchase (dry run, not sent)"}`),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/buy", s.buy)
	mux.HandleFunc("/buyList/", s.buyList)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Success")
	})
	address := ":" + env("PORT", "3002")
	log.Printf("go-twin listening on %s", address)
	log.Fatal(http.ListenAndServe(address, mux))
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func envInt(name string, fallback int) int {
	if value, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return value
	}
	return fallback
}

func writeJSON(w http.ResponseWriter, status int, value interface{}) {
	var buffer bytes.Buffer
	encoder := json.NewEncoder(&buffer)
	encoder.SetEscapeHTML(false)
	encoder.Encode(value)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(bytes.TrimSuffix(buffer.Bytes(), []byte("\n")))
}

func writeError(w http.ResponseWriter, status int, message string, errors []fieldError) {
	if errors == nil {
		errors = []fieldError{}
	}
	writeJSON(w, status, errorAnswer{Status: "Error", Message: message, Errors: errors})
}

// application/json in any case, with parameters, as cm-server's isJSON.
func isJSON(contentType string) bool {
	media := strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0])
	return strings.EqualFold(media, "application/json")
}

func (s *server) buy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, "Not found", nil)
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json", nil)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maximumBodyBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "Malformed JSON: the body could not be read", nil)
		return
	}
	if len(body) > maximumBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body is larger than %d bytes", maximumBodyBytes), nil)
		return
	}
	receivedAt := time.Now().UTC().Truncate(time.Millisecond)
	dryRun, dryRunError := false, []fieldError(nil)
	if r.URL.RawQuery != "" {
		switch values, present := r.URL.Query()["dryRun"]; {
		case !present || values[0] == "false":
		case values[0] == "true":
			dryRun = true
		default:
			dryRunError = []fieldError{{"dryRun", "must be true or false"}}
		}
	}
	purchase, errs, malformed := parsePurchase(body, receivedAt, s.maxFuture)
	if malformed != "" {
		writeError(w, http.StatusBadRequest, "Malformed JSON: "+malformed, nil)
		return
	}
	errs = append(errs, dryRunError...)
	if len(errs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "Invalid purchase", errs)
		return
	}
	if dryRun {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(s.dryRunJSON)
		return
	}
	purchase.PurchaseID = newPurchaseID()
	purchase.ReceivedAt = rfc3339(receivedAt)
	purchase.SchemaVersion = 1
	var value bytes.Buffer
	encoder := json.NewEncoder(&value)
	encoder.SetEscapeHTML(false)
	encoder.Encode(purchase)
	deliveries := make(chan kafka.Event, 1)
	err = s.producer.Produce(&kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &s.topic, Partition: kafka.PartitionAny},
		Key:            []byte(purchase.Userid),
		Value:          bytes.TrimSuffix(value.Bytes(), []byte("\n")),
	}, deliveries)
	if err == nil {
		report := (<-deliveries).(*kafka.Message)
		err = report.TopicPartition.Error
		if err == nil {
			writeJSON(w, http.StatusOK, buyAnswer{
				Status: "Ok!", Message: "Message successfully sent to Kafka!", PurchaseID: purchase.PurchaseID,
				Partition: report.TopicPartition.Partition, Offset: int64(report.TopicPartition.Offset),
			})
			return
		}
	}
	w.Header().Set("Retry-After", "1")
	var kafkaError kafka.Error
	possibly := errors.As(err, &kafkaError) && kafkaError.Code() == kafka.ErrMsgTimedOut
	writeJSON(w, http.StatusServiceUnavailable, unacknowledgedAnswer{
		Status: "Error", Message: "Kafka did not acknowledge the purchase: " + err.Error(), Errors: []fieldError{},
		PurchaseID: purchase.PurchaseID, PossiblyPersisted: possibly,
	})
}

// parsePurchase applies cm-server's rules (docs/CONTRACT.md, "Purchase"): one reason per field,
// the first rule it breaks; a field given twice is refused; unknown fields are ignored.
func parsePurchase(body []byte, receivedAt time.Time, maxFuture time.Duration) (purchaseEvent, []fieldError, string) {
	var event purchaseEvent
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.UseNumber()
	var top interface{}
	if err := decoder.Decode(&top); err != nil {
		return event, nil, err.Error()
	}
	if _, err := decoder.Token(); err != io.EOF {
		return event, nil, "data after the JSON value"
	}
	if _, ok := top.(map[string]interface{}); !ok {
		return event, []fieldError{{"body", "must be a JSON object"}}, ""
	}
	var errs []fieldError
	report := func(field, reason string) {
		for _, e := range errs {
			if e.Field == field {
				return
			}
		}
		errs = append(errs, fieldError{field, reason})
	}
	fields := map[string]interface{}{}
	present := map[string]bool{}
	// The members again, in order, to see a field given twice (a map keeps the last).
	members := json.NewDecoder(bytes.NewReader(body))
	members.UseNumber()
	members.Token()
	for members.More() {
		token, _ := members.Token()
		key := token.(string)
		var value interface{}
		members.Decode(&value)
		switch key {
		case "username", "userid", "price", "timestamp":
			if present[key] {
				report(key, "must appear only once")
			}
			present[key] = true
			fields[key] = value
		}
	}
	name := func(field string) string {
		switch value := fields[field].(type) {
		case nil:
			report(field, "is required")
		case string:
			if violation := nameViolation(value); violation != "" {
				report(field, violation)
			}
			return value
		default:
			report(field, "must be a string")
		}
		return ""
	}
	event.Username = name("username")
	event.Userid = name("userid")
	switch value := fields["price"].(type) {
	case nil:
		report("price", "is required")
	case string:
		if price, reason := parsePrice(value, false); reason != "" {
			report("price", reason)
		} else {
			event.Price = price
		}
	case json.Number:
		if price, reason := parsePrice(string(value), true); reason != "" {
			report("price", reason)
		} else {
			event.Price = price
		}
	default:
		report("price", "must be a string or a number")
	}
	event.Timestamp = rfc3339(receivedAt)
	switch value := fields["timestamp"].(type) {
	case nil:
	case string:
		given, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			report("timestamp", "must be an RFC 3339 date-time with a zone, such as \"2024-05-31T15:54:32.204Z\"")
			break
		}
		given = given.UTC()
		if given.Before(time.Unix(0, 0)) {
			report("timestamp", "must not be before 1970-01-01T00:00:00Z")
		} else if given.Truncate(time.Millisecond).After(receivedAt.Add(maxFuture)) {
			report("timestamp", fmt.Sprintf("must not be more than 24 hours after the server's time (%s)", rfc3339(receivedAt)))
		}
		event.Timestamp = rfc3339(given)
	default:
		report("timestamp", "must be a string")
	}
	return event, errs, ""
}

func nameViolation(value string) string {
	if len(value) == 0 {
		return "must not be empty"
	}
	if len(value) > 128 {
		return fmt.Sprintf("must be at most 128 UTF-8 bytes (got %d)", len(value))
	}
	for _, r := range value {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

var maxHundredths = new(big.Int).SetUint64(1<<63 - 1)

// parsePrice: a plain decimal (digits, optionally a point and digits) or, from a JSON number,
// one with an exponent; exact, non-negative, at most 2 fraction digits once trailing zeros are
// dropped. Returned with exactly two fraction digits.
func parsePrice(text string, number bool) (string, string) {
	const notADecimal = "must be a decimal amount such as \"1195.30\""
	negative := strings.HasPrefix(text, "-")
	rest := strings.TrimPrefix(text, "-")
	mantissa, exponent := rest, 0
	if number {
		if marker := strings.IndexAny(rest, "eE"); marker >= 0 {
			mantissa = rest[:marker]
			value, err := strconv.Atoi(rest[marker+1:])
			if err != nil {
				value = 1000000
				if strings.HasPrefix(rest[marker+1:], "-") {
					value = -1000000
				}
			}
			exponent = value
		}
	}
	integer, fraction := mantissa, ""
	if point := strings.IndexByte(mantissa, '.'); point >= 0 {
		integer, fraction = mantissa[:point], mantissa[point+1:]
		if fraction == "" {
			return "", notADecimal
		}
	}
	if integer == "" || strings.Trim(integer, "0123456789") != "" || strings.Trim(fraction, "0123456789") != "" {
		return "", notADecimal
	}
	if negative {
		return "", "must not be negative"
	}
	digits := strings.TrimLeft(integer+fraction, "0")
	scale := exponent - len(fraction)
	for strings.HasSuffix(digits, "0") {
		digits = digits[:len(digits)-1]
		scale++
	}
	if digits == "" {
		return "0.00", ""
	}
	if scale < -2 {
		return "", "must have at most 2 fraction digits"
	}
	if len(digits)+scale+2 > 19 {
		return "", "must be at most 92233720368547758.07"
	}
	hundredths, _ := new(big.Int).SetString(digits+strings.Repeat("0", scale+2), 10)
	if hundredths.Cmp(maxHundredths) > 0 {
		return "", "must be at most 92233720368547758.07"
	}
	return formatHundredths(hundredths), ""
}

func formatHundredths(hundredths *big.Int) string {
	units, cents := new(big.Int).QuoRem(hundredths, big.NewInt(100), new(big.Int))
	return fmt.Sprintf("%s.%02d", units.String(), cents.Int64())
}

func rfc3339(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func newPurchaseID() string {
	var id [16]byte
	rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	text := hex.EncodeToString(id[:])
	return text[:8] + "-" + text[8:12] + "-" + text[12:16] + "-" + text[16:20] + "-" + text[20:]
}

func (s *server) buyList(w http.ResponseWriter, r *http.Request) {
	escaped := strings.TrimPrefix(r.URL.EscapedPath(), "/buyList/")
	username, err := url.PathUnescape(escaped)
	if r.Method != http.MethodGet || escaped == "" || strings.Contains(escaped, "/") {
		writeError(w, http.StatusNotFound, "Not found", nil)
		return
	}
	var errs []fieldError
	if err != nil || !utf8.ValidString(username) {
		errs = append(errs, fieldError{"username", "must be percent-encoded UTF-8"})
	} else if violation := nameViolation(username); violation != "" {
		errs = append(errs, fieldError{"username", violation})
	}
	query := r.URL.Query()
	limit := 100
	if values, ok := query["limit"]; ok {
		value, err := strconv.Atoi(values[0])
		if err != nil || strings.Trim(values[0], "0123456789") != "" || value < 1 || value > 1000 {
			errs = append(errs, fieldError{"limit", "must be a whole number from 1 to 1000"})
		} else {
			limit = value
		}
	}
	filter := bson.D{{Key: "username", Value: username}}
	if values, ok := query["cursor"]; ok {
		milliseconds, id, valid := decodeCursor(values[0])
		if !valid {
			errs = append(errs, fieldError{"cursor", "must be a nextCursor from a previous page"})
		} else {
			at := primitive.DateTime(milliseconds)
			filter = append(filter, bson.E{Key: "$or", Value: bson.A{
				bson.D{{Key: "timestamp", Value: bson.D{{Key: "$lt", Value: at}}}},
				bson.D{{Key: "timestamp", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: id}}}},
			}})
		}
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, "Invalid request", errs)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.readWait)
	defer cancel()
	found, err := s.purchases.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "timestamp", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(limit+1)).SetMaxTime(s.readWait))
	var documents []storedPurchase
	if err == nil {
		err = found.All(ctx, &documents)
	}
	if err != nil {
		log.Printf("MongoDB read failed: %v", err)
		writeError(w, http.StatusServiceUnavailable, "The purchase list is unavailable: MongoDB failed", nil)
		return
	}
	page := listPage{Status: "Ok!", Purchases: make([]listItem, 0, limit)}
	for index, document := range documents {
		if index == limit {
			last := documents[limit-1]
			cursor := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d.%s", int64(last.Timestamp), last.ID)))
			page.NextCursor = &cursor
			break
		}
		price, ok := decimalPrice(document.Price)
		if !ok {
			log.Printf("document %s: price is not an amount with at most 2 fraction digits", document.ID)
			continue
		}
		page.Purchases = append(page.Purchases, listItem{
			ID: document.ID, PurchaseID: document.ID, Username: document.Username, Userid: document.Userid,
			Price: price, Timestamp: rfc3339(document.Timestamp.Time()),
		})
	}
	writeJSON(w, http.StatusOK, page)
}

func decodeCursor(cursor string) (int64, string, bool) {
	if cursor == "" || len(cursor) > 256 {
		return 0, "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(cursor, "="))
	if err != nil {
		return 0, "", false
	}
	parts := strings.SplitN(string(raw), ".", 2)
	if len(parts) != 2 || len(parts[1]) != 36 || strings.ToLower(parts[1]) != parts[1] {
		return 0, "", false
	}
	milliseconds, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return milliseconds, parts[1], true
}

// decimalPrice: the Decimal128 as an amount with two fraction digits, exactly, as cm-api reads it.
func decimalPrice(value primitive.Decimal128) (string, bool) {
	significand, exponent, err := value.BigInt()
	if err != nil || significand.Sign() < 0 {
		return "", false
	}
	hundredths := new(big.Int).Set(significand)
	if exponent >= -2 {
		hundredths.Mul(hundredths, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exponent+2)), nil))
	} else {
		divisor := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-exponent-2)), nil)
		quotient, remainder := new(big.Int).QuoRem(hundredths, divisor, new(big.Int))
		if remainder.Sign() != 0 {
			return "", false
		}
		hundredths = quotient
	}
	if hundredths.Cmp(maxHundredths) > 0 {
		return "", false
	}
	return formatHundredths(hundredths), true
}
