import Foundation
public import HTTPTypes
public import Hummingbird
public import PurchaseDomain

/// The contract's error body: `{"status":"Error","message":"…","errors":[{"field","reason"}]}`.
public struct ErrorAnswer: Encodable, Sendable {
    public var status = "Error"
    public var message: String
    public var errors: [FieldError]

    public init(message: String, errors: [FieldError] = []) {
        self.message = message
        self.errors = errors
    }
}

extension Response {
    /// One encoder for every response instead of one per request.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    /// A JSON response. The values answered are plain structs of strings, numbers and arrays,
    /// whose encoding cannot fail.
    public static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        .json(status, bytes: try! encoder.encode(value))
    }

    /// A JSON answer's fields, built (and their value checked) once, shared by every answer.
    private static let jsonFields: HTTPFields = [.contentType: "application/json; charset=utf-8"]

    /// A JSON response from JSON text already written (by a hand-written writer).
    public static func json(_ status: HTTPResponse.Status, bytes: some Sequence<UInt8>) -> Response {
        Response(
            status: status,
            headers: jsonFields,
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }

    /// A JSON error in the contract's shape.
    public static func error(_ status: HTTPResponse.Status, _ message: String, errors: [FieldError] = []) -> Response {
        .json(status, ErrorAnswer(message: message, errors: errors))
    }

    /// 403: a valid token without the right (a purchase made as someone else).
    public static func forbidden(_ message: String, errors: [FieldError] = []) -> Response {
        Response.error(.forbidden, message, errors: errors)
    }
}
