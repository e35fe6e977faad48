public import PurchaseDomain

extension Purchase {
    /// Reads and validates a purchase from a JSON request body (see ``PurchaseRequest``).
    public init(
        json: [UInt8], receivedAt: Timestamp, timestampRule: TimestampRule = TimestampRule()
    ) throws(PurchaseDecodingError) {
        self = try PurchaseRequest(json: json, receivedAt: receivedAt, timestampRule: timestampRule).purchase
    }
}

extension PurchaseRequest {
    /// Reads and validates a purchase from a JSON request body.
    ///
    /// Unknown members are ignored. Every broken rule is reported, one reason per field.
    /// - Parameters:
    ///   - json: the request body.
    ///   - receivedAt: the server's receive time, used when the body has no `timestamp`.
    ///   - timestampRule: how far from `receivedAt` a given `timestamp` may be.
    public init(
        json: [UInt8], receivedAt: Timestamp, timestampRule: TimestampRule = TimestampRule()
    ) throws(PurchaseDecodingError) {
        let members: [(key: String, value: JSONReader.Value)]?
        do {
            members = try JSONReader.readTopLevel(json)
        } catch {
            throw .malformedJSON(error.description)
        }
        guard let members else {
            throw .invalid([FieldError(field: "body", reason: "must be a JSON object")])
        }
        // The four fields by position in `fieldNames`: comparing a key with four short strings
        // costs less than hashing it into a dictionary.
        var fields: [JSONReader.Value?] = [nil, nil, nil, nil]
        var errors: [FieldError] = []
        // One reason per field: the first rule a field breaks is the one reported.
        func report(_ field: String, _ reason: String) {
            if !errors.contains(where: { $0.field == field }) {
                errors.append(FieldError(field: field, reason: reason))
            }
        }
        let fieldNames = Purchase.fieldNames
        for (key, value) in members {
            guard let position = fieldNames.firstIndex(of: key) else { continue }
            if fields[position] != nil {
                report(key, "must appear only once")
            }
            fields[position] = value
        }
        func value(_ field: String) -> JSONReader.Value? {
            fieldNames.firstIndex(of: field).flatMap { fields[$0] }
        }
        func string(_ field: String) -> String? {
            switch value(field) {
            case .string(let value): return value
            case nil, .null:
                report(field, "is required")
            default:
                report(field, "must be a string")
            }
            return nil
        }
        func name(_ field: String) -> String? {
            guard let value = string(field) else { return nil }
            if let violation = Purchase.nameViolation(value) {
                report(field, violation)
                return nil
            }
            return value
        }
        let username = name("username")
        let userid = name("userid")

        var price: Price?
        do throws(Price.ParseError) {
            switch value("price") {
            case .string(let text): price = try Price(parsing: Substring(text))
            case .number(let text): price = try Price(jsonNumber: text)
            case nil, .null: report("price", "is required")
            default: report("price", "must be a string or a number")
            }
        } catch {
            report("price", error.description)
        }

        var timestamp: Timestamp? = receivedAt
        var timestampGiven = false
        switch value("timestamp") {
        case nil, .null: break
        case .string(let text):
            do throws(Timestamp.ParseError) {
                let given = try Timestamp(rfc3339: text)
                timestamp = given
                timestampGiven = true
                if let violation = timestampRule.violation(given, receivedAt: receivedAt) {
                    report("timestamp", violation)
                }
            } catch {
                report("timestamp", error.description)
            }
        default:
            report("timestamp", "must be a string")
        }

        guard errors.isEmpty, let username, let userid, let price, let timestamp else {
            throw .invalid(errors)
        }
        self.init(purchase: Purchase(valid: (username, userid, price, timestamp)), timestampGiven: timestampGiven)
    }
}
