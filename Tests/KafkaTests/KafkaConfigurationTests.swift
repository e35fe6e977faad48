import Testing

@testable import Kafka

/// The librdkafka properties the consumer's settings become.
@Suite struct KafkaConsumerConfigurationTests {
    let kafka = KafkaConfiguration(bootstrapServers: ["k:1"])

    @Test func prefetchIsBoundedAndTheFetchWaitIsLibrdkafkasUnlessSet() {
        let defaults = KafkaConsumerConfiguration(kafka: kafka, groupID: "g")
        // librdkafka's own default is 65536 (64 MB), which doubled cm-api's memory under a backlog.
        #expect(defaults.properties["queued.max.messages.kbytes"] == "16384")
        #expect(defaults.properties["fetch.wait.max.ms"] == "500")
        #expect(defaults.properties["enable.auto.offset.store"] == "false", "offsets move only when processed")

        var tuned = defaults
        tuned.fetchMaximumWait = .milliseconds(10)
        tuned.prefetchMaximumKilobytes = 4096
        #expect(tuned.properties["fetch.wait.max.ms"] == "10")
        #expect(tuned.properties["queued.max.messages.kbytes"] == "4096")
    }

    @Test func additionalPropertiesWinOverTheTypedSettings() {
        var kafka = kafka
        kafka.additionalProperties = ["queued.max.messages.kbytes": "1024"]
        #expect(
            KafkaConsumerConfiguration(kafka: kafka, groupID: "g").properties["queued.max.messages.kbytes"] == "1024")
    }
}

/// The librdkafka properties the producer's settings become.
@Suite struct KafkaProducerConfigurationTests {
    let kafka = KafkaConfiguration(bootstrapServers: ["k:1"])

    @Test func safetyAndReconnectSettingsReachLibrdkafka() {
        let defaults = KafkaProducerConfiguration(kafka: kafka)
        #expect(defaults.properties["enable.idempotence"] == "true")
        #expect(defaults.properties["acks"] == "all")
        // librdkafka's default is 10 s: a producer would keep failing that long after a broker is back.
        #expect(defaults.properties["reconnect.backoff.max.ms"] == "1000")

        var tuned = defaults
        tuned.reconnectBackoffMaximum = .milliseconds(250)
        tuned.deliveryTimeout = .seconds(3)
        #expect(tuned.properties["reconnect.backoff.max.ms"] == "250")
        #expect(tuned.properties["message.timeout.ms"] == "3000")
    }
}
