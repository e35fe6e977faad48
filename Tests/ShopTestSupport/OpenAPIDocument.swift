import Foundation
import HTTPTypes
public import HummingbirdTesting
import Testing
import Yams

/// An OpenAPI 3 document, for tests that hold it to the code: which operations it has, and
/// whether a response is one it documents.
public struct OpenAPIDocument: Sendable {
    public typealias Object = [String: any Sendable]

    private let yaml: String

    public init(yaml bytes: [UInt8]) {
        yaml = String(decoding: bytes, as: UTF8.self)
    }

    private var root: [String: Any] { (try? Yams.load(yaml: yaml)) as? [String: Any] ?? [:] }

    public var version: String? { root["openapi"] as? String }

    /// `"METHOD /path"` of every operation.
    public var operations: Set<String> {
        var result: Set<String> = []
        for case let (path, item as [String: Any]) in root["paths"] as? [String: Any] ?? [:] {
            for method in item.keys { result.insert("\(method.uppercased()) \(path)") }
        }
        return result
    }

    /// `"METHOD /path STATUS"` of every documented response.
    public var responses: Set<String> {
        var result: Set<String> = []
        for operation in operations {
            for status in responses(of: operation).keys { result.insert("\(operation) \(status)") }
        }
        return result
    }

    private func responses(of operation: String) -> [String: Any] {
        let parts = operation.split(separator: " ", maxSplits: 1).map(String.init)
        let item = (root["paths"] as? [String: Any])?[parts[1]] as? [String: Any]
        return (item?[parts[0].lowercased()] as? [String: Any])?["responses"] as? [String: Any] ?? [:]
    }

    /// Records an issue unless `response` is documented for `operation`: its status, its media
    /// type, its documented headers, and for JSON the required fields of its schema (of one
    /// alternative, for `oneOf`).
    public func check(_ response: TestResponse, operation: String) throws {
        let status = String(response.status.code)
        let documented = try #require(
            responses(of: operation)[status] as? [String: Any], "\(operation) documents status \(status)")
        for header in (documented["headers"] as? [String: Any] ?? [:]).keys {
            #expect(response.headers[HTTPField.Name(header)!] != nil, "header \(header)")
        }
        let content = documented["content"] as? [String: Any] ?? [:]
        if content.isEmpty {
            #expect(response.body.readableBytes == 0, "\(operation) \(status) documents no body")
            return
        }
        let mediaType = String(response.headers[.contentType]?.split(separator: ";").first ?? "")
        let entry = try #require(content[mediaType] as? [String: Any], "\(operation) \(status) documents \(mediaType)")
        guard mediaType == "application/json" else { return }
        let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body))
        let schema = resolve(entry["schema"] as? [String: Any] ?? [:])
        let alternatives = (schema["oneOf"] as? [[String: Any]])?.map(resolve) ?? [schema]
        let satisfied = alternatives.contains { alternative in
            let required = alternative["required"] as? [String] ?? []
            guard let object = body as? [String: Any] else { return false }
            return required.allSatisfy { object[$0] != nil }
        }
        #expect(satisfied, "\(operation) \(status): the body has the required fields of its schema")
    }

    private func resolve(_ schema: [String: Any]) -> [String: Any] {
        guard let reference = schema["$ref"] as? String else { return schema }
        let name = reference.split(separator: "/").last.map(String.init) ?? ""
        let schemas = (root["components"] as? [String: Any])?["schemas"] as? [String: Any]
        return schemas?[name] as? [String: Any] ?? [:]
    }
}
